"""Writes what executors report into the database, so runs outlive the API process.

Executors call the event callback on their own threads, often while holding a run's
lock; the callback only queues the event. One writer thread stores the queued events in
batches, one transaction per batch: the events, the per-node states they imply, and,
on `run.finished`, the run's status, outputs and node records, all visible at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

from nodeloom.api import tables  # noqa: F401 - defines the tables of SQLModel.metadata
from nodeloom.api.db import write_lock
from nodeloom.api.writer import BatchWriter
from nodeloom.core.errors import NodeloomError
from nodeloom.core.events import EventKind, NodeRecord, RunEvent, RunResult
from nodeloom.core.values import value_to_json
from nodeloom.executors.base import EventCallback, Executor

log = logging.getLogger("nodeloom.api")

_NODE_STATES = {
    EventKind.NODE_STARTED: "running",
    EventKind.NODE_RETRYING: "running",
    EventKind.NODE_WAITING: "waiting",
    EventKind.NODE_CACHED: "cached",
    EventKind.NODE_DONE: "done",
    EventKind.NODE_FAILED: "failed",
    EventKind.NODE_SKIPPED: "skipped",
    EventKind.NODE_CANCELLED: "cancelled",
}

#: called with (node type, seconds) for every node that finished running
NodeTimer = Callable[[str, float], None]

_RUNS = SQLModel.metadata.tables["runs"]
_NODES = SQLModel.metadata.tables["run_nodes"]
_EVENTS = SQLModel.metadata.tables["run_events"]
_APPROVALS = SQLModel.metadata.tables["approvals"]

#: called with the ids of runs that have just settled waiting at approval nodes already decided (stored
#: as `pending`, so no one sees them wait): the API starts them again
WaitingHook = Callable[[list[str]], None]


def _storable(value: Any) -> Any:
    """`value` (JSON) with text that is not valid Unicode (lone surrogates) repaired with U+FFFD,
    which every database and response can hold."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)
        return value
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _json(value: Any) -> Any:
    return _storable(value_to_json(value, describe_unknown=True))


def _node_columns(record: NodeRecord) -> dict[str, Any]:
    return {"state": record.state.value, "attempts": record.attempts, "started_at": record.started_at,
            "finished_at": record.finished_at, "cache_key": record.cache_key,
            "error": _json(record.error)}


def _result_columns(result: RunResult) -> dict[str, Any]:
    return {"status": result.status.value, "outputs": _json(result.outputs),
            "errors": _json(result.errors()),
            "finished_at": result.finished_at or time.time()}


def _decided_while_running(connection: Connection, run_id: str) -> bool:
    """Whether a node the run now waits at was decided while the run's other nodes ran."""
    found = connection.execute(
        select(_APPROVALS.c.node_id).join(_NODES, (_NODES.c.run_id == _APPROVALS.c.run_id)
                                          & (_NODES.c.node_id == _APPROVALS.c.node_id))
        .where(_APPROVALS.c.run_id == run_id, _APPROVALS.c.action.is_not(None), _NODES.c.state == "waiting")
        .limit(1)).first()
    return found is not None


def _approval_row(run_id: str, event: RunEvent) -> dict[str, Any]:
    data = event.data
    timeout = data.get("timeout")
    timeout = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
    return {"run_id": run_id, "node_id": event.node, "review": _json(data.get("review") or {}),
            "message": str(data.get("message") or ""), "timeout": timeout,
            "on_timeout": "approve" if data.get("on_timeout") == "approve" else "reject",
            "requested_at": event.time, "deadline": None if timeout is None else event.time + timeout,
            "edited": False}


