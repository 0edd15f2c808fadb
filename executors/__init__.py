"""nodeloom.executors: the executor protocol and its backends (`local`; `celery` to come)."""

from nodeloom.executors.base import EventCallback, Executor, RunHandle
from nodeloom.executors.local import LocalExecutor

__all__ = ["EventCallback", "Executor", "LocalExecutor", "RunHandle"]
