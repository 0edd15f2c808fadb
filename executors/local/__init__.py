"""The local executor: the embedded default."""

from nodeloom.executors.local.executor import LocalExecutor, default_home, detect_gpu_devices

__all__ = ["LocalExecutor", "default_home", "detect_gpu_devices"]
