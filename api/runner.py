"""Submitting, cancelling, resuming, approving and recovering runs: the API's side of the executor protocol.

A run that waits at a `control.approve` node has settled (status `waiting`): no worker or
thread holds it. A decision is stored in `approvals` and the run is then started again under
the same id, as a resumed run is, with every decision of the run in its `RunConfig.approvals`:
the nodes that had finished come from the result cache, and the approve node returns the
decided value. Because everything lives in the database, this works the same after a restart;
a timer takes the default action of approvals whose deadline has passed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from nodeloom.api.auth import Identity
from nodeloom.api.errors import ApiError, not_found
from nodeloom.api.graph_store import project_catalog
from nodeloom.api.recorder import RunRecorder
from nodeloom.api.schemas import ApprovalDecision, RunState, RunSubmit
from nodeloom.api.tables import ApiKeyRow, ApprovalRow, GraphRow, GraphVersionRow, RunEventRow, RunNodeRow, RunRow
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import GraphValidationError, NodeloomError, RunNotFoundError
from nodeloom.core.graph import Graph
from nodeloom.core.plan import prepare_run
from nodeloom.core.preflight import preflight
from nodeloom.core.preview import NodePreview, preview_run
from nodeloom.core.subgraphs import expanded
from nodeloom.core.validate import NodeCatalog, check_run_inputs, validate_graph
from nodeloom.executors.base import Executor

log = logging.getLogger("nodeloom.api")

_IN_FLIGHT = ("pending", "running")
_RESUMABLE = ("interrupted", "failed", "cancelled")

#: the event kind that records a decision, by action
_DECIDED = {"approve": "node.approved", "reject": "node.rejected"}

#: seconds between two looks for approvals whose timeout has passed
APPROVAL_TICK = 1.0


def request_digest(request: RunSubmit) -> str:
    """SHA-256 of the submit's canonical JSON: what an `Idempotency-Key` is bound to."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def checked_graph(document: Mapping[str, Any], catalog: NodeCatalog) -> Graph:
    """The graph of a document; raises `GraphValidationError` with every problem found."""
    issues = validate_graph(dict(document), catalog)
    if issues:
        raise GraphValidationError(issues)
    return Graph.from_json(dict(document))


def check_node_count(document: Mapping[str, Any], max_nodes: int) -> None:
    """Refuse (422) a graph document with more than `max_nodes` nodes before validating it."""
    nodes = document.get("nodes")
    if isinstance(nodes, Mapping | list) and len(nodes) > max_nodes:
        raise ApiError(422, "too_many_nodes", f"the graph has {len(nodes)} nodes; at most {max_nodes} are allowed",
                       {"nodes": len(nodes), "max_nodes": max_nodes})


