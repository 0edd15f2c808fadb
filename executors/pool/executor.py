"""The pool executor: runs graphs in a pool of worker processes, never in the caller's process.

Each worker is a child process (started with `spawn`: the parent has threads) holding a
`LocalExecutor`; it runs one run at a time, and runs wait in a queue for a free worker. The
parent keeps a mirror of every run (its events, node records and graph outputs), fed by the
worker over a pipe, so events, results and cancellation look exactly like the local
executor's. One supervisor thread reads every worker's pipe and watches the clocks:

- a node that overruns its timeout fails with `node_timeout` in the worker (its thread is
  abandoned), and that worker is replaced when the run ends, so the runaway code dies with it;
  a node that holds the worker so hard that no timeout can fire there (one C call holding the
  GIL) is caught by the parent `kill_grace` seconds later: the worker is killed at once and
  the parent fails the run, the node with `node_timeout`;
- a cancelled run whose worker does not answer within `kill_grace` seconds has its worker killed;
- a worker that dies mid-run fails that run (`worker_lost`), and is replaced.

The result cache lives in this process: workers ask it and feed it over their pipes, so a
result one worker computed is a hit on every other at once, and a durable cache (the API's
`DurableResultCache`) keeps a single writer.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from multiprocessing.connection import wait
from typing import Any

from nodeloom.core.artifacts import LocalArtifactStore, default_artifact_root, open_artifact_store
from nodeloom.core.cache import ResultCache
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import (
    NodeloomError,
    NodeTimeoutError,
    RunNotFoundError,
    RunTimeoutError,
    error_record,
)
from nodeloom.core.events import (
    EVENT_FIELDS,
    EventKind,
    EventLog,
    NodeRecord,
    NodeState,
    RunEvent,
    RunResult,
    RunStatus,
)
from nodeloom.core.graph import Graph
from nodeloom.core.validate import NodeCatalog
from nodeloom.executors.base import EventCallback, FollowedEvents, RunHandle, prepare_worker_run
from nodeloom.executors.local.run import copy_record
from nodeloom.executors.pool import worker as worker_main

log = logging.getLogger(__name__)


class WorkerStartError(NodeloomError):
    """A pool worker process exited or hung while loading its nodes."""

    code = "worker_start_failed"

_STATE_OF = {
    EventKind.NODE_STARTED: NodeState.RUNNING,
    EventKind.NODE_RETRYING: NodeState.PENDING,
    EventKind.NODE_WAITING: NodeState.WAITING,
    EventKind.NODE_CACHED: NodeState.CACHED,
    EventKind.NODE_DONE: NodeState.DONE,
    EventKind.NODE_FAILED: NodeState.FAILED,
    EventKind.NODE_SKIPPED: NodeState.SKIPPED,
    EventKind.NODE_CANCELLED: NodeState.CANCELLED,
}


def default_worker_count() -> int:
    """One worker per core (at least two, so one long run does not hold every other back)."""
    return max(2, os.cpu_count() or 2)


class _PoolRun(FollowedEvents):
    """The parent's mirror of one run: what its worker reported, or what the parent decided."""

    def __init__(self, run_id: str, graph: Graph, inputs: dict[str, Any], config: RunConfig, use_cache: bool,
                 timeouts: dict[str, float], callbacks: list[EventCallback]) -> None:
        self.run_id = run_id
        self.graph = graph
        self.inputs = inputs
        self.config = config
        self.use_cache = use_cache
        self.timeouts = timeouts
        self.callbacks = callbacks
        self.records = {node_id: NodeRecord(node_id, n.type) for node_id, n in graph.nodes.items()}
        self.outputs: dict[str, Any] = {}
        self.events = EventLog(run_id)
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.done = threading.Event()
        self.waiters = 0
        self.status = RunStatus.PENDING
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.result: RunResult | None = None
        self.worker: _Worker | None = None
        #: monotonic deadlines of the running nodes that have a timeout (their timeout plus the grace)
        self.deadlines: dict[str, float] = {}
        self.cancel_deadline: float | None = None
        #: a node thread was left running in the worker (timed out or cancelled): replace the worker after
        self.abandoned = False

    # -- events ----------------------------------------------------------------------
    def add(self, kind: EventKind, node: str | None, when: float, *values: Any) -> None:
        """Record an event (values as in `EVENT_FIELDS`), update the mirror, tell the callbacks."""
        with self.lock:
            if self.done.is_set():
                return
            self._apply(kind, node, when, values)
            self.events.add((kind.value, node, when, *values))
            if kind is EventKind.RUN_FINISHED:
                self.done.set()
            event = self.events.event(len(self.events) - 1)
            for callback in self.callbacks:
                try:
                    callback(event)
                except Exception:
                    log.exception("event callback failed for %s", event.kind)
            self.cond.notify_all()

    def add_event(self, event: RunEvent) -> None:
        self.add(event.kind, event.node, event.time, *(event.data.get(name) for name in EVENT_FIELDS[event.kind]))

    def _apply(self, kind: EventKind, node: str | None, when: float, values: tuple[Any, ...]) -> None:
        if kind is EventKind.RUN_STARTED:
            self.status = RunStatus.RUNNING
            return
        if kind is EventKind.RUN_FINISHED:
            self.status = RunStatus(values[0])
            self.finished_at = when
            return
        state = _STATE_OF.get(kind)
        record = self.records.get(node or "")
        if state is None or record is None:  # progress
            return
        if kind is EventKind.NODE_CANCELLED and record.state is NodeState.RUNNING:
            self.abandoned = True
        if kind is EventKind.NODE_FAILED and isinstance(values[1], dict) and values[1].get("code") == "node_timeout":
            self.abandoned = True
        if kind is EventKind.NODE_RETRYING and isinstance(values[2], dict) \
                and values[2].get("code") == "node_timeout":
            self.abandoned = True
        record.state = state
        if kind is EventKind.NODE_STARTED:
            record.attempts = int(values[0] or 1)
            if record.started_at is None:
                record.started_at = when
            timeout = self.timeouts.get(record.id)
            if timeout is not None and self.worker is not None:
                self.deadlines[record.id] = time.monotonic() + timeout + self.worker.pool.kill_grace
            return
        self.deadlines.pop(record.id, None)
        if kind is EventKind.NODE_RETRYING:
            return
        record.finished_at = when
        if kind is EventKind.NODE_CACHED:
            record.started_at = when
            record.cache_key = values[0]
        elif kind is EventKind.NODE_DONE:
            record.attempts = int(values[0] or record.attempts)
        elif kind is EventKind.NODE_FAILED:
            record.attempts = int(values[0] or record.attempts)
            record.error = values[1] if isinstance(values[1], dict) else {"message": str(values[1])}

    def finish(self, result: RunResult, event: RunEvent) -> None:
        """The worker's final result, then its `run.finished` (waiters see the result when they wake)."""
        with self.lock:
            result.run_id = self.run_id
            result.started_at = self.started_at
            self.result = result
            self.add_event(event)

    def stop(self, status: RunStatus, culprit: str | None, error: dict[str, Any], others: dict[str, Any]) -> None:
        """End the run here, its worker gone: `culprit` (or, with none running, the first unfinished
        node) fails with `error`, other running nodes with `others` (or are cancelled, for a
        cancelled run), the rest are skipped or cancelled."""
        with self.lock:
            if self.done.is_set():
                return
            now = time.time()
            unfinished = [record for record in self.records.values() if not record.state.terminal]
            running = [record for record in unfinished if record.state is NodeState.RUNNING]
            if status is RunStatus.FAILED and culprit is None:
                candidates = running or unfinished
                culprit = candidates[0].id if candidates else None
            for record in unfinished:
                if record.id == culprit:
                    self.add(EventKind.NODE_FAILED, record.id, now, max(record.attempts, 1), error)
                elif status is RunStatus.CANCELLED:
                    self.add(EventKind.NODE_CANCELLED, record.id, now)
                elif record.state is NodeState.RUNNING:
                    self.add(EventKind.NODE_FAILED, record.id, now, record.attempts, others)
                else:
                    self.add(EventKind.NODE_SKIPPED, record.id, now, culprit)
            self.result = self.snapshot(status, now)
            self.add(EventKind.RUN_FINISHED, None, now, status.value)

    # -- reading ---------------------------------------------------------------------
    def snapshot(self, status: RunStatus | None = None, finished_at: float | None = None) -> RunResult:
        with self.lock:
            if self.result is not None:
                return self.result
            return RunResult(
                run_id=self.run_id, status=status or self.status, outputs=dict(self.outputs),
                nodes={node_id: copy_record(record) for node_id, record in self.records.items()},
                started_at=self.started_at, finished_at=finished_at or self.finished_at,
            )


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, pool: PoolExecutor, number: int) -> None:
        self.pool = pool
        self.number = number
        self.connection, child = pool.context.Pipe(duplex=True)
        self.process = pool.context.Process(
            target=worker_main.serve, args=(child, pool.node_modules, pool.artifact_location, pool.cpu_workers),
            name=f"nodeloom-pool-{number}", daemon=True,
        )
        self.process.start()
        child.close()
        self.ready = False
        self.run: _PoolRun | None = None
        self._send_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> bool:
        return self.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> bool:
        try:
            with self._send_lock:
                self.connection.send_bytes(data)
        except (OSError, ValueError):  # the worker is gone: its sentinel tells the supervisor
            return False
        return True

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()

    @property
    def pid(self) -> int | None:
        return self.process.pid


