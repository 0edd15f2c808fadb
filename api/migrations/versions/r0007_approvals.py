"""Approvals: what a run waiting at a `control.approve` node asks to review, its deadline, and the
decision (approve, edit or reject), who made it and when.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("node_id", sa.String(200), primary_key=True),
        sa.Column("review", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("timeout", sa.Float, nullable=True),
        sa.Column("on_timeout", sa.String(10), nullable=False),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("deadline", sa.Float, nullable=True),
        sa.Column("action", sa.String(10), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("edited", sa.Boolean, nullable=False),
        sa.Column("value", sa.JSON, nullable=True),
        sa.Column("decided_by_key", sa.String(32), nullable=True),
        sa.Column("decided_by_name", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.Float, nullable=True),
    )
    op.create_index("ix_approvals_deadline", "approvals", ["deadline"])


def downgrade() -> None:
    op.drop_index("ix_approvals_deadline", "approvals")
    op.drop_table("approvals")
