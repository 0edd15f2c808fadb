"""Webhook triggers and cron schedules of saved graphs.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(200), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("graph_id", sa.String(32), sa.ForeignKey("graphs.id"), nullable=False),
        sa.Column("graph_version", sa.Integer, nullable=True),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("input_map", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=True),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(200), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("graph_id", sa.String(32), sa.ForeignKey("graphs.id"), nullable=False),
        sa.Column("graph_version", sa.Integer, nullable=True),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("allow_overlap", sa.Boolean, nullable=False),
        sa.Column("catchup", sa.String(20), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_fire_at", sa.Float, nullable=False),
        sa.Column("last_fire_at", sa.Float, nullable=True),
        sa.Column("last_run_id", sa.String(32), nullable=True),
        sa.Column("fires", sa.Integer, nullable=False),
        sa.Column("skipped_fires", sa.Integer, nullable=False),
        sa.Column("last_skip_reason", sa.String(40), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=True),
    )
    op.create_index("ix_schedules_due", "schedules", ["enabled", "next_fire_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
    op.drop_table("triggers")
