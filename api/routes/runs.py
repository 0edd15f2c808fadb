"""`/v1/runs`: submit (idempotent with `Idempotency-Key`), inspect, list, cancel, resume, retry, approve,
follow the events (Server-Sent Events, resumable with `Last-Event-ID`), download artifacts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import func
from sqlmodel import Session, col, select

from nodeloom.api.deps import DbSession, Reader, Runner, State
from nodeloom.api.errors import ERROR_RESPONSES, ApiError, not_found
from nodeloom.api.inputs import MAX_INT
from nodeloom.api.runner import check_node_count
from nodeloom.api.schemas import (
    ApprovalDecision,
    ApprovalInfo,
    ErrorResponse,
    NodePreviewInfo,
    NodeRunInfo,
    RetryNodeInfo,
    RunInfo,
    RunPage,
    RunPreview,
    RunRetried,
    RunRetry,
    RunState,
    RunSubmit,
    RunSummary,
)
from nodeloom.api.tables import ApprovalRow, RunEventRow, RunNodeRow, RunRow
from nodeloom.core.approvals import APPROVE_TYPES
from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.errors import ArtifactNotFoundError

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=ERROR_RESPONSES)

#: seconds a quiet event stream waits before sending a keep-alive comment
_KEEP_ALIVE = 15.0
#: finished runs whose response bodies are kept in memory, and the largest body kept
_CACHED_RUNS = 20_000
_CACHED_BODY_LIMIT = 64 * 1024


def _summary(run: RunRow) -> RunSummary:
    duration = None if run.started_at is None or run.finished_at is None else run.finished_at - run.started_at
    return RunSummary(id=run.id, status=RunState(run.status), graph_id=run.graph_id, graph_version=run.graph_version,
                      graph_name=run.graph_name, created_at=run.created_at, started_at=run.started_at,
                      finished_at=run.finished_at, duration=duration, resumes=run.resumes)


def _approval_info(approval: ApprovalRow) -> ApprovalInfo:
    decided_by = None if approval.action is None else {"key": approval.decided_by_key,
                                                        "name": approval.decided_by_name}
    return ApprovalInfo(review=approval.review, message=approval.message, requested_at=approval.requested_at,
                        timeout=approval.timeout, on_timeout=approval.on_timeout, deadline=approval.deadline,
                        action=approval.action, reason=approval.reason, edited=approval.edited,
                        value=approval.value, decided_by=decided_by, decided_at=approval.decided_at)


def run_info(run: RunRow, nodes: list[RunNodeRow], approvals: list[ApprovalRow] | None = None) -> RunInfo:
    asked = {approval.node_id: _approval_info(approval) for approval in approvals or ()}
    return RunInfo(
        **_summary(run).model_dump(), inputs=run.inputs, outputs=run.outputs or {}, errors=run.errors or [],
        idempotency_key=run.idempotency_key,
        nodes={
            node.node_id: NodeRunInfo(
                id=node.node_id, type=node.type, state=node.state, attempts=node.attempts,
                started_at=node.started_at, finished_at=node.finished_at,
                duration=None if node.started_at is None or node.finished_at is None
                else node.finished_at - node.started_at,
                cache_key=node.cache_key, error=node.error, approval=asked.get(node.node_id),
            )
            for node in nodes
        },
    )


def _snapshot(session: Session, project: str, run_id: str) -> tuple[RunRow, list[RunNodeRow], list[ApprovalRow]]:
    """The run and its nodes read by one statement, so one snapshot: never a pending run with a done node;
    then its approvals, if it has any approval node."""
    query = (select(RunRow, RunNodeRow).outerjoin(RunNodeRow, col(RunNodeRow.run_id) == RunRow.id)
             .where(RunRow.id == run_id).execution_options(populate_existing=True))
    rows = session.exec(query).all()
    if not rows or rows[0][0].project != project:
        raise not_found("run", run_id)
    nodes = [node for _, node in rows if node is not None]
    approvals: list[ApprovalRow] = []
    if any(node.type in APPROVE_TYPES for node in nodes):
        approvals = list(session.exec(select(ApprovalRow).where(ApprovalRow.run_id == run_id)
                                      .execution_options(populate_existing=True)).all())
    return rows[0][0], nodes, approvals


def _owned(session: Session, project: str, run_id: str) -> RunRow:
    run = session.get(RunRow, run_id)
    if run is None or run.project != project:
        raise not_found("run", run_id)
    return run


def _respond(state: State, session: Session, project: str, run_id: str, status: int = 200) -> tuple[Response, str]:
    """The run's response and the run status it shows (one consistent snapshot)."""
    cached = state.finished_runs.get(run_id)
    if cached is not None:
        if cached[0] != project:
            raise not_found("run", run_id)
        return Response(cached[1], status_code=status, media_type="application/json"), "finished"
    run, nodes, approvals = _snapshot(session, project, run_id)
    body = run_info(run, nodes, approvals).model_dump_json().encode()
    if RunState(run.status).terminal and len(body) <= _CACHED_BODY_LIMIT:
        # finished runs change only when resumed, which forgets them
        if len(state.finished_runs) >= _CACHED_RUNS:
            state.finished_runs.clear()
        state.finished_runs[run_id] = (project, body)
    return Response(body, status_code=status, media_type="application/json"), run.status


