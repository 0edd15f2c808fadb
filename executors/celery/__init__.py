"""nodeloom.executors.celery: the distributed executor (one Celery task per node, run state in Redis).

Start workers with `celery -A nodeloom.executors.celery.app worker -Q nodeloom.cpu,nodeloom.io`
(GPU workers separately, `-Q nodeloom.gpu -c 1`); submit runs with `CeleryExecutor`.
"""

from nodeloom.executors.celery.app import CeleryConfig, make_app
from nodeloom.executors.celery.executor import CeleryExecutor

__all__ = ["CeleryConfig", "CeleryExecutor", "make_app"]