class RunSignals:
    """Wakes async routes waiting on a run when its stored record changes, so they need not poll.

    Subscribe before reading the record, then wait: a change in between still wakes the waiter.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def subscribe(self, run_id: str) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._waiters.setdefault(run_id, set()).add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, run_id: str, event: asyncio.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(run_id)
            if waiters is None:
                return
            for entry in [entry for entry in waiters if entry[1] is event]:
                waiters.discard(entry)
            if not waiters:
                del self._waiters[run_id]

    def notify(self, run_ids: Iterable[str]) -> None:
        with self._lock:
            entries = [entry for run_id in set(run_ids) for entry in self._waiters.get(run_id, ())]
        for loop, event in entries:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its waiter is gone
                continue


class RunRecorder:
    """Queues executor events and stores them on one writer thread."""

    def __init__(self, engine: Engine, executor: Executor, on_node_time: NodeTimer | None = None) -> None:
        self.engine = engine
        self.executor = executor
        self.on_node_time = on_node_time
        self.on_waiting: WaitingHook | None = None
        self.signals = RunSignals()
        self._types: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._writer: BatchWriter[tuple[str, int, RunEvent]] = BatchWriter("nodeloom-api-recorder", self._store)

    def listener(self, run_id: str, base: int, node_types: Mapping[str, str] | None = None) -> EventCallback:
        """The `on_event` callback for one execution of run `run_id` (its events number on from `base`);
        `node_types` (node id -> type) labels the node timings of the metrics."""
        if node_types:
            with self._lock:
                self._types[run_id] = dict(node_types)
        put = self._writer.put

        def record(event: RunEvent) -> None:
            put((run_id, base, event))

        return record

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event is stored; False on timeout."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()

    def _store(self, batch: list[tuple[str, int, RunEvent]]) -> None:
        """Store a batch in one transaction; when that fails, each run's events on their own, and a
        run whose events cannot be stored is marked failed, so none is left `running` for ever."""
        try:
            self._store_batch(batch)
            return
        except Exception:
            log.exception("could not store a batch of %d events; storing them run by run", len(batch))
        for run_id in dict.fromkeys(run_id for run_id, _, _ in batch):
            try:
                self._store_batch([item for item in batch if item[0] == run_id])
            except Exception as error:
                log.exception("could not store the events of run %s; marking it failed", run_id)
                self._fail_unstorable(run_id, error)

    def _fail_unstorable(self, run_id: str, error: Exception) -> None:
        errors = [{"code": "unstorable", "message": f"the run's values could not be stored: {type(error).__name__}"}]
        with write_lock(self.engine), self.engine.begin() as connection:
            connection.execute(update(_RUNS).where(_RUNS.c.id == run_id).values(
                status="failed", errors=errors, outputs=None, finished_at=time.time()))
            connection.execute(update(_NODES).where(_NODES.c.run_id == run_id,
                                                    _NODES.c.state.in_(("pending", "running"))).values(state="failed"))
        self.signals.notify([run_id])

    def _store_batch(self, batch: list[tuple[str, int, RunEvent]]) -> None:
        """Turn a batch of events into a few statements, then run them in one transaction."""
        timings: list[tuple[str, str, float]] = []
        event_rows: list[dict[str, Any]] = []
        #: (run id, node id) -> the columns the events change, the last event winning
        node_changes: dict[tuple[str, str], dict[str, Any]] = {}
        run_changes: dict[str, dict[str, Any]] = {}
        approvals: list[dict[str, Any]] = []
        for run_id, base, event in batch:
            event_rows.append({"run_id": run_id, "seq": base + event.seq, "kind": event.kind.value,
                               "time": event.time, "node": event.node,
                               "data": _json(dict(event.data))})
            if event.node is not None:
                self._node_event(node_changes.setdefault((run_id, event.node), {}), event)
                duration = event.data.get("duration")
                if event.kind is EventKind.NODE_DONE and isinstance(duration, int | float):
                    timings.append((run_id, event.node, float(duration)))
                elif event.kind is EventKind.NODE_WAITING:
                    approvals.append(_approval_row(run_id, event))
            elif event.kind is EventKind.RUN_STARTED:
                run_changes.setdefault(run_id, {}).update(
                    status="running", executor_run_id=event.run_id, started_at=event.time)
            elif event.kind is EventKind.RUN_FINISHED:
                result = self._result(event)
                if result is None:
                    run_changes.setdefault(run_id, {}).update(
                        status=str(event.data.get("status") or "failed"), finished_at=event.time)
                    continue
                run_changes.setdefault(run_id, {}).update(_result_columns(result))
                for node_id, record in result.nodes.items():
                    node_changes.setdefault((run_id, node_id), {}).update(_node_columns(record))
        with write_lock(self.engine), self.engine.begin() as connection:
            connection.execute(insert(_EVENTS), event_rows)
            if approvals:  # a node that waits again keeps its first request and deadline
                dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
                connection.execute(dialect.insert(_APPROVALS).on_conflict_do_nothing(), approvals)
            for (run_id, node_id), changes in node_changes.items():
                if changes:
                    connection.execute(update(_NODES).where(_NODES.c.run_id == run_id, _NODES.c.node_id == node_id)
                                       .values(**changes))
            decided = [run_id for run_id, changes in run_changes.items()
                       if changes.get("status") == "waiting" and _decided_while_running(connection, run_id)]
            for run_id in decided:  # it goes on at once (`on_waiting`): never shown waiting for a decision made
                run_changes[run_id]["status"] = "pending"
            for run_id, changes in run_changes.items():
                started_at = changes.pop("started_at", None)
                if started_at is not None:  # a resumed run keeps the time it first started
                    changes["started_at"] = func.coalesce(_RUNS.c.started_at, started_at)
                connection.execute(update(_RUNS).where(_RUNS.c.id == run_id).values(**changes))
        self.signals.notify(run_id for run_id, _, _ in batch)
        if self.on_node_time is not None:
            with self._lock:
                for run_id, node_id, seconds in timings:
                    self.on_node_time(self._types.get(run_id, {}).get(node_id, "unknown"), seconds)
        finished = [run_id for run_id, _, event in batch if event.kind is EventKind.RUN_FINISHED]
        if decided and self.on_waiting is not None:
            try:
                self.on_waiting(decided)
            except Exception:
                log.exception("could not go on with the runs decided while they ran: %s", ", ".join(decided))
        if finished:
            with self._lock:
                for run_id in finished:
                    self._types.pop(run_id, None)

    @staticmethod
    def _node_event(changes: dict[str, Any], event: RunEvent) -> None:
        state = _NODE_STATES.get(event.kind)
        if state is None:  # progress
            return
        changes["state"] = state
        data = event.data
        if event.kind is EventKind.NODE_STARTED:
            changes["attempts"] = int(data.get("attempt") or 1)
            changes.setdefault("started_at", event.time)
        elif event.kind is EventKind.NODE_DONE:
            changes["finished_at"] = event.time
            changes["attempts"] = int(data.get("attempts") or 1)
        elif event.kind is EventKind.NODE_CACHED:
            changes["started_at"] = changes["finished_at"] = event.time
            changes["cache_key"] = data.get("cache_key")
        elif event.kind is EventKind.NODE_FAILED:
            changes["finished_at"] = event.time
            changes["attempts"] = int(data.get("attempts") or 1)
            error: Any = data.get("error")
            changes["error"] = _json(error) if isinstance(error, dict) \
                else {"message": str(error)}
        else:
            changes["finished_at"] = event.time

    def _result(self, event: RunEvent) -> RunResult | None:
        try:
            return self.executor.result(event.run_id, timeout=30)
        except (NodeloomError, TimeoutError):
            log.exception("no result for run %s; keeping the status its last event gave", event.run_id)
            return None
