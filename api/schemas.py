"""Request and response models of the REST API (pydantic only, so the SDK client reuses them)."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from nodeloom.api.inputs import MAX_INT, bounded


class Scope(StrEnum):
    """What an API key may do: `read` anything of its project, `run` (also write graphs and start,
    cancel, resume, retry and approve runs), `admin` (also manage the project's keys). Each includes the ones before."""

    READ = "read"
    RUN = "run"
    ADMIN = "admin"


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: the API stopped while the run was in flight; `POST /v1/runs/{id}/resume` runs it again
    INTERRUPTED = "interrupted"
    #: nothing more runs until a `control.approve` node is decided (`POST /v1/runs/{id}/approvals/{node}`)
    WAITING = "waiting"

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


# -- errors --------------------------------------------------------------------------


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. `graph_invalid`, `not_found`")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


# -- service -------------------------------------------------------------------------


class Health(BaseModel):
    status: str = "ok"
    version: str
    executor: str
    database: str


# -- nodes ---------------------------------------------------------------------------


class NodeTypeInfo(BaseModel):
    """One node type of the catalog, with JSON Schemas of its inputs and outputs."""

    type: str
    version: int
    category: str
    description: str
    resources: str
    queue: str
    deterministic: bool
    retry: dict[str, Any]
    timeout: float | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class NodeCatalogResponse(BaseModel):
    format_version: int
    nodes: list[NodeTypeInfo]


# -- graphs --------------------------------------------------------------------------

#: request values checked at the edge (`nodeloom.api.inputs`): valid Unicode, nesting bounded
GraphDocument = Annotated[dict[str, Any], AfterValidator(bounded("graph", types=True))]
RunInputs = Annotated[dict[str, Any], AfterValidator(bounded("inputs"))]
Tags = Annotated[list[str], AfterValidator(bounded("tags"))]


class GraphCreate(BaseModel):
    """A graph to save: its JSON document (see docs/graph-format.md) and tags to find it by."""

    model_config = ConfigDict(extra="forbid")

    graph: GraphDocument
    tags: Tags = Field(default_factory=list, max_length=50)


class GraphUpdate(BaseModel):
    """A new version of a graph (`graph`), new tags, or both."""

    model_config = ConfigDict(extra="forbid")

    graph: GraphDocument | None = None
    tags: Tags | None = Field(default=None, max_length=50)


class GraphSummary(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    version: int = Field(description="the newest version")
    created_at: float
    updated_at: float


class GraphInfo(GraphSummary):
    """A graph at one version (the newest unless one was asked for)."""

    graph: dict[str, Any]
    graph_version: int = Field(description="the version of `graph`")


class GraphPage(BaseModel):
    """One page of graphs; iterating it yields the graphs (`for graph in api.list_graphs()`)."""

    items: list[GraphSummary]
    total: int
    limit: int
    offset: int

    def __iter__(self) -> Iterator[GraphSummary]:  # type: ignore[override]  # items, not pydantic's field pairs
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class GraphVersionInfo(BaseModel):
    version: int
    created_at: float


# -- runs ----------------------------------------------------------------------------


class RunSubmit(BaseModel):
    """Run a saved graph (`graph_id`, optionally at `version`) or an inline `graph`, with input values."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str | None = Field(default=None, max_length=64)
    version: int | None = Field(default=None, ge=1, le=MAX_INT)
    graph: GraphDocument | None = None
    inputs: RunInputs = Field(default_factory=dict)
    use_cache: bool = True

    @model_validator(mode="after")
    def _one_graph(self) -> RunSubmit:
        if (self.graph_id is None) == (self.graph is None):
            raise ValueError("give exactly one of graph_id (a saved graph) or graph (an inline graph document)")
        if self.version is not None and self.graph_id is None:
            raise ValueError("version needs graph_id")
        return self


class ApprovalInfo(BaseModel):
    """A `control.approve` node that waited: what it asks to review and, once made, the decision."""

    review: dict[str, Any] = Field(description='what to review: {"kind": "text" | "json" | "artifact", "value"}')
    message: str
    requested_at: float
    timeout: float | None = Field(description="seconds to wait for a decision (none: for ever)")
    on_timeout: str = Field(description="the action taken when the timeout passes: approve or reject")
    deadline: float | None
    action: str | None = Field(description="approve or reject; none while waiting")
    reason: str | None
    edited: bool = Field(description="the value was approved edited (`value`)")
    value: Any = None
    decided_by: dict[str, Any] | None = Field(
        description='the key that decided, {"key": id, "name": its name}; {"key": null, "name": "timeout"} when the '
                    "timeout's default action was taken")
    decided_at: float | None


class NodeRunInfo(BaseModel):
    id: str
    type: str
    state: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    duration: float | None
    cache_key: str | None
    error: dict[str, Any] | None
    approval: ApprovalInfo | None = None


class RunSummary(BaseModel):
    id: str
    status: RunState
    graph_id: str | None
    graph_version: int | None
    graph_name: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration: float | None
    resumes: int = Field(description="how many times the run was resumed after an interruption")


class RunInfo(RunSummary):
    """A run with its inputs, outputs (artifacts as references), errors and per-node states."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    errors: list[dict[str, Any]]
    nodes: dict[str, NodeRunInfo]
    idempotency_key: str | None


class NodePreviewInfo(BaseModel):
    node: str
    type: str
    action: str = Field(description="`cached`: the result comes from the cache; `run`: the node runs")
    reason: str | None = Field(description="why it runs: `not_cached`, `never_cached` (non-deterministic without "
                               "a seed), `seed_from_link`, `cache_off`")
    cache_key: str | None
    queue: str = Field(description="the queue it goes to on Celery workers (its lane kind on the others)")


class RunPreview(BaseModel):
    """What a run would do (`POST /v1/runs?dry_run=true`): nothing was started or stored."""

    dry_run: bool = True
    nodes: list[NodePreviewInfo]
    run: int = Field(description="how many nodes would run")
    cached: int = Field(description="how many would come from the cache")


class ApprovalDecision(BaseModel):
    """A decision at a waiting `control.approve` node (`POST /v1/runs/{id}/approvals/{node}`)."""

    model_config = ConfigDict(extra="forbid")

    action: Annotated[str, Field(pattern="^(approve|reject)$", description="approve or reject")]
    reason: str | None = Field(default=None, max_length=10_000, description="why (shown with a rejection)")
    value: Any = Field(default=None, description="approve this edited value instead of the one under review "
                                                 "(only with approve; leave it out to approve the value as it is)")

    @model_validator(mode="after")
    def _value_only_when_approving(self) -> ApprovalDecision:
        if self.action == "reject" and "value" in self.model_fields_set:
            raise ValueError("an edited value goes with approve, not reject")
        return self

    @property
    def edited(self) -> bool:
        return "value" in self.model_fields_set


class RunRetry(BaseModel):
    """Retry a run (`POST /v1/runs/{id}/retry`): its graph, or another version of the same saved graph,
    with the same inputs."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, le=MAX_INT,
                                description="a version of the run's saved graph to run instead of the run's own "
                                            "(a fix saved since); none: the version the run had")


class RetryNodeInfo(NodePreviewInfo):
    earlier_state: str | None = Field(description="the node's state in the earlier run (`done`, `cached`, `failed`, "
                                                  "`skipped`, ...); null: the earlier run had no such node")


class RunRetried(BaseModel):
    """A retry: the new run, and which of its nodes run and which take the earlier run's results."""

    retry_of: str = Field(description="the earlier run")
    run: RunInfo = Field(description="the new run, as it was when it started")
    nodes: list[RetryNodeInfo] = Field(description="each node, parents first: `cached` when its cache key is "
                                                   "unchanged and its result is stored, else `run` (and why)")
    rerun: list[str] = Field(description="the nodes that run: failed, skipped or changed since the earlier run "
                                         "(and nodes never cached)")
    reused: list[str] = Field(description="the nodes that take the earlier results (cache keys unchanged)")


class RunPage(BaseModel):
    """One page of runs; iterating it yields the runs (`for run in api.list_runs()`)."""

    items: list[RunSummary]
    total: int
    limit: int
    offset: int

    def __iter__(self) -> Iterator[RunSummary]:  # type: ignore[override]  # items, not pydantic's field pairs
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class RunEventInfo(BaseModel):
    """One event; in the event stream it is the `data` of an SSE message whose `id` is `seq`."""

    seq: int
    kind: str
    time: float
    node: str | None
    data: dict[str, Any]


# -- artifacts -----------------------------------------------------------------------


class ArtifactInfo(BaseModel):
    """An uploaded artifact, as a reference: give it as a run input of type Image, Audio, Video or File."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    artifact: str = Field(alias="$artifact", description="sha256:<64 hex digits> of the content")
    media_type: str = Field(description="the upload's Content-Type")
    size: int = Field(description="bytes")
    kind: str = Field(description="image, audio or video by the media type, else file")


# -- keys ----------------------------------------------------------------------------


class KeyCreate(BaseModel):
    """A new key for the caller's project."""

    model_config = ConfigDict(extra="forbid")

    scopes: list[Scope] = Field(min_length=1)
    name: Annotated[str, AfterValidator(bounded("name"))] = Field(default="", max_length=200)


class KeyInfo(BaseModel):
    id: str
    prefix: str
    project: str
    scopes: list[Scope]
    name: str
    created_at: float
    revoked_at: float | None


class KeyCreated(KeyInfo):
    key: str = Field(description="the secret key; shown this once, stored only hashed")


# -- drafts --------------------------------------------------------------------------


class DraftRequest(BaseModel):
    """A workflow in words, to be drafted into a graph by the server's configured LLM provider."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, AfterValidator(bounded("text"))] = Field(
        min_length=1, max_length=4000, description="what the graph should do, in words")
    max_repairs: int | None = Field(default=None, ge=0, le=5,
                                    description="rounds of feeding validation errors back to the LLM")
    base: dict[str, Any] | None = Field(
        default=None, description="a graph document to edit: `text` is then the instruction (add, remove, replace, "
                                  "rewire, set values) and the answer carries the edited graph and a `diff`")


class DraftClause(BaseModel):
    """What the drafter understood of one clause of the request."""

    index: int
    text: str
    served: bool = Field(description="some node of the graph serves the clause")
    recipes: list[str] = Field(default_factory=list, description="the recipes (capabilities) chosen for it")
    nodes: list[str] = Field(default_factory=list, description="the graph's nodes that serve it")
    slots: dict[str, Any] = Field(default_factory=dict, description="values read from its words (sizes, counts, ...)")
    refers_back: bool = False


class DraftInput(BaseModel):
    """A graph input of the draft: a value the user sets per run (required when it has no default)."""

    name: str
    type: str
    default: Any = None
    required: bool
    description: str = ""


class DraftRefusal(BaseModel):
    code: str
    message: str
    unmet: list[str] = Field(default_factory=list)


class DraftResponse(BaseModel):
    """A graph that validates (`ok`), or a refusal that says what could not be satisfied."""

    request: str
    ok: bool
    graph: dict[str, Any] | None = None
    program: str = ""
    plan: str = ""
    inputs: list[DraftInput] = Field(default_factory=list)
    repair_rounds: int = 0
    provider: str
    source: str = Field(description="recipes: composed from the recipe library; model: the LLM's program validated; "
                                    "planner: the typed planner completed it")
    llm_replies: int = 0
    refusal: DraftRefusal | None = None
    candidates: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    clauses: list[DraftClause] = Field(default_factory=list, description="per clause: the nodes and slots serving it")
    unserved: list[str] = Field(default_factory=list, description="clauses of the request no node serves")
    coverage: float = Field(default=1.0, description="share of the request's clauses that some node serves")
    example: str | None = Field(default=None, description="the example workflow adapted, if one was near enough")
    diff: list[str] | None = Field(default=None, description="for an edit: +node, -node, ~node.port lines")


# -- triggers and schedules ------------------------------------------------------------

#: a graph input name -> a JSON pointer (RFC 6901) into a trigger's delivery body
InputMap = Annotated[dict[str, Annotated[str, Field(max_length=500)]], Field(max_length=200)]


class TriggerCreate(BaseModel):
    """A webhook trigger of a saved graph: each signed delivery starts one run."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str = Field(max_length=64)
    version: int | None = Field(default=None, ge=1, le=MAX_INT,
                                description="the graph version runs use; none: the newest at each delivery")
    name: str = Field(default="", max_length=200)
    input_map: InputMap | None = Field(
        default=None, description="graph input -> JSON pointer into the body (`/product/title`); "
        "none: the body is an object whose keys are graph input names")


class TriggerInfo(BaseModel):
    id: str
    name: str
    graph_id: str
    version: int | None
    input_map: dict[str, str] | None
    url: str = Field(description="where deliveries are POSTed, relative to the server")
    created_at: float


class TriggerCreated(TriggerInfo):
    """The new trigger with its signing secret, shown in this response only."""

    secret: str = Field(description="sign each delivery: `X-Nodeloom-Signature: sha256=<hex HMAC-SHA256 of the body>`")


class TriggerFired(BaseModel):
    """The run a delivery started (or, for a delivery id seen before, the run it started then)."""

    run_id: str
    created: bool = Field(description="false when this delivery id had already started the run")


class CatchUp(StrEnum):
    """What a schedule does with fires missed while no server ran."""

    #: one run for all of them, as soon as a server is up
    LATEST = "latest"
    #: none: wait for the next fire time
    SKIP = "skip"


class ScheduleCreate(BaseModel):
    """Run a saved graph on a cron schedule, in a time zone."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str = Field(max_length=64)
    version: int | None = Field(default=None, ge=1, le=MAX_INT)
    name: str = Field(default="", max_length=200)
    cron: str = Field(max_length=200, description="5 fields (minute hour day month weekday), or 6 with seconds last")
    timezone: str = Field(default="UTC", max_length=64, description="an IANA time zone, e.g. `Europe/Paris`")
    inputs: RunInputs = Field(default_factory=dict)
    allow_overlap: bool = Field(default=False, description="start a run while this schedule's last run is in flight")
    catchup: CatchUp = CatchUp.LATEST
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    """Pause or resume a schedule."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class ScheduleInfo(BaseModel):
    id: str
    name: str
    graph_id: str
    version: int | None
    cron: str
    timezone: str
    inputs: dict[str, Any]
    allow_overlap: bool
    catchup: CatchUp
    enabled: bool
    next_fire_at: float
    last_fire_at: float | None
    last_run_id: str | None
    fires: int
    skipped_fires: int
    last_skip_reason: str | None
    created_at: float
