"""The executor protocol: `submit`, `events`, `cancel`, `result`, `status`, `close`.

Executors are transports for runs: the local one runs nodes in this process, the Celery
one on workers. Callers (the SDK, the API, the agents) type what they hold as `Executor`
and hold a `RunHandle` per run; they do not care which executor is behind it.
`ExecutorConveniences` writes the conveniences (`run`, `with executor:`) once, on top of
the protocol methods; each backend inherits them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, Self, runtime_checkable

from nodeloom.core.cache import ResultCache
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import NodeNotRegisteredError, RunTimeoutError
from nodeloom.core.events import EventLog, RunEvent, RunResult
from nodeloom.core.graph import Graph
from nodeloom.core.plan import ExecutionPlan, prepare_run

EventCallback = Callable[[RunEvent], None]


@runtime_checkable
class Executor(Protocol):
    #: the executor's own result cache (what `use_cache=True` runs look up); run previews read it
    cache: ResultCache

    def submit(
        self,
        graph: Graph,
        inputs: Mapping[str, Any] | None = None,
        *,
        config: RunConfig | None = None,
        on_event: EventCallback | None = None,
        use_cache: bool = True,
    ) -> RunHandle:
        """Validate and start a run; raises `GraphValidationError` before anything runs."""
        ...

    def events(self, run_id: str, after: int = 0, timeout: float | None = None) -> Iterator[RunEvent]:
        """Events of a run with `seq > after`, live until the run finishes."""
        ...

    def cancel(self, run_id: str) -> bool:
        """Cancel a run; False when it had already finished."""
        ...

    def result(self, run_id: str, timeout: float | None = None) -> RunResult:
        """Wait for a run to finish and return it; `RunTimeoutError` (a `TimeoutError`) after `timeout` s."""
        ...

    def status(self, run_id: str) -> RunResult:
        """A snapshot of the run now, finished or not; `RunNotFoundError` when the executor does not know it."""
        ...

    def close(self) -> None:
        """Release the executor's threads and connections; runs in flight are not waited for."""
        ...

    def run(
        self,
        graph: Graph,
        inputs: Mapping[str, Any] | None = None,
        *,
        config: RunConfig | None = None,
        on_event: EventCallback | None = None,
        use_cache: bool = True,
    ) -> RunResult:
        """Submit and wait: the result of the finished run (see `ExecutorConveniences.run`)."""
        ...


class ExecutorConveniences:
    """What every executor offers on top of the protocol methods, written once (a backend may
    override one for speed, keeping its signature)."""

    def run(
        self: Executor,
        graph: Graph,
        inputs: Mapping[str, Any] | None = None,
        *,
        config: RunConfig | None = None,
        on_event: EventCallback | None = None,
        use_cache: bool = True,
    ) -> RunResult:
        """Submit and wait: the result of the finished run."""
        return self.submit(graph, inputs, config=config, on_event=on_event, use_cache=use_cache).result()

    def __enter__(self) -> Self:
        return self

    def __exit__(self: Executor, *exc: object) -> None:
        self.close()


class RunHandle:
    """A submitted run: iterate its events, wait for its result, or cancel it."""

    __slots__ = ("executor", "run_id")

    def __init__(self, executor: Executor, run_id: str) -> None:
        self.executor = executor
        self.run_id = run_id

    def events(self, after: int = 0, timeout: float | None = None) -> Iterator[RunEvent]:
        return self.executor.events(self.run_id, after, timeout)

    def result(self, timeout: float | None = None) -> RunResult:
        return self.executor.result(self.run_id, timeout)

    def cancel(self) -> bool:
        return self.executor.cancel(self.run_id)

    def __iter__(self) -> Iterator[RunEvent]:
        return self.events()

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id}>"


class FollowedEvents:
    """The events of a run kept in this process, followed live by any number of readers.

    A run class of an executor sets these attributes; whoever adds an event notifies `cond` when
    `waiters` is non-zero, and sets `done` (then notifies) once the run has finished."""

    run_id: str
    events: EventLog
    cond: threading.Condition
    done: threading.Event
    #: readers waiting on `cond` now (emitting can skip the notify when there are none)
    waiters: int

    def iter_events(self, after: int = 0, timeout: float | None = None) -> Iterator[RunEvent]:
        """Events with `seq > after`, live until the run finishes; `RunTimeoutError` when no event
        comes within `timeout` s."""
        index = max(after, 0)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.cond:
                while len(self.events) <= index and not self.done.is_set():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise RunTimeoutError(f"no event of run {self.run_id} within {timeout} s", run_id=self.run_id,
                                              timeout=timeout)
                    self.waiters += 1
                    try:
                        self.cond.wait(remaining)
                    finally:
                        self.waiters -= 1
                batch = self.events.since(index)
                finished = self.done.is_set()
            yield from batch
            index += len(batch)
            if finished and index >= len(self.events):
                return


def prepare_worker_run(
    graph: Graph, catalog: NodeCatalog, inputs: Mapping[str, Any] | None, workers: str, hint: str,
) -> tuple[ExecutionPlan, dict[str, Any]]:
    """`prepare_run` for executors whose workers are other processes: the plan's graph has its graph
    nodes expanded (workers plan the same nodes without the graph sources), and a node type defined
    only in this process (`Graph.add` with a definition object) is refused, naming `workers` and `hint`."""
    plan, values = prepare_run(graph, catalog, inputs)
    unknown = sorted(name for name in plan.graph.local_definitions if catalog.find(name) is None)
    if unknown:
        raise NodeNotRegisteredError(f"node types {', '.join(unknown)} are not registered: {workers} cannot run them",
                                     details={"types": unknown, "hint": hint})
    return plan, values
