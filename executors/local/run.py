"""One run on the local executor: dependency counting, caching, retries, timeouts, events.

All state changes happen under the run's lock; node code runs outside it. A node whose
inputs are ready is first looked up in the result cache: a hit completes at once (and
may make its successors ready in turn), a miss is handed to the lane of its resources.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from nodeloom.core.approvals import ApprovalPending
from nodeloom.core.artifacts import ArtifactStore
from nodeloom.core.attempt import AttemptOfRun, call_node, failure_outcome, timeout_error
from nodeloom.core.branches import SKIPPED_KEY, split_taken, untaken
from nodeloom.core.cache import ResultCache, value_token
from nodeloom.core.context import RunConfig
from nodeloom.core.events import EventKind, EventLog, NodeRecord, NodeState, RunEvent, RunResult, RunStatus
from nodeloom.core.plan import ExecutionPlan, PlannedNode
from nodeloom.executors.base import FollowedEvents
from nodeloom.executors.local.lanes import AsyncLoop, Lane, Timers

log = logging.getLogger(__name__)

# the stored form of the two events every executed node records (see `EventLog.add`)
_NODE_STARTED = EventKind.NODE_STARTED.value
_NODE_DONE = EventKind.NODE_DONE.value
_NODE_CACHED = EventKind.NODE_CACHED
# the states every node passes through, as module globals: on Python 3.11 `NodeState.RUNNING` is an
# unspecialized lookup on the enum class (measured gain: 2.6k of 88.1k instr/node, chain-100 under callgrind)
_PENDING = NodeState.PENDING
_RUNNING = NodeState.RUNNING
_DONE = NodeState.DONE
_CACHED = NodeState.CACHED


class RunHost(Protocol):
    """What a run needs of the executor that runs it (`LocalExecutor`)."""

    cache: ResultCache
    artifacts: ArtifactStore
    timers: Timers
    async_loop: AsyncLoop

    def dispatch(self, run: LocalRun, ready: list[str], current: Lane | None) -> str | None: ...

    def run_finished(self, run: LocalRun) -> None: ...


class _Attempt(AttemptOfRun):
    """One try of one node. `abandoned` is set on timeout or cancel: its result is then ignored."""

    __slots__ = ("abandoned", "future", "lane", "node_id", "number", "run", "sync")
    run: LocalRun

    def __init__(self, run: LocalRun, node_id: str, number: int, lane: Lane, sync: bool) -> None:
        self.run = run
        self.node_id = node_id
        self.number = number
        self.lane = lane
        self.sync = sync
        self.abandoned = False
        self.future: concurrent.futures.Future[Any] | None = None

    # -- the AttemptSite of core.attempt: read only by nodes that take a NodeContext ----------
    @property
    def artifacts(self) -> ArtifactStore:
        return self.run.executor.artifacts

    @property
    def device(self) -> str | None:
        return self.lane.device

    def is_cancelled(self) -> bool:
        return self.abandoned

    @property
    def cache(self) -> ResultCache | None:
        return self.run.cache

    def progress(self, done: float, total: float | None, message: str) -> None:
        self.run._on_progress(self, done, total, message)

    def run_async(self, coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        """Run an async node on the executor's event loop thread, cancellable through `future`."""
        future = self.run.executor.async_loop.submit(coroutine)
        self.future = future
        if self.abandoned:  # timed out or cancelled before the future existed
            future.cancel()
        return future.result()


