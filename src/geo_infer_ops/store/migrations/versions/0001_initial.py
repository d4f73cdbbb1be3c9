"""Initial schema: workflows, runs, step_runs, attempts, events, artifacts, step_metrics.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _run_fk() -> sa.ForeignKey:
    return sa.ForeignKey("runs.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(32), primary_key=True, comment="content hash of the normalized definition"),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workflow_id", sa.String(32), sa.ForeignKey("workflows.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("owner", sa.String(300), comment="host:pid of the process executing the run"),
        sa.Column("retry_config", sa.Text),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_name_status", "runs", ["name", "status"])
    op.create_table(
        "step_runs",
        sa.Column("run_id", sa.String(32), _run_fk(), primary_key=True),
        sa.Column("step", sa.String(200), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("module", sa.String(100), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("used_fallback", sa.Boolean, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("result", sa.Text, comment="inline JSON result when small"),
        sa.Column("artifact_id", sa.String(32)),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), _run_fk(), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("action", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("error_type", sa.String(200)),
        sa.Column("traceback", sa.Text),
        sa.Column("executor", sa.String(20)),
        sa.Column("worker", sa.String(200)),
        sa.Column("log_tail", sa.Text),
        sa.UniqueConstraint("run_id", "step", "attempt", name="uq_attempts_run_step_attempt"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), _run_fk(), nullable=False, index=True),
        sa.Column("step", sa.String(200)),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), _run_fk(), nullable=False, index=True),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("format", sa.String(40), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "step_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), _run_fk(), nullable=False, index=True),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_step_metrics_name_ts", "step_metrics", ["name", "ts"])


def downgrade() -> None:
    for table in ("step_metrics", "artifacts", "events", "attempts", "step_runs", "runs", "workflows"):
        op.drop_table(table)
