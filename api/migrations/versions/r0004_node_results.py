"""Node results kept in the database (the local executor's result cache, made durable), so a
run resumed after an API restart does not run again the nodes that had already succeeded.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_results",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_node_results_created_at", "node_results", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_node_results_created_at", "node_results")
    op.drop_table("node_results")
