"""The database tables (SQLModel). Times are seconds since the epoch, as in `nodeloom.core.events`.

The schema itself is created and changed only by the Alembic migrations in `migrations/`;
these classes describe the newest revision.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class ApiKeyRow(SQLModel, table=True):
    """An API key: only its SHA-256 digest is kept; `prefix` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=32)
    prefix: str = Field(index=True, unique=True, max_length=16)
    digest: str = Field(max_length=64)
    project: str = Field(index=True, max_length=200)
    scopes: str = Field(max_length=100)
    name: str = Field(default="", max_length=200)
    created_at: float
    revoked_at: float | None = None


class GraphRow(SQLModel, table=True):
    """A saved graph; its documents live in `graph_versions`, one row per update."""

    __tablename__ = "graphs"
    __table_args__ = (Index("ix_graphs_project_name", "project", "name"),)

    id: str = Field(primary_key=True, max_length=32)
    project: str = Field(max_length=200)
    name: str = Field(max_length=200)
    description: str = ""
    latest_version: int = 1
    created_at: float
    updated_at: float
    deleted_at: float | None = None


class GraphTagRow(SQLModel, table=True):
    """One tag of a saved graph (a row per tag, so the graph list filters by tag in SQL)."""

    __tablename__ = "graph_tags"

    graph_id: str = Field(primary_key=True, foreign_key="graphs.id", max_length=32)
    tag: str = Field(primary_key=True, index=True, max_length=100)


class GraphVersionRow(SQLModel, table=True):
    """One immutable version of a graph document."""

    __tablename__ = "graph_versions"

    graph_id: str = Field(primary_key=True, foreign_key="graphs.id", max_length=32)
    version: int = Field(primary_key=True)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: float


class RunRow(SQLModel, table=True):
    """A run as submitted (graph document and inputs) and as it went (status, outputs, errors)."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("project", "idempotency_key", name="uq_runs_project_idempotency_key"),
        Index("ix_runs_project_created", "project", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    project: str = Field(max_length=200)
    graph_id: str | None = Field(default=None, index=True, max_length=32)
    graph_version: int | None = None
    graph_name: str = Field(default="", max_length=200)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    inputs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    use_cache: bool = True
    status: str = Field(default="pending", max_length=20)
    idempotency_key: str | None = Field(default=None, max_length=200)
    #: SHA-256 of the canonical submit body the idempotency key was first used with
    request_digest: str | None = Field(default=None, max_length=64)
    executor_run_id: str | None = Field(default=None, max_length=64)
    #: events recorded before the current execution (a resumed run numbers on from here)
    event_base: int = 0
    resumes: int = 0
    outputs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    errors: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class RunNodeRow(SQLModel, table=True):
    """The state of one node of one run."""

    __tablename__ = "run_nodes"

    run_id: str = Field(primary_key=True, foreign_key="runs.id", max_length=32)
    node_id: str = Field(primary_key=True, max_length=200)
    type: str = Field(max_length=200)
    state: str = Field(default="pending", max_length=20)
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    cache_key: str | None = Field(default=None, max_length=64)
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class RunEventRow(SQLModel, table=True):
    """One event of a run; `seq` counts from 1 across every execution of the run."""

    __tablename__ = "run_events"

    run_id: str = Field(primary_key=True, foreign_key="runs.id", max_length=32)
    seq: int = Field(primary_key=True)
    kind: str = Field(max_length=40)
    time: float
    node: str | None = Field(default=None, max_length=200)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ApprovalRow(SQLModel, table=True):
    """A `control.approve` node of a run that waited: what it asked to review, by when (`deadline`,
    after which `on_timeout` is taken), and the decision once made, with who made it and when."""

    __tablename__ = "approvals"

    run_id: str = Field(primary_key=True, foreign_key="runs.id", max_length=32)
    node_id: str = Field(primary_key=True, max_length=200)
    #: `{"kind": "text" | "json" | "artifact", "value": ...}`
    review: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    message: str = Field(default="", sa_column=Column(Text, nullable=False))
    timeout: float | None = None
    on_timeout: str = Field(default="reject", max_length=10)
    requested_at: float
    deadline: float | None = Field(default=None, index=True)
    #: None while waiting; then `approve` or `reject`
    action: str | None = Field(default=None, max_length=10)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: the reviewer replaced the value with `value`
    edited: bool = False
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    #: the API key that decided (None: the timeout's default action)
    decided_by_key: str | None = Field(default=None, max_length=32)
    decided_by_name: str | None = Field(default=None, max_length=200)
    decided_at: float | None = None


class NodeResultRow(SQLModel, table=True):
    """The outputs of a node under its cache key, as `nodeloom.core.values` encodes them."""

    __tablename__ = "node_results"

    key: str = Field(primary_key=True, max_length=64)
    outputs: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float = Field(index=True)


class TriggerRow(SQLModel, table=True):
    """A webhook trigger: a POST signed with its secret starts a run of one saved graph."""

    __tablename__ = "triggers"

    id: str = Field(primary_key=True, max_length=32)
    project: str = Field(index=True, max_length=200)
    name: str = Field(default="", max_length=200)
    graph_id: str = Field(foreign_key="graphs.id", max_length=32)
    #: the graph version runs use (None: the newest at each delivery)
    graph_version: int | None = None
    #: the HMAC-SHA256 key deliveries are signed with (kept: the server must recompute signatures)
    secret: str = Field(max_length=64)
    #: graph input -> JSON pointer into the delivery body (None: the body's keys are input names)
    input_map: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: float
    deleted_at: float | None = None


class ScheduleRow(SQLModel, table=True):
    """A cron schedule of one saved graph; `next_fire_at` is claimed by compare-and-set, so with
    several API processes each fire starts one run."""

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_due", "enabled", "next_fire_at"),)

    id: str = Field(primary_key=True, max_length=32)
    project: str = Field(index=True, max_length=200)
    name: str = Field(default="", max_length=200)
    graph_id: str = Field(foreign_key="graphs.id", max_length=32)
    graph_version: int | None = None
    cron: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    inputs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    #: start a run while the previous run of this schedule is still in flight
    allow_overlap: bool = False
    #: fires missed while no server ran: `latest` runs once for them, `skip` runs none
    catchup: str = Field(default="latest", max_length=20)
    enabled: bool = True
    next_fire_at: float
    last_fire_at: float | None = None
    last_run_id: str | None = Field(default=None, max_length=32)
    fires: int = 0
    skipped_fires: int = 0
    last_skip_reason: str | None = Field(default=None, max_length=40)
    created_at: float
    deleted_at: float | None = None
