"""The durable state store: runs, steps, attempts, events, artifacts.

One :class:`Store` wraps a SQLAlchemy engine (SQLite in WAL mode by default,
PostgreSQL for teams). The engine writes state transitions as a
:class:`TransitionBatch`: everything that happened in one turn of the scheduler
loop is committed in a single transaction *before* the engine acts on it, so a
killed process loses nothing that had finished, and a 1,000-step fan-out costs a
handful of commits rather than thousands.
"""

from __future__ import annotations

import json
import operator
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..errors import RunNotFoundError, StoreError
from . import tables as t

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD_REVISION = "0002"

_STEP_STATE_COLUMNS = (
    "status",
    "attempts",
    "used_fallback",
    "started_at",
    "finished_at",
    "duration_s",
    "error",
    "result",
    "artifact_id",
)
_ARTIFACT_COLUMNS = ("id", "run_id", "step", "format", "path", "size_bytes", "created_at")
_ATTEMPT_END_COLUMNS = ("status", "finished_at", "duration_s", "error", "error_type", "traceback", "log_tail")


@dataclass
class TransitionBatch:
    """State changes collected during one turn of the scheduler loop."""

    step_states: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    attempt_starts: list[dict[str, Any]] = field(default_factory=list)
    attempt_ends: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    run_updates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.step_states
            or self.attempt_starts
            or self.attempt_ends
            or self.events
            or self.artifacts
            or self.metrics
            or self.run_updates
        )

    def set_step(self, run_id: str, step: str, state: dict[str, Any]) -> None:
        """The full current state of a step (the last write in a batch wins)."""
        self.step_states[(run_id, step)] = state

    def event(
        self, run_id: str, kind: str, message: str = "", step: str | None = None, ts: float = 0.0
    ) -> None:
        self.events.append(
            {"run_id": run_id, "step": step, "ts": ts or time.time(), "kind": kind, "message": message}
        )

    def update_run(self, run_id: str, **values: Any) -> None:
        self.run_updates.setdefault(run_id, {}).update(values)


