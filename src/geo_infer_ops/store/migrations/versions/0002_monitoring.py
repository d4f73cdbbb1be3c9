"""Monitoring: metric samples and rollups, alert history, silences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_metric_samples_name_ts", "metric_samples", ["name", "ts"])
    op.create_table(
        "metric_rollups",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("labels", sa.Text, primary_key=True),
        sa.Column("resolution", sa.Integer, primary_key=True, comment="bucket width in seconds"),
        sa.Column("bucket", sa.Float, primary_key=True, comment="start of the bucket (epoch seconds)"),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("alert", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, comment="pending | firing | resolved | inactive"),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("action", sa.String(40)),
        sa.Column("action_status", sa.String(20), comment="succeeded | failed | skipped"),
        sa.Column("action_detail", sa.Text),
    )
    op.create_index("ix_alert_events_alert_ts", "alert_events", ["alert", "ts"])
    op.create_table(
        "silences",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("matchers", sa.Text, nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    for table in ("silences", "alert_events", "metric_rollups", "metric_samples"):
        op.drop_table(table)
