"""The state store's tables (SQLAlchemy Core). Alembic migrations create them.

Timestamps are UNIX epoch seconds (floats): the same on SQLite and PostgreSQL,
cheap to write in batches, and shown as ISO 8601 by the API and CLI.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

workflows = Table(
    "workflows",
    metadata,
    Column("id", String(32), primary_key=True, comment="content hash of the normalized definition"),
    Column("name", String(200), nullable=False, index=True),
    Column("definition", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workflow_id", String(32), ForeignKey("workflows.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("params", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("error", Text),
    Column("owner", String(300), comment="host:pid of the process executing the run"),
    Column("retry_config", Text),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_name_status", "name", "status"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("module", String(100), nullable=False),
    Column("action", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("used_fallback", Boolean, nullable=False, default=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("duration_s", Float),
    Column("error", Text),
    Column("result", Text, comment="inline JSON result when small"),
    Column("artifact_id", String(32)),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("action", String(300), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("duration_s", Float),
    Column("error", Text),
    Column("error_type", String(200)),
    Column("traceback", Text),
    Column("executor", String(20)),
    Column("worker", String(200)),
    Column("log_tail", Text),
    UniqueConstraint("run_id", "step", "attempt", name="uq_attempts_run_step_attempt"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("step", String(200)),
    Column("ts", Float, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("message", Text, nullable=False, default=""),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("step", String(200), nullable=False),
    Column("format", String(40), nullable=False),
    Column("path", Text, nullable=False),
    Column("size_bytes", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
)

step_metrics = Table(
    "step_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("step", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("ts", Float, nullable=False),
    Index("ix_step_metrics_name_ts", "name", "ts"),
)

# -- monitoring ------------------------------------------------------------------
# Labels are canonical JSON (sorted keys, no spaces; '{}' when none), so one series is one string.

metric_samples = Table(
    "metric_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("labels", Text, nullable=False, default="{}"),
    Column("ts", Float, nullable=False),
    Column("value", Float, nullable=False),
    Index("ix_metric_samples_name_ts", "name", "ts"),
)

metric_rollups = Table(
    "metric_rollups",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("labels", Text, primary_key=True),
    Column("resolution", Integer, primary_key=True, comment="bucket width in seconds"),
    Column("bucket", Float, primary_key=True, comment="start of the bucket (epoch seconds)"),
    Column("count", Integer, nullable=False),
    Column("sum", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("alert", String(200), nullable=False),
    Column("state", String(20), nullable=False, comment="pending | firing | resolved | inactive"),
    Column("labels", Text, nullable=False, default="{}"),
    Column("value", Float),
    Column("message", Text, nullable=False, default=""),
    Column("action", String(40)),
    Column("action_status", String(20), comment="succeeded | failed | skipped"),
    Column("action_detail", Text),
    Index("ix_alert_events_alert_ts", "alert", "ts"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("matchers", Text, nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_by", String(200), nullable=False, default=""),
)