class PoolExecutor:
    """Runs graphs in `workers` child processes, each a `LocalExecutor` running one run at a time.

    >>> with PoolExecutor(node_modules=["my_nodes"]) as executor:
    ...     result = executor.submit(graph, {"topic": "tea"}).result()

    The workers build their registry from `node_modules` (as Celery workers do), so every
    node type of a graph must be importable there: graphs holding Python-object node
    definitions that the registry does not know are refused. `artifacts` is a folder or an
    fsspec URL that every worker opens. `cache` is the result cache, kept in this process
    (an in-memory LRU of `cache_size` entries by default; the executor closes it).
    """

    def __init__(
        self,
        registry: NodeCatalog | None = None,
        *,
        node_modules: tuple[str, ...] | list[str] = (),
        workers: int | None = None,
        artifacts: str | os.PathLike[str] | None = None,
        cache: ResultCache | None = None,
        cache_size: int = 100_000,
        cpu_workers: int | None = None,
        config: RunConfig | None = None,
        keep_runs: int = 1000,
        kill_grace: float = 1.0,
        start_timeout: float = 120.0,
    ) -> None:
        if registry is None:
            from nodeloom.node_registry import registry_with

            registry = registry_with(tuple(node_modules))
        self.registry = registry
        self.node_modules = tuple(node_modules)
        self.artifact_location = os.fspath(artifacts) if artifacts is not None else str(default_artifact_root())
        self.artifacts = open_artifact_store(self.artifact_location)
        if isinstance(self.artifacts, LocalArtifactStore):
            self.artifact_location = str(self.artifacts.root.resolve())
        self.cache = cache if cache is not None else ResultCache(cache_size)
        self.cpu_workers = cpu_workers
        self.config = config or RunConfig()
        self.keep_runs = keep_runs
        self.kill_grace = kill_grace
        self.context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._runs: OrderedDict[str, _PoolRun] = OrderedDict()
        self._queue: deque[_PoolRun] = deque()
        self._closed = False
        self._numbers = iter(range(1, 1 << 62))
        self._wake_read, self._wake_write = self.context.Pipe(duplex=False)
        self._started = threading.Condition(self._lock)
        self._started_all = False
        self._workers = [_Worker(self, next(self._numbers)) for _ in range(workers or default_worker_count())]
        self._supervisor = threading.Thread(target=self._supervise, name="nodeloom-pool-supervisor", daemon=True)
        self._supervisor.start()
        self._wait_started(start_timeout)

    def _wait_started(self, timeout: float) -> None:
        """Wait until every worker has loaded its nodes; a worker that cannot start is an error here."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not all(worker.ready for worker in self._workers):
                dead = [w for w in self._workers if not w.ready and w.process.exitcode is not None]
                remaining = deadline - time.monotonic()
                if dead or remaining <= 0:
                    self._closed = True
                    for worker in self._workers:
                        worker.kill()
                    why = f"exit code {dead[0].process.exitcode}" if dead else f"not ready within {timeout:g} s"
                    raise WorkerStartError(f"a pool worker process could not start ({why}); its error is in "
                                           "the log above", details={"node_modules": list(self.node_modules)})
                self._started.wait(min(remaining, 0.2))
            self._started_all = True

    # -- the executor protocol -----------------------------------------------------
    def submit(
        self,
        graph: Graph,
        inputs: Mapping[str, Any] | None = None,
        *,
        config: RunConfig | None = None,
        on_event: EventCallback | None = None,
        use_cache: bool = True,
    ) -> RunHandle:
        plan, values = prepare_worker_run(graph, self.registry, inputs, "pool workers",
                                          "register their module on the workers (node_modules)")
        graph = plan.graph
        config = config or self.config
        chosen = config.cache
        run = _PoolRun(
            uuid.uuid4().hex, graph, dict(values), config, use_cache and chosen is not None and chosen is not False,
            {node_id: p.timeout for node_id, p in plan.nodes.items() if p.timeout is not None},
            [on_event] if on_event is not None else [],
        )
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool executor is closed")
            self._runs[run.run_id] = run
            self._forget_old_runs()
            # the run is started as far as callers can tell: it has an id and waits for a worker
            run.add(EventKind.RUN_STARTED, None, run.started_at, len(plan.nodes), graph.name)
            self._queue.append(run)
            self._dispatch()
        return RunHandle(self, run.run_id)

    def events(self, run_id: str, after: int = 0, timeout: float | None = None) -> Iterator[RunEvent]:
        return self._run(run_id).iter_events(after, timeout)

    def cancel(self, run_id: str) -> bool:
        run = self._run(run_id)
        with self._lock:
            if run.done.is_set():
                return False
            if run in self._queue:
                self._queue.remove(run)
                run.stop(RunStatus.CANCELLED, None, {}, {})
                return True
            worker = run.worker
            with run.lock:
                run.cancel_deadline = time.monotonic() + self.kill_grace
        if worker is not None:
            worker.send(("cancel", run_id))
        self._wake()
        # as on the local executor, the run has ended when cancel returns: its worker answers at
        # once, or is killed `kill_grace` seconds from now
        run.done.wait(self.kill_grace + 10)
        return True

    def result(self, run_id: str, timeout: float | None = None) -> RunResult:
        run = self._run(run_id)
        if not run.done.wait(timeout):
            raise RunTimeoutError(f"run {run_id} did not finish within {timeout} s", run_id=run_id, timeout=timeout)
        return run.snapshot()

    def status(self, run_id: str) -> RunResult:
        """A snapshot of the run now, finished or not."""
        return self._run(run_id).snapshot()

    def run(self, graph: Graph, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """Submit and wait: the result of the finished run."""
        return self.submit(graph, inputs, **options).result()

    def queued(self) -> int:
        """Runs waiting for a free worker."""
        with self._lock:
            return len(self._queue)

    def worker_pids(self) -> list[int]:
        """The process ids of the live workers."""
        with self._lock:
            return [w.pid for w in self._workers if w.pid is not None and w.process.is_alive()]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
            unfinished = [run for run in self._runs.values() if not run.done.is_set()]
        self._wake()
        self._supervisor.join(timeout=5)
        for worker in workers:
            worker.send(("stop",))
        deadline = time.monotonic() + 2
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()
            worker.process.join(1)
            worker.connection.close()
        for run in unfinished:  # release whoever waits on them; their events end here
            run.callbacks = []
            run.stop(RunStatus.FAILED, None, {"code": "executor_closed", "message": "the pool executor was closed"},
                     {"code": "executor_closed", "message": "the pool executor was closed"})
        self._wake_read.close()
        self._wake_write.close()
        self.cache.close()

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------
    def _run(self, run_id: str) -> _PoolRun:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r} on this executor", details={"run_id": run_id})
        return run

    def _forget_old_runs(self) -> None:
        excess = len(self._runs) - self.keep_runs
        if excess > 0:
            for run_id in [rid for rid, run in self._runs.items() if run.done.is_set()][:excess]:
                del self._runs[run_id]

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_write.send_bytes(b"")

    def _dispatch(self) -> None:
        """Hand queued runs to idle, ready workers (under the pool lock)."""
        for worker in self._workers:
            if not self._queue:
                return
            if not worker.ready or worker.run is not None:
                continue
            run = self._queue.popleft()
            message = ("run", run.run_id, run.graph.to_json(), run.inputs, run.config.to_json(), run.use_cache)
            try:
                data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                run.stop(RunStatus.FAILED, None, {"code": "not_sendable", "message":
                         "the run's inputs cannot be sent to a worker process (they have no pickled form)"}, {})
                continue
            run.worker = worker
            worker.run = run
            if not worker.send_bytes(data):  # it has just died: its replacement takes the run
                run.worker = worker.run = None
                self._queue.appendleft(run)

    def _supervise(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                workers = list(self._workers)
            waitables: list[Any] = [self._wake_read]
            for worker in workers:
                waitables.extend((worker.connection, worker.process.sentinel))
            try:
                ready = wait(waitables, timeout=self._next_deadline())
            except OSError:
                ready = []
            if self._wake_read in ready:
                while self._wake_read.poll():
                    try:
                        self._wake_read.recv_bytes()
                    except (EOFError, OSError):
                        return
            for worker in workers:
                if worker.connection in ready:
                    self._drain(worker)
                if worker.process.sentinel in ready:
                    self._drain(worker)
                    self._replace(worker)
            self._check_deadlines()

    def _drain(self, worker: _Worker) -> None:
        connection = worker.connection
        while True:
            try:
                if not connection.poll():
                    return
                data = connection.recv_bytes()
            except (EOFError, OSError):
                return  # it died: its sentinel is ready too
            try:
                message = pickle.loads(data)
            except Exception:  # a value whose class this process cannot load: that message is lost, not the pool
                log.exception("could not read a message of pool worker %s", worker.pid)
                continue
            try:
                self._handle(worker, message)
            except Exception:  # the supervisor must outlive any one message
                log.exception("could not handle a %r message of pool worker %s", message[0], worker.pid)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "event":
            _, run_id, event, outputs = message
            run = worker.run
            if run is None or run.run_id != run_id or event.kind is EventKind.RUN_STARTED:
                return  # the parent said run.started when the run was submitted
            if outputs:
                with run.lock:
                    run.outputs.update(outputs)
            run.add_event(event)
        elif kind == "finished":
            _, run_id, event, result = message
            run = worker.run
            if run is None or run.run_id != run_id:
                return
            run.finish(result, event)
            self._run_ended(worker, run)
        elif kind == "cache_get":
            _, number, key = message
            found = self.cache.get(key)
            try:
                data = pickle.dumps(("cache", number, found), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # kept in this process only (no pickled form): a miss for the worker
                data = pickle.dumps(("cache", number, None))
            worker.send_bytes(data)
        elif kind == "cache_put":
            self.cache.put(message[1], message[2])
        elif kind == "refused":
            _, run_id, text = message
            run = worker.run
            if run is not None and run.run_id == run_id:
                run.stop(RunStatus.FAILED, None, {"code": "worker_error", "message": text}, {})
                self._run_ended(worker, run)
        elif kind == "ready":
            with self._lock:
                worker.ready = True
                self._started.notify_all()
                self._dispatch()

    def _run_ended(self, worker: _Worker, run: _PoolRun) -> None:
        with self._lock:
            worker.run = None
            if run.abandoned:
                # a node thread of that run may still be going in there: the process goes with it
                log.info("replacing pool worker %s: a node of run %s overran its timeout or was cancelled",
                         worker.pid, run.run_id)
                self._replace(worker)
            self._dispatch()

    def _replace(self, worker: _Worker, reason: str | None = None, culprit: str | None = None,
                 error: dict[str, Any] | None = None, cancelled: bool = False) -> None:
        """Kill `worker` (if alive), end the run it held, and start another worker in its place.

        The run ends cancelled (`cancelled`), or failed: `culprit` with `error`, other running
        nodes with `worker_lost` naming `reason`; with no reason, the worker died by itself.
        """
        with self._lock:
            if worker not in self._workers:
                return
            worker.kill()
            worker.process.join(5)
            run = worker.run
            worker.run = None
            if run is not None and not run.done.is_set():
                if cancelled:
                    run.stop(RunStatus.CANCELLED, None, {}, {})
                else:
                    if reason is None:
                        reason = f"the worker process running this run died (exit code {worker.process.exitcode})"
                    lost = {"code": "worker_lost", "message": reason}
                    run.stop(RunStatus.FAILED, culprit, error or lost, lost)
            worker.connection.close()
            index = self._workers.index(worker)
            if self._closed or not (worker.ready or self._started_all):
                # closing, or a worker that died while the pool starts: the start reports it
                self._started.notify_all()
                return
            self._workers[index] = _Worker(self, next(self._numbers))
        self._wake()  # the supervisor waits on the new worker's pipe from its next round

    def _next_deadline(self) -> float | None:
        with self._lock:
            soonest: float | None = None
            for worker in self._workers:
                run = worker.run
                if run is None:
                    continue
                with run.lock:
                    moments = list(run.deadlines.values())
                    if run.cancel_deadline is not None:
                        moments.append(run.cancel_deadline)
                for moment in moments:
                    soonest = moment if soonest is None else min(soonest, moment)
        return None if soonest is None else max(0.0, soonest - time.monotonic())

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            for worker in list(self._workers):
                run = worker.run
                if run is None or run.done.is_set():
                    continue
                with run.lock:
                    overdue = [node_id for node_id, moment in run.deadlines.items() if moment <= now]
                    cancelled = run.cancel_deadline is not None and run.cancel_deadline <= now
                if cancelled:
                    log.warning("killing pool worker %s: run %s did not stop within %g s of its cancel",
                                worker.pid, run.run_id, self.kill_grace)
                    self._replace(worker, cancelled=True)
                elif overdue:
                    node_id = overdue[0]
                    timeout = run.timeouts[node_id]
                    info, _ = error_record(NodeTimeoutError(
                        f"node {node_id!r} did not finish within {timeout:g} s; its worker process was killed",
                        node=node_id))
                    log.warning("killing pool worker %s: node %s of run %s overran its %g s timeout",
                                worker.pid, node_id, run.run_id, timeout)
                    self._replace(worker, f"its worker process was killed: node {node_id!r} overran its timeout",
                                  node_id, info)