@router.post(
    "", response_model=RunInfo, status_code=201,
    summary="Submit a run of a saved graph or an inline graph",
    responses={200: {"model": RunInfo | RunPreview,
                     "description": "an earlier submit with the same Idempotency-Key (a run), or with "
                     "dry_run=true what the run would do (a preview: nothing started)"},
               400: {"model": ErrorResponse, "description": "an empty Idempotency-Key"},
               409: {"model": ErrorResponse, "description": "the Idempotency-Key was used with another body "
                     "(code idempotency_key_reused)"},
},
)
def submit_run(
    body: RunSubmit,
    state: State,
    identity: Runner,
    dry_run: Annotated[bool, Query(description="check the run and say which nodes would run and which would come "
                                               "from the cache, on which queue; start nothing")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=200, description="a retried submit with the same "
                                                  "key returns the same run instead of starting another")] = None,
) -> Response:
    if idempotency_key is not None and not idempotency_key.strip():
        raise ApiError(400, "idempotency_key_empty", "Idempotency-Key must not be empty; leave the header out instead")
    if body.graph is not None:
        check_node_count(body.graph, state.settings.max_nodes)
    if dry_run:
        previews = state.runs.preview(identity, body)
        running = sum(1 for preview in previews if preview.action == "run")
        nodes = [NodePreviewInfo(**preview.to_json()) for preview in previews]
        answer = RunPreview(nodes=nodes, run=running, cached=len(previews) - running)
        return Response(answer.model_dump_json(), media_type="application/json")
    run_id, created = state.runs.submit(identity, body, idempotency_key)
    with Session(state.engine) as session:
        return _respond(state, session, identity.project, run_id, 201 if created else 200)[0]


@router.get("", response_model=RunPage, summary="List runs, newest first; filter by graph, state and time")
def list_runs(
    session: DbSession,
    identity: Reader,
    graph_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[RunState | None, Query(description="runs in this state")] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601 or epoch seconds)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601 or epoch seconds)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> RunPage:
    conditions: list[Any] = [RunRow.project == identity.project]
    if graph_id is not None:
        conditions.append(RunRow.graph_id == graph_id)
    if status is not None:
        conditions.append(RunRow.status == status.value)
    if since is not None:
        conditions.append(col(RunRow.created_at) >= _epoch(since))
    if until is not None:
        conditions.append(col(RunRow.created_at) < _epoch(until))
    total = session.exec(select(func.count(col(RunRow.id))).where(*conditions)).one()
    rows = session.exec(select(RunRow).where(*conditions).order_by(col(RunRow.created_at).desc(), col(RunRow.id))
                        .offset(offset).limit(limit)).all()
    return RunPage(items=[_summary(row) for row in rows], total=int(total), limit=limit, offset=offset)


def _epoch(moment: datetime) -> float:
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        raise ApiError(422, "invalid_request", f"time {moment.isoformat()} is out of range") from None


