"""The Alembic migration builds exactly the schema of ``store/tables.py``, and can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from geo_infer_ops.store import Store
from geo_infer_ops.store import tables as t
from geo_infer_ops.store.store import HEAD_REVISION, MIGRATIONS_DIR

TABLES = {table.name for table in t.metadata.sorted_tables}


def _alembic(store: Store, verb: str, revision: str) -> None:
    with store.engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, revision)


def test_migrated_schema_matches_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        opts = {"compare_type": True, "compare_server_default": True}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, t.metadata)
    assert diff == []


def test_migration_creates_every_index_and_constraint(store: Store) -> None:
    insp = inspect(store.engine)
    for table in t.metadata.sorted_tables:
        expected = {ix.name for ix in table.indexes}
        assert expected <= {ix["name"] for ix in insp.get_indexes(table.name)}, table.name
        expected_fks = {
            (tuple(fk.parent.name for fk in c.elements), c.referred_table.name)
            for c in table.foreign_key_constraints
        }
        got_fks = {
            (tuple(fk["constrained_columns"]), fk["referred_table"])
            for fk in insp.get_foreign_keys(table.name)
        }
        assert expected_fks == got_fks, table.name
    uniques = {u["name"] for u in insp.get_unique_constraints("attempts")}
    assert "uq_attempts_run_step_attempt" in uniques


def test_deleting_a_run_cascades(store: Store) -> None:
    store.save_workflow("v", "wf", {})
    store.create_run("r1", "v", "wf", [("a", "DATA", "x")])
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM runs WHERE id = 'r1'"))
    assert store.get_steps("r1") == []
    assert store.get_events("r1") == []


def test_downgrade_and_upgrade_again(store: Store, database_url: str) -> None:
    store.save_workflow("v", "wf", {"name": "wf"})
    _alembic(store, "downgrade", "base")
    remaining = set(inspect(store.engine).get_table_names())
    assert not (TABLES & remaining)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 0
    store.close()

    reopened = Store(database_url)  # an empty database at base is migrated again on open
    try:
        assert set(inspect(reopened.engine).get_table_names()) >= TABLES
        with reopened.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
            diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
        assert diff == []
        assert reopened.count_runs() == 0
    finally:
        reopened.close()
