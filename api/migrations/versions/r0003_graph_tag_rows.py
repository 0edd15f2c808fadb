"""Graph tags move from a JSON list on `graphs` to rows of `graph_tags`, so the graph list
filters and pages by tag in SQL (with an index) on SQLite and PostgreSQL alike.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):  # SQLite hands JSON columns back as text in a bare select
        value = json.loads(value)
    return [str(tag) for tag in value] if isinstance(value, list) else []


def upgrade() -> None:
    tags = op.create_table(
        "graph_tags",
        sa.Column("graph_id", sa.String(32), sa.ForeignKey("graphs.id"), primary_key=True),
        sa.Column("tag", sa.String(100), primary_key=True),
    )
    op.create_index("ix_graph_tags_tag", "graph_tags", ["tag"])
    rows = op.get_bind().execute(sa.text("SELECT id, tags FROM graphs")).all()
    copied = [{"graph_id": graph_id, "tag": tag} for graph_id, value in rows for tag in sorted(set(_as_list(value)))]
    if copied:
        op.bulk_insert(tags, copied)
    with op.batch_alter_table("graphs") as batch:
        batch.drop_column("tags")


def downgrade() -> None:
    with op.batch_alter_table("graphs") as batch:
        batch.add_column(sa.Column("tags", sa.JSON, nullable=False, server_default="[]"))
    bind = op.get_bind()
    by_graph: dict[str, list[str]] = {}
    for graph_id, tag in bind.execute(sa.text("SELECT graph_id, tag FROM graph_tags ORDER BY tag")).all():
        by_graph.setdefault(graph_id, []).append(tag)
    graphs = sa.table("graphs", sa.column("id", sa.String), sa.column("tags", sa.JSON))
    for graph_id, graph_tags in by_graph.items():
        bind.execute(sa.update(graphs).where(graphs.c.id == graph_id).values(tags=graph_tags))
    op.drop_index("ix_graph_tags_tag", "graph_tags")
    op.drop_table("graph_tags")