@router.get("/{run_id}", response_model=RunInfo, summary="A run: state, per-node states, timings, attempts, outputs")
async def get_run(
    run_id: str,
    state: State,
    identity: Reader,
    wait: Annotated[float, Query(ge=0, le=60, description="long poll: answer when the run has finished (or was "
                                 "interrupted), or after this many seconds, whichever comes first")] = 0,
) -> Response:
    cached = state.finished_runs.get(run_id)
    if cached is not None and cached[0] == identity.project:  # a finished run: no database, no thread
        return Response(cached[1], media_type="application/json")
    if wait <= 0:
        return (await to_thread.run_sync(_read_run, state, identity.project, run_id))[0]
    deadline = time.monotonic() + wait
    signals = state.runs.recorder.signals
    while True:
        changed = signals.subscribe(run_id)
        try:
            response, settled = await to_thread.run_sync(_read_run, state, identity.project, run_id)
            remaining = deadline - time.monotonic()
            if settled or remaining <= 0:
                return response
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        finally:
            signals.unsubscribe(run_id, changed)


def _read_run(state: State, project: str, run_id: str) -> tuple[Response, bool]:
    """The run's response, and whether it has settled (finished or interrupted)."""
    with Session(state.engine) as session:
        response, status = _respond(state, session, project, run_id)
        return response, status not in ("pending", "running")  # the status of the body sent


@router.post("/{run_id}/cancel", response_model=RunInfo, summary="Cancel a run (a finished run is left as it is)")
def cancel_run(run_id: str, state: State, identity: Runner) -> Response:
    state.runs.cancel(identity.project, run_id)
    state.forget_run(run_id)
    with Session(state.engine) as session:
        return _respond(state, session, identity.project, run_id)[0]


@router.post(
    "/{run_id}/resume", response_model=RunInfo,
    summary="Run an interrupted, failed or cancelled run again under the same id",
    responses={409: {"model": ErrorResponse, "description": "the run is not resumable"}},
)
def resume_run(run_id: str, state: State, identity: Runner) -> Response:
    state.forget_run(run_id)
    state.runs.resume(identity.project, run_id)
    state.forget_run(run_id)  # a read that raced with the resume may have cached the old body
    with Session(state.engine) as session:
        return _respond(state, session, identity.project, run_id)[0]


@router.post(
    "/{run_id}/retry", response_model=RunRetried, status_code=201,
    summary="Start a new run of a finished run's graph and inputs in which only the failed, skipped and "
            "changed nodes run",
    description="The other nodes, whose cache keys are unchanged, take the earlier run's results from the result "
                "cache. `version` runs another version of the same saved graph. The answer says which nodes run "
                "and which are reused.",
    responses={409: {"model": ErrorResponse, "description": "the run is still pending or running "
                                                            "(code run_in_flight)"},
               422: {"model": ErrorResponse, "description": "`version` is not a version of the run's graph "
                                                            "(code invalid_version), or the graph or inputs are "
                                                            "invalid"}},
)
def retry_run(run_id: str, state: State, identity: Runner,
              body: Annotated[RunRetry | None, Body()] = None) -> RunRetried:
    new_id, previews, earlier = state.runs.retry(identity, run_id, (body or RunRetry()).version)
    nodes = [RetryNodeInfo(**preview.to_json(), earlier_state=earlier.get(preview.node)) for preview in previews]
    with Session(state.engine) as session:
        run = run_info(*_snapshot(session, identity.project, new_id))
    return RunRetried(retry_of=run_id, run=run, nodes=nodes,
                      rerun=[node.node for node in nodes if node.action == "run"],
                      reused=[node.node for node in nodes if node.action == "cached"])


@router.post(
    "/{run_id}/approvals/{node_id:path}", response_model=RunInfo,
    summary="Decide at a control.approve node that waits: approve, approve an edited value, or reject with a reason",
    description="The run goes on at once (or, when other nodes are still running, as soon as they have settled): "
                "the nodes that had finished are not run again, and the approve node passes on the approved value "
                "or fails with the reason. The decision, the key that made it and when are kept with the node "
                "(`nodes[node].approval`) and as a `node.approved` or `node.rejected` event.",
    responses={404: {"model": ErrorResponse, "description": "no such run, or the run has no such node"},
               409: {"model": ErrorResponse, "description": "the node is not waiting for approval "
                                                            "(code not_waiting)"}},
)
def approve_node(run_id: str, node_id: str, body: ApprovalDecision, state: State, identity: Runner) -> Response:
    state.runs.approve(identity, run_id, node_id, body)
    state.forget_run(run_id)
    with Session(state.engine) as session:
        return _respond(state, session, identity.project, run_id)[0]


