"""The state store, on SQLite and PostgreSQL: schema, runs, atomic transition batches, look-ups."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import SQLAlchemyError

from geo_infer_ops.errors import RunNotFoundError, StoreError
from geo_infer_ops.store import Store, TransitionBatch
from geo_infer_ops.store import tables as t
from geo_infer_ops.store.store import HEAD_REVISION

STEPS = [("load", "DATA", "load_sensor_data"), ("space", "SPACE", "analyze"), ("report", "APP", "report")]


def new_run(store: Store, run_id: str, name: str = "wf", workflow_id: str = "v1", **kwargs: Any) -> str:
    store.save_workflow(workflow_id, name, {"name": name, "steps": []})
    store.create_run(run_id, workflow_id, name, STEPS, **kwargs)
    return run_id


def step_state(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "attempts": 1, "used_fallback": False, **extra}


# ---------------------------------------------------------------------------
# schema


def test_first_open_creates_the_schema(store: Store, database_url: str) -> None:
    names = set(inspect(store.engine).get_table_names())
    assert {table.name for table in t.metadata.sorted_tables} | {"alembic_version"} <= names
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
    assert store.dialect == ("sqlite" if database_url.startswith("sqlite") else "postgresql")


def test_second_open_is_a_no_op_and_keeps_data(store: Store, database_url: str) -> None:
    new_run(store, "run00000001")
    again = Store(database_url)
    try:
        assert again.count_runs() == 1
        assert again.get_run("run00000001")["status"] == "pending"
        with again.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [HEAD_REVISION]
    finally:
        again.close()


def test_sqlite_uses_wal(tmp_path: Any) -> None:
    s = Store(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'state.db'}")
    try:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        s.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cr3t-pw@127.0.0.1:1/nowhere",
        "nosuchdb://alice:s3cr3t-pw@host/db",
        "mysql://alice:s3cr3t-pw@127.0.0.1:1/db",
        "sqlite:////proc/geo-infer-ops/s3cr3t-pw/state.db",
        "not a url at all",
    ],
)
def test_bad_url_is_a_store_error_with_the_password_redacted(url: str) -> None:
    with pytest.raises(StoreError) as info:
        Store(url)
    message = str(info.value)
    assert "cannot open the state store" in message
    if "alice" in url:
        assert "s3cr3t-pw" not in message
        assert "alice:***@" in message


# ---------------------------------------------------------------------------
# workflows and runs


def test_save_workflow_is_idempotent(store: Store) -> None:
    definition = {"name": "wf", "steps": [{"name": "a", "module": "DATA", "action": "x"}]}
    store.save_workflow("abc123", "wf", definition)
    store.save_workflow("abc123", "wf", definition)
    store.save_workflow("abc123", "wf", {"changed": True})  # same version id: the first definition stays
    assert store.get_workflow_definition("abc123") == definition
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workflows")).scalar() == 1
    with pytest.raises(StoreError, match="missing"):
        store.get_workflow_definition("nope")


def test_create_run_writes_run_steps_and_event(store: Store) -> None:
    new_run(store, "r1", params={"region": "alps"}, owner="host:1")
    run = store.get_run("r1")
    assert run["status"] == "pending"
    assert run["params"] == {"region": "alps"}
    assert run["owner"] == "host:1"
    assert run["workflow_id"] == "v1"
    assert run["retry_config"] is None
    steps = store.get_steps("r1")
    assert [(s["step"], s["module"], s["action"], s["position"]) for s in steps] == [
        (name, module, act, i) for i, (name, module, act) in enumerate(STEPS)
    ]
    assert all(s["status"] == "pending" and s["attempts"] == 0 and s["used_fallback"] is False for s in steps)
    [event] = store.get_events("r1")
    assert event["kind"] == "run_created" and event["step"] is None


def test_create_run_for_unknown_workflow_fails_and_leaves_nothing(store: Store) -> None:
    with pytest.raises(SQLAlchemyError):
        store.create_run("orphan", "no-such-version", "wf", STEPS)
    assert store.count_runs() == 0
    assert store.get_steps("orphan") == []


def full_batch(run_id: str) -> TransitionBatch:
    batch = TransitionBatch()
    batch.attempt_starts.append(
        {
            "run_id": run_id,
            "step": "load",
            "attempt": 1,
            "status": "running",
            "action": "DATA.load_sensor_data",
            "started_at": 100.0,
            "executor": "thread",
        }
    )
    batch.attempt_ends.append(
        {
            "run_id": run_id,
            "step": "load",
            "attempt": 1,
            "status": "succeeded",
            "finished_at": 102.5,
            "duration_s": 2.5,
            "error": None,
            "error_type": None,
            "traceback": None,
            "log_tail": "read 10 rows",
            "worker": "thread-1",
        }
    )
    batch.set_step(run_id, "load", step_state("running", started_at=100.0))
    batch.set_step(
        run_id,
        "load",
        step_state("succeeded", started_at=100.0, finished_at=102.5, duration_s=2.5, artifact_id="art1"),
    )
    batch.set_step(run_id, "space", step_state("failed", error="boom", used_fallback=True, attempts=2))
    batch.artifacts.append(
        {
            "id": "art1",
            "run_id": run_id,
            "step": "load",
            "format": "parquet",
            "path": f"{run_id}/load.parquet",
            "size_bytes": 1234,
            "created_at": 102.5,
        }
    )
    batch.metrics.append(
        {"run_id": run_id, "step": "load", "attempt": 1, "name": "rows", "value": 10.0, "ts": 102.5}
    )
    batch.metrics.append(
        {"run_id": run_id, "step": "load", "attempt": 1, "name": "cpu_s", "value": 0.5, "ts": 102.5}
    )
    batch.event(run_id, "step_succeeded", "load done", step="load", ts=102.5)
    batch.update_run(run_id, status="running", started_at=100.0)
    batch.update_run(run_id, retry_config=json.dumps({"max_retries": 2}))
    return batch


def test_apply_writes_everything(store: Store) -> None:
    new_run(store, "r1")
    assert not TransitionBatch()
    store.apply(TransitionBatch())  # an empty batch is fine
    batch = full_batch("r1")
    assert batch
    store.apply(batch)

    [attempt] = store.get_attempts("r1")
    assert attempt["status"] == "succeeded" and attempt["duration_s"] == 2.5
    assert attempt["worker"] == "thread-1" and attempt["log_tail"] == "read 10 rows"
    assert attempt["executor"] == "thread" and attempt["action"] == "DATA.load_sensor_data"
    assert store.get_attempts("r1", step="space") == []

    steps = {s["step"]: s for s in store.get_steps("r1")}
    assert steps["load"]["status"] == "succeeded"  # the last write in a batch wins
    assert steps["load"]["duration_s"] == 2.5 and steps["load"]["artifact_id"] == "art1"
    assert steps["space"]["status"] == "failed" and steps["space"]["error"] == "boom"
    assert steps["space"]["used_fallback"] is True and steps["space"]["attempts"] == 2
    assert steps["report"]["status"] == "pending"

    assert store.get_artifact("art1")["size_bytes"] == 1234
    assert [a["id"] for a in store.get_artifacts("r1")] == ["art1"]
    assert store.get_artifact("nope") is None
    assert [(m["name"], m["value"]) for m in store.get_metrics("r1")] == [("rows", 10.0), ("cpu_s", 0.5)]
    assert [e["kind"] for e in store.get_events("r1")] == ["run_created", "step_succeeded"]

    run = store.get_run("r1")
    assert run["status"] == "running" and run["started_at"] == 100.0
    assert run["retry_config"] == {"max_retries": 2}


def test_apply_is_one_transaction(store: Store) -> None:
    new_run(store, "r1")
    before_steps = store.get_steps("r1")
    before_run = store.get_run("r1")
    batch = full_batch("r1")
    # the last statement of the batch breaks a foreign key: nothing of the batch may land
    batch.event("no-such-run", "bogus")
    with pytest.raises((StoreError, SQLAlchemyError)):
        store.apply(batch)
    assert store.get_attempts("r1") == []
    assert store.get_steps("r1") == before_steps
    assert store.get_artifacts("r1") == []
    assert store.get_metrics("r1") == []
    assert [e["kind"] for e in store.get_events("r1")] == ["run_created"]
    assert store.get_run("r1") == before_run


def test_apply_duplicate_attempt_rolls_back(store: Store) -> None:
    new_run(store, "r1")
    store.apply(full_batch("r1"))
    again = TransitionBatch()
    again.event("r1", "retry_scheduled", step="space")
    again.set_step("r1", "report", step_state("running"))
    again.attempt_starts.append(
        {
            "run_id": "r1",
            "step": "load",
            "attempt": 1,
            "status": "running",
            "action": "DATA.load_sensor_data",
            "started_at": 200.0,
        }
    )
    with pytest.raises((StoreError, SQLAlchemyError)):
        store.apply(again)
    assert len(store.get_attempts("r1")) == 1
    assert {s["step"]: s["status"] for s in store.get_steps("r1")}["report"] == "pending"
    assert "retry_scheduled" not in [e["kind"] for e in store.get_events("r1")]


def test_many_step_states_in_one_batch(store: Store) -> None:
    steps = [(f"s{i}", "DATA", "x") for i in range(300)]
    store.save_workflow("v", "big", {})
    store.create_run("big1", "v", "big", steps)
    batch = TransitionBatch()
    for i in range(300):
        batch.set_step("big1", f"s{i}", step_state("succeeded", duration_s=float(i)))
    store.apply(batch)
    rows = store.get_steps("big1")
    assert [r["duration_s"] for r in rows] == [float(i) for i in range(300)]


# ---------------------------------------------------------------------------
# reads


def test_list_runs_filters_and_newest_first(store: Store) -> None:
    store.save_workflow("v", "alpha", {})
    store.save_workflow("w", "beta", {})
    created = {"a1": ("alpha", 10.0), "a2": ("alpha", 30.0), "b1": ("beta", 20.0), "a3": ("alpha", 40.0)}
    batch = TransitionBatch()
    for run_id, (name, ts) in created.items():
        store.create_run(run_id, "v" if name == "alpha" else "w", name, STEPS)
        batch.update_run(run_id, created_at=ts)
    batch.update_run("a2", status="failed")
    batch.update_run("b1", status="failed")
    store.apply(batch)

    assert [r["id"] for r in store.list_runs()] == ["a3", "a2", "b1", "a1"]
    assert [r["id"] for r in store.list_runs(limit=2)] == ["a3", "a2"]
    assert [r["id"] for r in store.list_runs(name="alpha")] == ["a3", "a2", "a1"]
    assert [r["id"] for r in store.list_runs(status="failed")] == ["a2", "b1"]
    assert [r["id"] for r in store.list_runs(name="alpha", status="failed")] == ["a2"]
    assert store.list_runs(name="gamma") == []
    assert store.count_runs() == 4
    assert isinstance(store.list_runs()[0]["params"], dict)


def test_resolve_run_id(store: Store) -> None:
    for run_id in ("abcdef0123", "abcdff9999", "1234567890"):
        new_run(store, run_id)
    assert store.resolve_run_id("abcdef0123") == "abcdef0123"
    assert store.resolve_run_id("abcde") == "abcdef0123"
    assert store.resolve_run_id("1234") == "1234567890"
    assert store.get_run("abcdf")["id"] == "abcdff9999"
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        store.resolve_run_id("abcd")
    with pytest.raises(RunNotFoundError) as info:
        store.resolve_run_id("ffffffff")
    assert "'ffffffff'" in str(info.value) and "geo-infer-ops runs" in str(info.value)
    with pytest.raises(RunNotFoundError):
        store.resolve_run_id("123")  # a prefix needs at least 4 characters
    with pytest.raises(RunNotFoundError):
        store.get_run("nope")


@pytest.mark.parametrize("pattern", ["____", "%%%%", "12%4", "1_34"])
def test_resolve_run_id_prefix_is_literal(store: Store, pattern: str) -> None:
    new_run(store, "1234567890")
    with pytest.raises(RunNotFoundError):
        store.resolve_run_id(pattern)


def test_run_not_found_is_a_lookup_error(store: Store) -> None:
    with pytest.raises(LookupError):
        store.resolve_run_id("missing-run")


def test_claim_run_only_from_expected_statuses(store: Store) -> None:
    new_run(store, "r1")
    assert store.claim_run("r1", "host:1", ["failed"]) is False
    assert store.get_run("r1")["status"] == "pending"
    assert store.claim_run("r1", "host:1", ["pending"]) is True
    run = store.get_run("r1")
    assert run["status"] == "running" and run["owner"] == "host:1"
    # a second claimer loses
    assert store.claim_run("r1", "host:2", ["pending"]) is False
    assert store.get_run("r1")["owner"] == "host:1"
    batch = TransitionBatch()
    batch.update_run("r1", status="failed", finished_at=5.0, error="boom")
    store.apply(batch)
    assert store.claim_run("r1", "host:3", ["failed", "cancelled"]) is True
    run = store.get_run("r1")
    assert (run["status"], run["owner"]) == ("running", "host:3")
    assert (run["finished_at"], run["error"]) == (None, None)
    assert store.claim_run("missing", "host:3", ["pending"]) is False


def test_step_durations_medians_of_recent_successful_runs(store: Store) -> None:
    store.save_workflow("v", "wf", {})
    durations = {"load": [1.0, 9.0, 2.0, 3.0, 100.0], "space": [5.0, 5.0, 7.0, 6.0, 100.0]}
    batch = TransitionBatch()
    for i in range(5):
        run_id = f"run{i}"
        store.create_run(run_id, "v", "wf", STEPS)
        batch.update_run(run_id, status="succeeded", created_at=float(i))
        batch.set_step(run_id, "load", step_state("succeeded", duration_s=durations["load"][i]))
        batch.set_step(run_id, "space", step_state("succeeded", duration_s=durations["space"][i]))
    # the last run failed: its durations are not history
    batch.update_run("run4", status="failed")
    # another workflow's runs do not count
    store.save_workflow("w", "other", {})
    store.create_run("other1", "w", "other", STEPS)
    batch.update_run("other1", status="succeeded", created_at=9.0)
    batch.set_step("other1", "load", step_state("succeeded", duration_s=1000.0))
    store.apply(batch)

    medians = store.step_durations("wf")
    assert medians == {"load": 2.5, "space": 5.5} or medians == {"load": 3.0, "space": 6.0}
    assert "report" not in medians  # never ran
    # only the last `limit` successful runs: run3 and run2
    recent = store.step_durations("wf", limit=3)
    assert recent == {"load": 3.0, "space": 6.0}
    assert store.step_durations("unknown") == {}
