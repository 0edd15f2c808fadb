"""The pool executor: runs in worker processes, so no node can stall or crash the caller's process."""

from nodeloom.executors.pool.executor import PoolExecutor, WorkerStartError, default_worker_count

__all__ = ["PoolExecutor", "WorkerStartError", "default_worker_count"]