class _HotStatements:
    """The statements of :meth:`Store.apply`, compiled once for the store's dialect."""

    def __init__(self, dialect: Any) -> None:
        attempt_key = (
            (t.attempts.c.run_id == bindparam("b_run_id"))
            & (t.attempts.c.step == bindparam("b_step"))
            & (t.attempts.c.attempt == bindparam("b_attempt"))
        )
        step_key = (t.step_runs.c.run_id == bindparam("b_run_id")) & (
            t.step_runs.c.step == bindparam("b_step")
        )
        statements = {
            "attempt_start": insert(t.attempts).values(
                {
                    c: bindparam(c)
                    for c in ("run_id", "step", "attempt", "action", "status", "started_at", "executor")
                }
            ),
            "attempt_end": update(t.attempts)
            .where(attempt_key)
            .values({c: bindparam(c) for c in (*_ATTEMPT_END_COLUMNS, "worker")}),
            "step_state": update(t.step_runs)
            .where(step_key)
            .values({c: bindparam(c) for c in _STEP_STATE_COLUMNS}),
            "artifact": insert(t.artifacts).values(
                {
                    c: bindparam(c)
                    for c in ("id", "run_id", "step", "format", "path", "size_bytes", "created_at")
                }
            ),
            "metric": insert(t.step_metrics).values(
                {c: bindparam(c) for c in ("run_id", "step", "attempt", "name", "value", "ts")}
            ),
            "event": insert(t.events).values(
                {c: bindparam(c) for c in ("run_id", "step", "ts", "kind", "message")}
            ),
        }
        self._dialect = dialect
        self._compiled: dict[str, tuple[str, tuple[str, ...], bool]] = {}
        self._columns: dict[str, tuple[str, ...]] = {}
        for name, stmt in statements.items():
            self._add(name, stmt)

    def run_update(self, values: dict[str, Any]) -> str:
        """The name of a compiled ``UPDATE runs`` setting exactly these columns (compiled once)."""
        name = "run:" + ",".join(sorted(values))
        if name not in self._compiled:
            stmt = (
                update(t.runs)
                .where(t.runs.c.id == bindparam("b_run_id"))
                .values({c: bindparam(c) for c in sorted(values)})
            )
            self._add(name, stmt)
        return name

    def insert(self, name: str, table: Any, columns: Sequence[str]) -> None:
        """Compile ``INSERT INTO table (columns)`` once under ``name``; its rows may be plain tuples."""
        if name not in self._compiled:
            self._add(name, insert(table).values({c: bindparam(c) for c in columns}))
            self._columns[name] = tuple(columns)

    def _add(self, name: str, stmt: Any) -> None:
        compiled = stmt.compile(dialect=self._dialect)
        if compiled.positional:
            self._compiled[name] = (str(compiled), tuple(compiled.positiontup), True)
        else:
            self._compiled[name] = (str(compiled), tuple(compiled.params), False)

    def execute(self, cursor: Any, name: str, rows: Sequence[Any]) -> None:
        """``executemany`` of a compiled statement; rows are dicts, or tuples for :meth:`insert`'s."""
        sql, keys, positional = self._compiled[name]
        if rows and not isinstance(rows[0], dict):
            columns = self._columns[name]
            if positional and keys == columns:
                cursor.executemany(sql, rows)  # already in the driver's order: no copy at all
            elif positional:
                index = [columns.index(k) for k in keys]
                cursor.executemany(sql, [tuple(r[i] for i in index) for r in rows])
            else:
                cursor.executemany(sql, [dict(zip(columns, r, strict=True)) for r in rows])
        elif positional:
            pick = operator.itemgetter(*keys)
            try:
                params = [pick(r) for r in rows]  # the common case: every row has every column
            except KeyError:
                params = [tuple(r.get(k) for k in keys) for r in rows]
            cursor.executemany(sql, params if len(keys) > 1 else [(p,) for p in params])
        else:
            cursor.executemany(sql, [{k: r.get(k) for k in keys} for r in rows])


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Open (and migrate) the database at ``url``; every read and write goes through here."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        try:
            self.engine = self._create_engine(url)
            self._migrate()
            self._hot = _HotStatements(self.engine.dialect)
            self._hot_lock = threading.Lock()
            self._hot_conn: Any = None
        except (SQLAlchemyError, ImportError, OSError) as exc:  # bad URL, missing driver, unwritable path
            raise StoreError(
                f"cannot open the state store at {_redact(url)}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}"
            ) from exc

    @staticmethod
    def _create_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return create_engine(url, pool_pre_ping=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic is only imported when needed)."""
        with self.engine.connect() as conn:
            from sqlalchemy import inspect

            if inspect(conn).has_table("alembic_version"):
                current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
                if current == HEAD_REVISION:
                    return
        from alembic import command
        from alembic.config import Config

        with self._lock, self.engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        with self._hot_lock:
            if self._hot_conn is not None:
                self._hot_conn.close()
                self._hot_conn = None
        self.engine.dispose()

    # -- writes -----------------------------------------------------------------
    def save_workflow(self, version: str, name: str, definition: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(select(t.workflows.c.id).where(t.workflows.c.id == version)).first()
            if exists is None:
                conn.execute(
                    insert(t.workflows).values(
                        id=version, name=name, definition=json.dumps(definition), created_at=time.time()
                    )
                )

    def create_run(
        self,
        run_id: str,
        workflow_id: str,
        name: str,
        steps: Sequence[tuple[str, str, str]],
        params: dict[str, Any] | None = None,
        owner: str | None = None,
        now: float | None = None,
    ) -> None:
        """Insert a run and one ``pending`` row per step (name, module, action), at the caller's ``now``."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.runs).values(
                    id=run_id,
                    workflow_id=workflow_id,
                    name=name,
                    status="pending",
                    params=json.dumps(params or {}),
                    created_at=now,
                    owner=owner,
                )
            )
            conn.execute(
                insert(t.step_runs),
                [
                    {
                        "run_id": run_id,
                        "step": step,
                        "position": i,
                        "module": module,
                        "action": act,
                        "status": "pending",
                        "attempts": 0,
                        "used_fallback": False,
                    }
                    for i, (step, module, act) in enumerate(steps)
                ],
            )
            conn.execute(
                insert(t.events).values(
                    run_id=run_id, step=None, ts=now, kind="run_created", message=f"run of {name} created"
                )
            )

    def apply(self, batch: TransitionBatch) -> None:
        """Commit everything in ``batch`` in one transaction (the scheduler's hot path).

        The statements are SQLAlchemy Core constructs compiled once per store
        (:class:`_HotStatements`) and sent with the driver's ``executemany`` on one pooled
        connection kept for this purpose: building, compiling and checking out per call cost
        several times more than the database's own work.
        """
        if not batch:
            return
        rows: list[tuple[str, list[dict[str, Any]]]] = []
        if batch.attempt_starts:
            rows.append(("attempt_start", batch.attempt_starts))
        if batch.attempt_ends:
            rows.append(
                (
                    "attempt_end",
                    [
                        {"b_run_id": a["run_id"], "b_step": a["step"], "b_attempt": a["attempt"]} | a
                        for a in batch.attempt_ends
                    ],
                )
            )
        if batch.step_states:
            rows.append(
                (
                    "step_state",
                    [
                        {"b_run_id": run_id, "b_step": step} | state
                        for (run_id, step), state in batch.step_states.items()
                    ],
                )
            )
        if batch.artifacts:
            rows.append(("artifact", batch.artifacts))
        if batch.metrics:
            rows.append(("metric", batch.metrics))
        if batch.events:
            rows.append(("event", batch.events))
        with self._hot_lock:
            for run_id, values in batch.run_updates.items():
                rows.append((self._hot.run_update(values), [{"b_run_id": run_id} | values]))
            self._execute_hot(rows, "a batch of transitions")

    def prepare_insert(self, name: str, table: Any, columns: Sequence[str]) -> None:
        """Compile a hot ``INSERT`` once (see :meth:`insert_many`); calling it again is a no-op."""
        with self._hot_lock:
            self._hot.insert(name, table, columns)

    def insert_many(
        self, batches: Sequence[tuple[str, Sequence[Any]]], what: str = "a batch of rows"
    ) -> None:
        """Write rows through statements of :meth:`prepare_insert`, all in one transaction.

        The same hot path as :meth:`apply`: the driver's ``executemany`` on the kept connection,
        rows as tuples in the prepared column order (or dicts). Used by the metric store.
        """
        with self._hot_lock:
            self._execute_hot(batches, what)

    def _execute_hot(self, rows: Sequence[tuple[str, Sequence[Any]]], what: str) -> None:
        """Run compiled statements on the kept connection and commit once (caller holds ``_hot_lock``)."""
        conn = self._hot_connection()
        try:
            cursor = conn.cursor()
            for name, params in rows:
                if params:
                    self._hot.execute(cursor, name, params)
            cursor.close()
            conn.commit()
        except BaseException as exc:
            self._discard_hot_connection()
            dbapi = self.engine.dialect.dbapi
            if dbapi is not None and isinstance(exc, dbapi.Error):
                raise StoreError(
                    f"the state store refused {what} (nothing of it was written): {type(exc).__name__}: {exc}"
                ) from exc
            raise

    def _hot_connection(self) -> Any:
        if self._hot_conn is None:
            self._hot_conn = self.engine.raw_connection()
        return self._hot_conn

    def _discard_hot_connection(self) -> None:
        conn, self._hot_conn = self._hot_conn, None
        if conn is not None:
            try:
                conn.rollback()
            finally:
                conn.close()

    def claim_run(self, run_id: str, owner: str, expected_statuses: Iterable[str]) -> bool:
        """Atomically mark a run as ``running`` by ``owner`` if its status is one of ``expected_statuses``."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id, t.runs.c.status.in_(list(expected_statuses)))
                .values(status="running", owner=owner, finished_at=None, error=None)
            )
            return result.rowcount == 1

    # -- reads ------------------------------------------------------------------
    def resolve_run_id(self, run_id: str) -> str:
        """Accept a full id or a unique prefix of at least 4 characters (like git)."""
        with self.engine.connect() as conn:
            if conn.execute(select(t.runs.c.id).where(t.runs.c.id == run_id)).first():
                return run_id
            if len(run_id) >= 4:
                prefix = t.runs.c.id.startswith(run_id, autoescape=True)  # '%' and '_' are literal
                rows = conn.execute(select(t.runs.c.id).where(prefix).limit(2)).all()
                if len(rows) == 1:
                    return rows[0][0]
                if len(rows) > 1:
                    raise RunNotFoundError(f"run id prefix {run_id!r} is ambiguous; give more characters")
        raise RunNotFoundError(
            f"no run {run_id!r} in the store at {_redact(self.url)}; list runs with `geo-infer-ops runs`"
        )

    def get_run(self, run_id: str) -> dict[str, Any]:
        run_id = self.resolve_run_id(run_id)
        with self.engine.connect() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).mappings().one()
        return _run_dict(row)

    def list_runs(
        self, limit: int = 50, name: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        stmt = select(t.runs).order_by(t.runs.c.created_at.desc()).limit(limit)
        if name:
            stmt = stmt.where(t.runs.c.name == name)
        if status:
            stmt = stmt.where(t.runs.c.status == status)
        with self.engine.connect() as conn:
            return [_run_dict(r) for r in conn.execute(stmt).mappings()]

    def get_steps(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(t.step_runs).where(t.step_runs.c.run_id == run_id).order_by(t.step_runs.c.position)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def get_attempts(self, run_id: str, step: str | None = None) -> list[dict[str, Any]]:
        stmt = select(t.attempts).where(t.attempts.c.run_id == run_id)
        if step:
            stmt = stmt.where(t.attempts.c.step == step)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt.order_by(t.attempts.c.id)).mappings()]

    def get_events(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.events).where(t.events.c.run_id == run_id).order_by(t.events.c.id))
            return [dict(r) for r in rows.mappings()]

    def get_artifact(self, artifact_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.artifacts).where(t.artifacts.c.id == artifact_id)).mappings().first()
        return dict(row) if row else None

    def get_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.artifacts).where(t.artifacts.c.run_id == run_id))
            return [dict(r) for r in rows.mappings()]

    def get_metrics(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.step_metrics).where(t.step_metrics.c.run_id == run_id).order_by(t.step_metrics.c.id)
            )
            return [dict(r) for r in rows.mappings()]

    def get_workflow_definition(self, workflow_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            text = conn.execute(
                select(t.workflows.c.definition).where(t.workflows.c.id == workflow_id)
            ).scalar()
        if text is None:
            raise StoreError(f"workflow version {workflow_id} is missing from the store")
        return json.loads(text)

    def step_durations(self, name: str, limit: int = 20) -> dict[str, float]:
        """Median duration per step over the last ``limit`` successful runs of a workflow (for ETAs)."""
        with self.engine.connect() as conn:
            recent = (
                select(t.runs.c.id)
                .where(t.runs.c.name == name, t.runs.c.status == "succeeded")
                .order_by(t.runs.c.created_at.desc())
                .limit(limit)
                .subquery()
            )
            rows = conn.execute(
                select(t.step_runs.c.step, t.step_runs.c.duration_s).where(
                    t.step_runs.c.run_id.in_(select(recent.c.id)), t.step_runs.c.duration_s.is_not(None)
                )
            ).all()
        samples: dict[str, list[float]] = {}
        for step, duration in rows:
            samples.setdefault(step, []).append(float(duration))
        return {step: sorted(v)[len(v) // 2] for step, v in samples.items()}

    def count_runs(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.runs)).scalar() or 0)


def _run_dict(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["params"] = json.loads(out["params"] or "{}")
    out["retry_config"] = json.loads(out["retry_config"]) if out.get("retry_config") else None
    return out


def _redact(url: str) -> str:
    """Hide a password in a database URL before it is shown."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
