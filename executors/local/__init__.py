"""The local executor: the embedded default."""

from nodeloom.executors.local.executor import LocalExecutor, detect_gpu_devices

__all__ = ["LocalExecutor", "detect_gpu_devices"]
