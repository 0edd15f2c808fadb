"""Run state and events: what every executor reports, in the same shape."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from nodeloom.core.errors import RunFailedError
from nodeloom.core.values import value_to_json


class NodeState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    #: an approval node waits for a person's decision (see `nodeloom.core.approvals`)
    WAITING = "waiting"
    CACHED = "cached"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (NodeState.PENDING, NodeState.RUNNING)

    @property
    def succeeded(self) -> bool:
        return self in (NodeState.DONE, NodeState.CACHED)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    #: nothing more can run until a person decides at an approval node; not finished
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class EventKind(StrEnum):
    RUN_STARTED = "run.started"
    NODE_STARTED = "node.started"
    NODE_PROGRESS = "node.progress"
    NODE_WAITING = "node.waiting"
    NODE_CACHED = "node.cached"
    NODE_DONE = "node.done"
    NODE_RETRYING = "node.retrying"
    NODE_FAILED = "node.failed"
    NODE_SKIPPED = "node.skipped"
    NODE_CANCELLED = "node.cancelled"
    RUN_FINISHED = "run.finished"


class RunEvent(NamedTuple):
    """One thing that happened in a run. `seq` counts from 1 within the run."""

    seq: int
    kind: EventKind
    run_id: str
    time: float
    node: str | None = None
    data: dict[str, Any] = {}  # noqa: RUF012 - never mutated; executors pass their own dict

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind.value,
            "run_id": self.run_id,
            "time": self.time,
            "node": self.node,
            "data": self.data,
        }


#: the names of the data fields of each kind of event, in the order they are stored
EVENT_FIELDS: dict[EventKind, tuple[str, ...]] = {
    EventKind.RUN_STARTED: ("nodes", "graph"),
    EventKind.NODE_STARTED: ("attempt",),
    EventKind.NODE_PROGRESS: ("done", "total", "message"),
    EventKind.NODE_WAITING: ("review", "message", "timeout", "on_timeout"),
    EventKind.NODE_CACHED: ("cache_key",),
    EventKind.NODE_DONE: ("attempts", "duration"),
    EventKind.NODE_RETRYING: ("attempt", "delay", "error"),
    EventKind.NODE_FAILED: ("attempts", "error"),
    EventKind.NODE_SKIPPED: ("because", "reason"),
    EventKind.NODE_CANCELLED: (),
    EventKind.RUN_FINISHED: ("status",),
}


class EventLog:
    """A run's events, kept as flat tuples and turned into `RunEvent`s when read.

    A run of N nodes records about 2N events. Flat tuples of strings and numbers cost
    little to keep and the cyclic garbage collector stops scanning them, where N event
    objects holding dicts would be rescanned on every collection while the run goes on.
    """

    __slots__ = ("_entries", "add", "run_id")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._entries: list[tuple[Any, ...]] = []
        #: record one entry `(kind.value, node, time, *values)`, `values` following `EVENT_FIELDS[kind]`
        #: (the kind as its text, so the tuple holds only atomic values: see the class doc)
        self.add = self._entries.append

    def __len__(self) -> int:
        return len(self._entries)

    def event(self, index: int) -> RunEvent:
        value, node, time, *values = self._entries[index]
        kind = EventKind(value)
        data = dict(zip(EVENT_FIELDS[kind], values, strict=False))
        if kind is EventKind.NODE_PROGRESS and not data.get("message"):
            data.pop("message", None)
        return RunEvent(index + 1, kind, self.run_id, time, node, data)

    def since(self, after: int) -> list[RunEvent]:
        """The events with `seq > after`."""
        return [self.event(index) for index in range(max(after, 0), len(self._entries))]


@dataclass(slots=True)
class NodeRecord:
    """The state of one node in one run."""

    id: str
    type: str
    state: NodeState = NodeState.PENDING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    cache_key: str | None = None
    error: dict[str, Any] | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state.value,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "cache_key": self.cache_key,
            "error": self.error,
        }


@dataclass
class RunResult:
    """A finished (or, for a snapshot, a running) run: status, graph outputs, per-node records."""

    run_id: str
    status: RunStatus
    outputs: dict[str, Any]
    nodes: dict[str, NodeRecord]
    started_at: float
    finished_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def errors(self) -> list[dict[str, Any]]:
        return [{"node": r.id, **r.error} for r in self.nodes.values() if r.error is not None]

    def failure_message(self) -> str:
        """Why the run did not succeed, in one line: cancelled, or the first failed node's error."""
        failed = [r for r in self.nodes.values() if r.state is NodeState.FAILED]
        if self.status is RunStatus.CANCELLED:
            return f"run {self.run_id} was cancelled"
        if failed and failed[0].error:
            return f"run {self.run_id} failed: node {failed[0].id!r}: {failed[0].error.get('message')}"
        return f"run {self.run_id} failed"

    def raise_for_status(self) -> RunResult:
        if self.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise RunFailedError(self)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "outputs": value_to_json(self.outputs),
            "nodes": {node_id: record.to_json() for node_id, record in self.nodes.items()},
            "errors": self.errors(),
        }