def _events_after(state: State, run_id: str, after: int) -> tuple[list[RunEventRow], str]:
    with Session(state.engine) as session:
        run = session.get(RunRow, run_id)
        status = run.status if run is not None else "failed"
        rows = session.exec(select(RunEventRow).where(RunEventRow.run_id == run_id, col(RunEventRow.seq) > after)
                            .order_by(col(RunEventRow.seq)).limit(1000)).all()
        return list(rows), status


async def _event_stream(state: State, run_id: str, after: int) -> AsyncIterator[str]:
    signals = state.runs.recorder.signals
    while True:
        changed = signals.subscribe(run_id)
        try:
            rows, status = await to_thread.run_sync(_events_after, state, run_id, after)
            for row in rows:
                data = json.dumps({"seq": row.seq, "kind": row.kind, "time": row.time, "node": row.node,
                                   "data": row.data}, ensure_ascii=False)
                yield f"id: {row.seq}\nevent: {row.kind}\ndata: {data}\n\n"
                after = row.seq
            if rows:
                continue
            if status not in ("pending", "running"):  # finished or interrupted: every event is stored
                return
            try:
                await asyncio.wait_for(changed.wait(), _KEEP_ALIVE)
            except TimeoutError:
                yield ": keep-alive\n\n"
        finally:
            signals.unsubscribe(run_id, changed)


@router.get(
    "/{run_id}/events",
    response_class=StreamingResponse,
    summary="The run's events as Server-Sent Events, live until it finishes",
    description="Each message has `id` = the event's `seq`, `event` = its kind and `data` = the event as JSON "
                "(see RunEventInfo). Reconnect with `Last-Event-ID` (or `after`) to go on where you stopped.",
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "an event stream"}},
)
def run_events(
    run_id: str,
    state: State,
    session: DbSession,
    identity: Reader,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT, description="send events with seq > after")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    _owned(session, identity.project, run_id)
    start = after or 0
    if last_event_id is not None:
        seq = last_event_id.strip()
        if not seq.isdigit() or not seq.isascii() or int(seq) > MAX_INT:
            raise ApiError(422, "invalid_request", f"Last-Event-ID must be an event seq (an integer 0..{MAX_INT})",
                           {"last_event_id": last_event_id})
        start = max(start, int(seq))
    return StreamingResponse(_event_stream(state, run_id, start), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _artifact_in(value: Any, digest: str) -> ArtifactRef | None:
    if isinstance(value, dict):
        if value.get("$artifact") == f"sha256:{digest}":
            try:
                return ArtifactRef.from_json(value)
            except ValueError:
                return None
        values: Any = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return None
    for item in values:
        found = _artifact_in(item, digest)
        if found is not None:
            return found
    return None


@router.get(
    "/{run_id}/artifacts/{digest}",
    response_class=FileResponse,
    summary="Download an artifact of the run's outputs, or one a control.approve node asks to review",
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "the artifact's bytes, served with its media type"}},
)
def download_artifact(run_id: str, digest: str, state: State, session: DbSession, identity: Reader) -> FileResponse:
    run = _owned(session, identity.project, run_id)
    digest = digest.removeprefix("sha256:")
    ref = _artifact_in(run.outputs or {}, digest)
    if ref is None:  # what an approval node shows its reviewer (or showed) is the run's too
        reviews = session.exec(select(ApprovalRow.review).where(ApprovalRow.run_id == run_id)).all()
        ref = _artifact_in(list(reviews), digest)
    if ref is None:
        raise ApiError(404, "not_found", f"run {run_id!r} has no output or reviewed artifact sha256:{digest}",
                       {"run": run_id, "artifact": digest})
    try:
        path = state.artifacts.path(ref)
    except ArtifactNotFoundError as error:
        raise ApiError(404, "artifact_missing", error.message, error.details) from None
    return FileResponse(path, media_type=ref.media_type, filename=f"{digest[:16]}{ref.extension}")