class LocalRun(FollowedEvents):
    def __init__(
        self,
        executor: RunHost,
        plan: ExecutionPlan,
        run_id: str,
        input_values: Mapping[str, Any],
        config: RunConfig,
        callbacks: list[Callable[[RunEvent], None]],
        use_cache: bool,
    ) -> None:
        self.executor = executor
        self.plan = plan
        self.run_id = run_id
        self.input_values = dict(input_values)
        self.input_tokens = {name: value_token(value) for name, value in self.input_values.items()}
        self.config = config
        self.callbacks = callbacks
        chosen = config.cache
        # a run's cache: RunConfig(cache=...) chooses it, use_cache=False turns it off
        self.cache: ResultCache | None = (
            None if not use_cache or chosen is None or chosen is False
            else executor.cache if chosen is True else chosen
        )
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.records = {node_id: NodeRecord(node_id, p.definition.spec.type) for node_id, p in plan.nodes.items()}
        self.remaining = dict(plan.upstream_counts)
        #: per join (`control.first`): how many of its linked inputs did not arrive
        self.missing: dict[str, int] = {}
        self.values: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str | None] = {}
        self.running: dict[str, _Attempt] = {}
        #: approval nodes waiting for a decision, and the pending nodes after them (they no longer
        #: count in `unfinished`: the run settles as `waiting` when only these are left)
        self.waiting: set[str] = set()
        self.held: set[str] = set()
        self.unfinished = len(plan.nodes)
        self.events = EventLog(run_id)
        self.waiters = 0
        self.status = RunStatus.PENDING
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.any_failed = False
        self.done = threading.Event()

    # -- events --------------------------------------------------------------------
    def _emit(self, kind: EventKind, node: str | None, now: float, *values: Any) -> None:
        """Record an event (`values` as in `EVENT_FIELDS`), tell the callbacks, wake readers."""
        self.events.add((kind._value_, node, now, *values))
        if self.callbacks or self.waiters:
            self._announce()

    def _announce(self) -> None:
        """Tell the callbacks about the event just recorded and wake the readers waiting for it.

        The node hot path records its events with `events.add` and calls this only when
        someone listens (`self.callbacks or self.waiters`), saving a call per event.
        """
        events = self.events
        if self.callbacks:
            event = events.event(len(events) - 1)
            for callback in self.callbacks:
                try:
                    callback(event)
                except Exception:
                    log.exception("event callback failed for %s", event.kind)
        if self.waiters:
            self.cond.notify_all()

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> list[str]:
        """Start the run: complete the cached roots, return the roots that must run."""
        with self.lock:
            self.status = RunStatus.RUNNING
            self._emit(EventKind.RUN_STARTED, None, time.time(), len(self.plan.nodes), self.plan.graph.name)
            ready = self._settle(list(self.plan.roots))
            self._maybe_finish()
        return ready

    def _maybe_finish(self) -> None:
        if self.unfinished or self.done.is_set():
            return
        if self.status is not RunStatus.CANCELLED:
            self.status = (RunStatus.FAILED if self.any_failed else RunStatus.WAITING if self.waiting
                           else RunStatus.SUCCEEDED)
        self.finished_at = time.time()
        # keep only what the result needs: the values behind the graph outputs
        wanted = {link.node for link in self.plan.outputs.values()}
        self.values = {node_id: v for node_id, v in self.values.items() if node_id in wanted}
        self._emit(EventKind.RUN_FINISHED, None, self.finished_at, self.status.value)
        self.done.set()
        self.cond.notify_all()
        self.executor.run_finished(self)

    def _settle(self, candidates: list[str]) -> list[str]:
        """Nodes whose inputs are all ready: complete cache hits now, return the misses to run."""
        to_run: list[str] = []
        work = candidates  # callers hand over a list of their own
        cache = self.cache
        nodes = self.plan.nodes
        keys = self.keys
        input_tokens = self.input_tokens
        while work:
            node_id = work.pop()
            planned = nodes[node_id]
            seed = self._gather(planned).get("seed") if planned.seeded else None
            key = planned.key(input_tokens, keys, seed)
            keys[node_id] = key
            record = self.records[node_id]
            record.cache_key = key
            hit = cache.get(key) if (key is not None and cache is not None) else None
            if hit is None:
                to_run.append(node_id)
                continue
            self.values[node_id] = hit
            record.state = _CACHED
            now = record.started_at = record.finished_at = time.time()
            self.unfinished -= 1
            self._emit(_NODE_CACHED, node_id, now, key)
            gone = untaken(planned.definition.spec.output_map, hit) if planned.conditional else None
            work.extend(self._pass_on(planned, gone) if gone else self._release_children(planned))
        return to_run

    def _release_children(self, planned: PlannedNode) -> list[str]:
        ready: list[str] = []
        remaining = self.remaining
        for child in planned.downstream:
            count = remaining[child] - 1
            remaining[child] = count
            if not count:
                ready.append(child)
        if self.held:
            self._unhold(ready)
        return ready

    def _unhold(self, ready: list[str]) -> None:
        """Nodes held after a waiting approval that became ready after all (a join whose path
        through the approval a branch skipped) run, so they count as unfinished again."""
        for node_id in ready:
            if node_id in self.held:
                self.held.discard(node_id)
                self.unfinished += 1

    # -- running a node (on a lane worker) -----------------------------------------
    def execute(self, node_id: str, lane: Lane) -> str | None:
        planned = self.plan.nodes[node_id]
        definition = planned.definition
        # measured gain (bench/overhead.py chain-100 under callgrind): acquire/release rather than `with` here and in
        # `_attempt_finished`, and `_emit` written out for NODE_STARTED and NODE_DONE, save 7.0k of 103.1k instr/node
        lock = self.lock
        lock.acquire()
        try:
            record = self.records[node_id]
            if record.state is not _PENDING or self.finished_at is not None:
                return None  # cancelled or skipped while queued
            record.state = _RUNNING
            number = record.attempts = record.attempts + 1
            attempt = _Attempt(self, node_id, number, lane, not definition.is_async)
            self.running[node_id] = attempt
            now = time.time()
            if record.started_at is None:
                record.started_at = now
            # `_emit` written out (see the measured gain above)
            self.events.add((_NODE_STARTED, node_id, now, number))
            if self.callbacks or self.waiters:
                self._announce()
            if planned.timeout is not None:
                self._arm_timeout(attempt, planned.timeout)
        finally:
            lock.release()
        outputs: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            inputs = planned.gather_inputs(self.input_values, self.values, True)
            outputs = call_node(definition, node_id, inputs, attempt)
        except (concurrent.futures.CancelledError, asyncio.CancelledError) as cancelled:
            error = cancelled
        except Exception as failure:
            error = failure
            log.debug("node %s failed", node_id, exc_info=True)
        return self._attempt_finished(planned, attempt, outputs, error)

    def _arm_timeout(self, attempt: _Attempt, timeout: float) -> None:
        # a method rather than a lambda in `execute`: a closure there would make every node's call of
        # `execute` allocate cells for `self`, the attempt and the timeout
        self.executor.timers.call_at(time.monotonic() + timeout, lambda: self._on_timeout(attempt, timeout))

    def _gather(self, planned: PlannedNode, check: bool = False) -> dict[str, Any]:
        return planned.gather_inputs(self.input_values, self.values, check)

    def _on_progress(self, attempt: _Attempt, done: float, total: float | None, message: str) -> None:
        with self.lock:
            if attempt.abandoned or self.done.is_set():
                return
            self._emit(EventKind.NODE_PROGRESS, attempt.node_id, time.time(), done, total, message)

    def _attempt_finished(
        self, planned: PlannedNode, attempt: _Attempt, outputs: dict[str, Any] | None, error: BaseException | None
    ) -> str | None:
        lock = self.lock  # acquire/release rather than `with`: see the measured gain in `execute`
        lock.acquire()
        try:
            if attempt.abandoned:
                if attempt.sync:
                    attempt.lane.release_spare()
                return None
            node_id = planned.id
            del self.running[node_id]
            ready: list[str] | None = None
            if error is None and outputs is not None:
                # the node succeeded: `_emit` written out (see the measured gain in `execute`)
                record = self.records[node_id]
                record.state = _DONE
                now = record.finished_at = time.time()
                gone = None
                if planned.conditional:
                    outputs, gone = split_taken(outputs)
                self.values[node_id] = outputs
                key = record.cache_key  # as `_settle` set it
                if key is not None and self.cache is not None:
                    self.cache.put(key, outputs)
                self.unfinished -= 1
                started = record.started_at
                self.events.add((_NODE_DONE, node_id, now, record.attempts, now - (started or now)))
                if self.callbacks or self.waiters:
                    self._announce()
                if planned.downstream:
                    released = self._pass_on(planned, gone) if gone else self._release_children(planned)
                    if released:
                        ready = self._settle(released)
            elif isinstance(error, ApprovalPending):
                self._wait(planned, error)
            else:
                self._fail_attempt(planned, attempt, error or RuntimeError("node returned nothing"))
            if not self.unfinished:
                self._maybe_finish()
        finally:
            lock.release()
        return self.executor.dispatch(self, ready, attempt.lane) if ready else None

    def _fail_attempt(self, planned: PlannedNode, attempt: _Attempt, error: BaseException) -> None:
        node_id = planned.id
        record = self.records[node_id]
        info, delay = failure_outcome(error, attempt.number, planned.retry)
        if delay is not None and not self.done.is_set():
            record.state = NodeState.PENDING
            self._emit(EventKind.NODE_RETRYING, node_id, time.time(), attempt.number, delay, info)
            self.executor.timers.call_at(time.monotonic() + delay, lambda: self._retry(node_id))
            return
        record.state = NodeState.FAILED
        record.finished_at = time.time()
        record.error = info
        self.any_failed = True
        self.unfinished -= 1
        self._emit(EventKind.NODE_FAILED, node_id, record.finished_at, record.attempts, info)
        self._skip_descendants(planned)

    def _wait(self, planned: PlannedNode, pending: ApprovalPending) -> None:
        """The node waits for a decision: it and the pending nodes after it stop holding the run open."""
        node_id = planned.id
        record = self.records[node_id]
        record.state = NodeState.WAITING
        record.finished_at = time.time()
        self.waiting.add(node_id)
        self.unfinished -= 1
        self._emit(EventKind.NODE_WAITING, node_id, record.finished_at, *pending.event_values())
        nodes = self.plan.nodes
        work = list(planned.downstream)
        while work:
            child = work.pop()
            if child in self.held or self.records[child].state is not NodeState.PENDING:
                continue
            self.held.add(child)
            self.unfinished -= 1
            work.extend(nodes[child].downstream)

    def _settled(self, node_id: str) -> None:
        """Count a pending node as settled (skipped or cancelled), unless it was held after a waiting node."""
        if node_id in self.held:
            self.held.discard(node_id)
        else:
            self.unfinished -= 1

    def _retry(self, node_id: str) -> None:
        self.executor.dispatch(self, [node_id], None)

    def _skip_descendants(self, planned: PlannedNode) -> None:
        work = list(planned.downstream)
        nodes = self.plan.nodes
        while work:
            node_id = work.pop()
            record = self.records[node_id]
            if record.state is not NodeState.PENDING:
                continue
            record.state = NodeState.SKIPPED
            self._settled(node_id)
            self._emit(EventKind.NODE_SKIPPED, node_id, time.time(), planned.id, "upstream_failed")
            work.extend(nodes[node_id].downstream)

    def _pass_on(self, planned: PlannedNode, gone: frozenset[str] | None) -> list[str]:
        """Release the children of a node some of whose outputs (`gone`; None: all of them, the
        node was skipped) did not come: a child linked to one of those is skipped for the reason
        `branch`, and so on downstream, while a join counts the inputs that did not arrive and
        is skipped only when none did. Returns the children made ready."""
        ready: list[str] = []
        work: list[tuple[PlannedNode, frozenset[str] | None]] = [(planned, gone)]
        nodes = self.plan.nodes
        remaining = self.remaining
        while work:
            parent, lost = work.pop()
            for child_id in parent.downstream:
                record = self.records[child_id]
                if record.state is not NodeState.PENDING:
                    continue
                child = nodes[child_id]
                used = [output for _, node, output in child.links if node == parent.id]
                absent = sum(1 for output in used if lost is None or output in lost)
                if child.joins:
                    missing = self.missing[child_id] = self.missing.get(child_id, 0) + absent
                    remaining[child_id] -= 1
                    if remaining[child_id]:
                        continue
                    if missing < len(child.links) or child.literals or child.graph_inputs:
                        ready.append(child_id)
                        continue
                elif not absent:
                    remaining[child_id] -= 1
                    if not remaining[child_id]:
                        ready.append(child_id)
                    continue
                record.state = NodeState.SKIPPED
                record.finished_at = time.time()
                self.keys[child_id] = SKIPPED_KEY  # a join after it is keyed by what did not arrive
                self._settled(child_id)
                self._emit(EventKind.NODE_SKIPPED, child_id, record.finished_at, parent.id, "branch")
                work.append((child, None))
        if self.held:
            self._unhold(ready)
        return ready

    def _abandon(self, attempt: _Attempt) -> None:
        """Stop waiting for an attempt: its thread may go on, but its result is ignored."""
        attempt.abandoned = True
        self.running.pop(attempt.node_id, None)
        if attempt.future is not None:
            attempt.future.cancel()
        elif attempt.sync:
            attempt.lane.add_spare()

    def _on_timeout(self, attempt: _Attempt, timeout: float) -> None:
        with self.lock:
            if attempt.abandoned or self.running.get(attempt.node_id) is not attempt:
                return
            self._abandon(attempt)
            self._fail_attempt(self.plan.nodes[attempt.node_id], attempt, timeout_error(attempt.node_id, timeout))
            self._maybe_finish()

    def cancel(self) -> bool:
        with self.lock:
            if self.done.is_set():
                return False
            self.status = RunStatus.CANCELLED
            now = time.time()
            for attempt in list(self.running.values()):
                self._abandon(attempt)
            for node_id, record in self.records.items():
                if not record.state.terminal:
                    record.state = NodeState.CANCELLED
                    record.finished_at = now
                    self._settled(node_id)
                    self._emit(EventKind.NODE_CANCELLED, node_id, now)
            self._maybe_finish()
            return True

    # -- reporting -----------------------------------------------------------------
    def snapshot(self) -> RunResult:
        """The run's result; records are copied only while the run can still change them."""
        with self.lock:
            finished = self.done.is_set()
            outputs: dict[str, Any] = {}
            for name, link in self.plan.outputs.items():
                produced = self.values.get(link.node)
                # an output a branch did not take is absent, like one of a skipped node
                if produced is not None and self.records[link.node].state.succeeded and link.output in produced:
                    outputs[name] = produced[link.output]
            return RunResult(
                run_id=self.run_id,
                status=self.status,
                outputs=outputs,
                nodes=dict(self.records) if finished else {k: copy_record(r) for k, r in self.records.items()},
                started_at=self.started_at,
                finished_at=self.finished_at,
            )


def copy_record(record: NodeRecord) -> NodeRecord:
    """A copy of `record` that later changes to it do not reach (for a snapshot of a running run)."""
    return NodeRecord(
        record.id, record.type, record.state, record.attempts, record.started_at,
        record.finished_at, record.cache_key, dict(record.error) if record.error else None,
    )