class RunService:
    """Starts runs on the executor and keeps their rows in step with it."""

    def __init__(self, engine: Engine, executor: Executor, catalog: NodeCatalog, recorder: RunRecorder,
                 run_config: RunConfig | None = None) -> None:
        self.engine = engine
        self.executor = executor
        self.catalog = catalog
        self.recorder = recorder
        #: the settings of every run (the server's: whether network nodes may reach private addresses)
        self.run_config = run_config or RunConfig()
        self._followers: list[threading.Thread] = []
        #: decisions and the restarts they cause, one at a time (a decision racing the run settling)
        self._deciding = threading.Lock()
        self._closed = threading.Event()
        self._timer: threading.Thread | None = None
        recorder.on_waiting = self._on_waiting

    # -- submit ----------------------------------------------------------------------
    def submit(self, identity: Identity, request: RunSubmit, idempotency_key: str | None) -> tuple[str, bool]:
        """Start a run; returns its id and whether it is new (False: an earlier submit with the same key)."""
        digest = request_digest(request)
        if idempotency_key is not None:
            earlier = self._by_idempotency_key(identity.project, idempotency_key, digest)
            if earlier is not None:
                return earlier, False
        graph_id, version, document = self._document(identity, request)
        catalog = project_catalog(self.catalog, self.engine, identity.project)
        # graph nodes are expanded here, with the project's saved graphs: node rows and events use path ids
        graph = expanded(checked_graph(document, catalog), catalog)
        _, issues = check_run_inputs(graph, request.inputs)
        issues = issues or preflight(graph, catalog, request.inputs, self.run_config)  # before anything is queued
        if issues:
            raise GraphValidationError(issues)
        run_id = uuid.uuid4().hex
        run = RunRow(
            id=run_id, project=identity.project, graph_id=graph_id, graph_version=version,
            graph_name=graph.name[:200], document=dict(document), inputs=dict(request.inputs),
            use_cache=request.use_cache, idempotency_key=idempotency_key,
            request_digest=digest if idempotency_key is not None else None, created_at=time.time(),
        )
        with Session(self.engine) as session:
            try:
                session.add(run)
                session.flush()  # the run row first: node rows refer to it
                for node_id, instance in graph.nodes.items():
                    session.add(RunNodeRow(run_id=run_id, node_id=node_id, type=instance.type))
                session.commit()
            except IntegrityError:
                # a concurrent submit with the same Idempotency-Key won the race
                session.rollback()
                earlier = self._by_idempotency_key(identity.project, idempotency_key or "", digest)
                if earlier is None:
                    raise
                return earlier, False
        self._start(run_id, graph, dict(request.inputs), request.use_cache, base=0)
        return run_id, True

    def preview(self, identity: Identity, request: RunSubmit) -> list[NodePreview]:
        """What `submit` would run and take from the cache, checked as `submit` checks; starts nothing."""
        _, _, document = self._document(identity, request)
        catalog = project_catalog(self.catalog, self.engine, identity.project)
        graph = expanded(checked_graph(document, catalog), catalog)
        plan, values = prepare_run(graph, catalog, request.inputs)
        issues = preflight(graph, catalog, request.inputs, self.run_config)
        if issues:
            raise GraphValidationError(issues)
        return preview_run(plan, values, self.executor.cache if request.use_cache else None)

    def _by_idempotency_key(self, project: str, key: str, digest: str) -> str | None:
        """The run an earlier submit with this key started, if any; 409 when its body was another."""
        with Session(self.engine) as session:
            run = session.exec(
                select(RunRow).where(RunRow.project == project, RunRow.idempotency_key == key)
            ).first()
            if run is None:
                return None
            if run.request_digest is not None and run.request_digest != digest:
                raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was used by a submit with "
                               "another body; use a new key for a different request",
                               {"idempotency_key": key, "run": run.id})
            run_id, status = run.id, run.status
        if status == "interrupted":  # the retried submit of a run the API lost: run it again
            self.resume(project, run_id)
        return run_id

    def _document(self, identity: Identity, request: RunSubmit) -> tuple[str | None, int | None, dict[str, Any]]:
        if request.graph is not None:
            return None, None, request.graph
        graph_id = request.graph_id or ""
        with Session(self.engine) as session:
            graph = session.get(GraphRow, graph_id)
            if graph is None or graph.project != identity.project or graph.deleted_at is not None:
                raise not_found("graph", graph_id)
            version = request.version or graph.latest_version
            stored = session.get(GraphVersionRow, (graph_id, version))
            if stored is None:
                raise ApiError(404, "not_found", f"graph {graph_id!r} has no version {version}",
                               {"graph": graph_id, "version": version})
            return graph_id, version, dict(stored.document)

    def _start(self, run_id: str, graph: Graph, inputs: dict[str, Any], use_cache: bool, base: int,
               decisions: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        # the recorder stores the executor's run id with the run.started event (it is the event's run_id)
        try:
            listener = self.recorder.listener(run_id, base, {node_id: n.type for node_id, n in graph.nodes.items()})
            config = dataclasses.replace(self.run_config, approvals=dict(decisions or {}))
            self.executor.submit(graph, inputs, config=config, on_event=listener, use_cache=use_cache)
        except NodeloomError as error:
            self._fail_to_start(run_id, error)
            raise

    def _fail_to_start(self, run_id: str, error: NodeloomError) -> None:
        with Session(self.engine) as session:
            run = session.get(RunRow, run_id)
            if run is not None:
                run.status = "failed"
                run.errors = [{"code": error.code, "message": error.message}]
                run.finished_at = time.time()
                session.add(run)
                session.commit()

    # -- cancel and resume -----------------------------------------------------------
    def owned_run(self, session: Session, project: str, run_id: str) -> RunRow:
        run = session.get(RunRow, run_id)
        if run is None or run.project != project:
            raise not_found("run", run_id)
        return run

    def cancel(self, project: str, run_id: str) -> None:
        """Cancel a run in flight; a finished run is left as it is."""
        self.recorder.flush(timeout=5)  # so a run that has just started has its executor run id stored
        with Session(self.engine) as session:
            run = self.owned_run(session, project, run_id)
            if run.status not in (*_IN_FLIGHT, "interrupted", "waiting"):
                return
            executor_run_id = run.executor_run_id
            if run.status in ("interrupted", "waiting") or executor_run_id is None:
                self._mark(session, run, "cancelled")
                return
        try:
            self.executor.cancel(executor_run_id)
        except RunNotFoundError:
            with Session(self.engine) as session:
                self._mark(session, self.owned_run(session, project, run_id), "cancelled")
            return
        self.recorder.flush(timeout=5)

    def resume(self, project: str, run_id: str) -> None:
        """Run an interrupted, failed or cancelled run again under the same id.

        Its events number on; with the result cache, nodes that already succeeded in this
        API process are not run again.
        """
        with Session(self.engine) as session:
            run = self.owned_run(session, project, run_id)
            if run.status not in _RESUMABLE:
                raise ApiError(409, "conflict", f"run {run_id!r} is {run.status}; only {', '.join(_RESUMABLE)} "
                               "runs can be resumed", {"run": run_id, "status": run.status})
            self._reopen(session, run)

    def _reopen(self, session: Session, run: RunRow) -> None:
        """Start `run` again under its id: its events number on, its unfinished nodes are pending again,
        and its approval nodes get the decisions stored so far."""
        run_id = run.id
        last = session.exec(select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run_id)).one()
        run.event_base = int(last or 0)
        run.status = "pending"
        run.resumes += 1
        run.outputs = None
        run.errors = None
        run.finished_at = None
        run.executor_run_id = None
        session.add(run)
        for node in session.exec(select(RunNodeRow).where(RunNodeRow.run_id == run_id)).all():
            if node.state not in ("done", "cached"):
                node.state = "pending"
                node.error = None
                session.add(node)
        decisions = {approval.node_id: _decision(approval) for approval in session.exec(
            select(ApprovalRow).where(ApprovalRow.run_id == run_id, col(ApprovalRow.action).is_not(None))).all()}
        session.commit()
        graph = expanded(Graph.from_json(run.document), project_catalog(self.catalog, self.engine, run.project))
        inputs, use_cache, base = dict(run.inputs), run.use_cache, run.event_base
        self.recorder.signals.notify([run_id])
        self._start(run_id, graph, inputs, use_cache, base, decisions)

    # -- approvals -------------------------------------------------------------------
    def approve(self, identity: Identity, run_id: str, node_id: str, decision: ApprovalDecision) -> None:
        """Decide at a waiting approval node; the run goes on at once, or as soon as it has settled.

        404 for an unknown run or node; 409 (`not_waiting`) when the node does not wait for a decision.
        """
        with self._deciding, Session(self.engine) as session:
            run = self.owned_run(session, identity.project, run_id)
            node = session.get(RunNodeRow, (run_id, node_id))
            if node is None:
                raise ApiError(404, "not_found", f"run {run_id!r} has no node {node_id!r}",
                               {"run": run_id, "node": node_id})
            approval = session.get(ApprovalRow, (run_id, node_id))
            if approval is None or approval.action is not None or node.state != "waiting" \
                    or run.status not in (*_IN_FLIGHT, "waiting"):
                already = "" if approval is None or approval.action is None else \
                    f" (it was {_DECIDED[approval.action].removeprefix('node.')})"
                raise ApiError(409, "not_waiting", f"node {node_id!r} of run {run_id!r} is not waiting for "
                               f"approval{already}: the node is {node.state}, the run {run.status}",
                               {"run": run_id, "node": node_id, "state": node.state, "run_status": run.status,
                                "action": None if approval is None else approval.action})
            key = session.get(ApiKeyRow, identity.key_id)
            claimed = _claim(session, run_id, node_id, action=decision.action, reason=decision.reason,
                             edited=decision.edited, value=decision.value if decision.edited else None,
                             decided_by_key=identity.key_id, decided_by_name=key.name if key is not None else "",
                             decided_at=time.time())
            if not claimed:  # another API process decided first
                raise ApiError(409, "not_waiting", f"node {node_id!r} of run {run_id!r} was decided meanwhile",
                               {"run": run_id, "node": node_id, "state": node.state, "run_status": run.status})
            session.refresh(run)
            if run.status == "waiting":
                self._continue(session, run)

    def _continue(self, session: Session, run: RunRow, settled: str = "waiting") -> None:
        """Record the decisions made at the run's waiting nodes as events, and start the run again;
        `settled` is the status the run settled with (`pending`: it was decided while it ran)."""
        waiting = {node.node_id for node in session.exec(
            select(RunNodeRow).where(RunNodeRow.run_id == run.id, RunNodeRow.state == "waiting")).all()}
        decided = [approval for approval in session.exec(
            select(ApprovalRow).where(ApprovalRow.run_id == run.id, col(ApprovalRow.action).is_not(None))
            .order_by(col(ApprovalRow.decided_at))).all() if approval.node_id in waiting]
        if not decided:
            return
        reopened = session.execute(update(RunRow).where(col(RunRow.id) == run.id, col(RunRow.status) == settled)
                                   .values(status="pending")).rowcount  # type: ignore[attr-defined]
        if reopened != 1:  # another API process started it again first
            session.rollback()
            return
        last = int(session.exec(select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run.id)).one() or 0)
        for seq, approval in enumerate(decided, start=last + 1):
            session.add(RunEventRow(run_id=run.id, seq=seq, kind=_DECIDED[approval.action or ""],
                                    time=approval.decided_at or time.time(), node=approval.node_id,
                                    data=_decision(approval)))
        session.flush()
        self._reopen(session, run)

    def _on_waiting(self, run_ids: list[str]) -> None:
        """Runs that have just settled at approval nodes decided while they ran: go on with them."""
        with self._deciding, Session(self.engine) as session:
            for run_id in run_ids:
                run = session.get(RunRow, run_id)
                if run is not None and run.status == "pending":
                    self._continue(session, run, settled="pending")

    def decide_overdue(self, now: float | None = None) -> list[tuple[str, str]]:
        """Take the default action of every undecided approval whose deadline has passed, and go on
        with every waiting run that has a decision; returns the (run, node) pairs decided."""
        now = time.time() if now is None else now
        decided: list[tuple[str, str]] = []
        with self._deciding, Session(self.engine) as session:
            overdue = session.exec(select(ApprovalRow).where(
                col(ApprovalRow.action).is_(None), col(ApprovalRow.deadline) <= now)).all()
            runs: set[str] = set()
            chosen = [(approval.run_id, approval.node_id, approval.on_timeout, approval.timeout)
                      for approval in overdue]
            for run_id, node_id, action, timeout in chosen:
                if _claim(session, run_id, node_id, action=action, reason=f"no decision within {timeout or 0:g} s",
                          edited=False, value=None, decided_by_key=None, decided_by_name="timeout", decided_at=now):
                    decided.append((run_id, node_id))
                    runs.add(run_id)
            # a decision that raced with its run settling (it read the run still running): go on with it too
            runs.update(session.exec(
                select(RunRow.id).join(RunNodeRow, col(RunNodeRow.run_id) == RunRow.id)
                .join(ApprovalRow, (col(ApprovalRow.run_id) == RunRow.id)
                      & (col(ApprovalRow.node_id) == RunNodeRow.node_id))
                .where(RunRow.status == "waiting", RunNodeRow.state == "waiting",
                       col(ApprovalRow.action).is_not(None))
            ).all())
            for run_id in sorted(runs):
                run = session.get(RunRow, run_id)
                if run is not None and run.status == "waiting":
                    self._continue(session, run)
        return decided

    def start_timer(self, tick: float = APPROVAL_TICK) -> None:
        """Look for overdue approvals every `tick` seconds on a thread of its own, until `close`."""
        def look() -> None:
            while not self._closed.wait(tick):
                try:
                    self.decide_overdue()
                except Exception:
                    log.exception("could not take the default action of overdue approvals")

        self._timer = threading.Thread(target=look, name="nodeloom-api-approvals", daemon=True)
        self._timer.start()

    def close(self) -> None:
        self._closed.set()
        if self._timer is not None:
            self._timer.join(timeout=5)

    # -- retry -----------------------------------------------------------------------
    def retry(self, identity: Identity, run_id: str, version: int | None) -> tuple[str, list[NodePreview],
                                                                                    dict[str, str]]:
        """Start a new run of an earlier run's graph (or of `version` of the same saved graph) with its inputs.

        The new run uses the result cache: nodes whose cache keys are unchanged take the earlier
        results, and the failed, skipped and changed nodes run. Returns the new run's id, what it
        was planned to do (the dry-run preview) and the earlier run's node states.
        """
        with Session(self.engine) as session:
            earlier = self.owned_run(session, identity.project, run_id)
            if earlier.status in _IN_FLIGHT:
                raise ApiError(409, "run_in_flight", f"run {run_id!r} is {earlier.status}; retry it when it has "
                               "finished (or cancel it)", {"run": run_id, "status": earlier.status})
            if version is not None and (earlier.graph_id is None
                                        or session.get(GraphVersionRow, (earlier.graph_id, version)) is None):
                whose = "an inline graph" if earlier.graph_id is None else f"graph {earlier.graph_id!r}"
                raise ApiError(422, "invalid_version", f"run {run_id!r} ran {whose}, which has no version {version}",
                               {"run": run_id, "graph": earlier.graph_id, "version": version})
            states = {node.node_id: node.state
                      for node in session.exec(select(RunNodeRow).where(RunNodeRow.run_id == run_id)).all()}
            if earlier.graph_id is None:
                request = RunSubmit(graph=earlier.document, inputs=earlier.inputs)
            else:
                request = RunSubmit(graph_id=earlier.graph_id, version=version or earlier.graph_version,
                                    inputs=earlier.inputs)
        previews = self.preview(identity, request)  # before the new run starts filling the cache
        new_id, _ = self.submit(identity, request, None)
        return new_id, previews, states

    def _mark(self, session: Session, run: RunRow, status: str) -> None:
        run.status = status
        run.finished_at = time.time() if RunState(status).terminal else None
        session.add(run)
        for node in session.exec(select(RunNodeRow).where(RunNodeRow.run_id == run.id)).all():
            if node.state in ("pending", "running", "waiting"):
                node.state = "cancelled" if status == "cancelled" else "interrupted"
                session.add(node)
        session.commit()
        self.recorder.signals.notify([run.id])

    # -- start-up --------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Deal with runs that were in flight when the API last stopped.

        A run the executor still knows (Celery workers kept going) is followed again from
        the last stored event; any other is marked `interrupted`. Returns the interrupted ids.
        """
        interrupted: list[str] = []
        with Session(self.engine) as session:
            runs = session.exec(select(RunRow).where(col(RunRow.status).in_(_IN_FLIGHT))).all()
            for run in runs:
                recorded = session.exec(select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run.id)).one()
                after = int(recorded or 0) - run.event_base
                if run.executor_run_id is not None and self._follow(run.id, run.executor_run_id, after, run.event_base):
                    continue
                self._mark(session, run, "interrupted")
                interrupted.append(run.id)
        if interrupted:
            log.warning("marked %d runs interrupted (in flight when the API stopped): %s", len(interrupted),
                        ", ".join(interrupted))
        return interrupted

    def _follow(self, run_id: str, executor_run_id: str, after: int, base: int) -> bool:
        try:  # status raises when this executor does not know the run (it died with the API)
            self.executor.status(executor_run_id)
        except RunNotFoundError:
            return False
        listener = self.recorder.listener(run_id, base)

        def follow() -> None:
            try:
                for event in self.executor.events(executor_run_id, after):
                    listener(event)
            except NodeloomError:
                log.exception("lost the events of run %s", run_id)

        thread = threading.Thread(target=follow, name=f"nodeloom-api-follow-{run_id[:8]}", daemon=True)
        self._followers.append(thread)
        thread.start()
        return True


def _decision(approval: ApprovalRow) -> dict[str, Any]:
    """A stored decision as the approve node reads it (`RunConfig.approvals`) and its event shows it."""
    decision: dict[str, Any] = {"action": approval.action, "reason": approval.reason, "edited": approval.edited,
                                "decided_by": {"key": approval.decided_by_key, "name": approval.decided_by_name},
                                "decided_at": approval.decided_at}
    if approval.edited:
        decision["value"] = approval.value
    return decision


def _claim(session: Session, run_id: str, node_id: str, **decision: Any) -> bool:
    """Store a decision at an undecided approval (compare-and-set: one decision wins, whichever API
    process makes it); committed. False when it was already decided."""
    claimed = session.execute(
        update(ApprovalRow).where(col(ApprovalRow.run_id) == run_id, col(ApprovalRow.node_id) == node_id,
                                  col(ApprovalRow.action).is_(None)).values(**decision)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(claimed == 1)
