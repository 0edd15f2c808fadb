"""The executor protocol: `submit`, `events`, `cancel`, `result`.

Executors are transports for runs: the local one runs nodes in this process, the Celery
one on workers. Callers hold a `RunHandle` and do not care which executor is behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from nodeloom.core.context import RunConfig
from nodeloom.core.events import RunEvent, RunResult
from nodeloom.core.graph import Graph

EventCallback = Callable[[RunEvent], None]


@runtime_checkable
class Executor(Protocol):
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

    def close(self) -> None: ...


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
