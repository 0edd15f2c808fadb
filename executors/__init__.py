"""nodeloom.executors: the executor protocol and its backends.

`local` runs graphs in this process (the default); `celery` runs each node as a Celery task
on workers (`pip install 'nodeloom[celery]'`; imported on first use of `CeleryExecutor`).
"""

from typing import Any

from nodeloom.executors.base import EventCallback, Executor, RunHandle
from nodeloom.executors.local import LocalExecutor

__all__ = ["CeleryExecutor", "EventCallback", "Executor", "LocalExecutor", "RunHandle"]


def __getattr__(name: str) -> Any:
    if name == "CeleryExecutor":  # celery is an optional dependency
        from nodeloom.executors.celery import CeleryExecutor

        return CeleryExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
