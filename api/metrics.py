"""Prometheus metrics: runs by state (read from the database), node durations, Celery queue depths."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nodeloom.api.schemas import RunState
from nodeloom.api.tables import RunRow

#: returns {queue name: messages waiting}
QueueDepths = Callable[[], dict[str, int]]


class _RunsByState(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("nodeloom_runs", "Runs in the database by state", labels=["state"])
        with Session(self.engine) as session:
            counts = dict(session.exec(select(RunRow.status, func.count(col(RunRow.id))).group_by(RunRow.status)).all())
        for state in RunState:
            family.add_metric([state.value], float(counts.get(state.value, 0)))
        yield family


class _QueueDepths(Collector):
    def __init__(self, depths: QueueDepths) -> None:
        self.depths = depths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("nodeloom_queue_depth",
                                   "Work waiting: node tasks in each Celery queue, or runs waiting for a pool worker",
                                   labels=["queue"])
        for name, depth in sorted(self.depths().items()):
            family.add_metric([name], float(depth))
        yield family


class ApiMetrics:
    """The metrics of one app, in their own registry (several apps may live in one process)."""

    def __init__(self, engine: Engine, queue_depths: QueueDepths | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_RunsByState(engine))
        if queue_depths is not None:
            self.registry.register(_QueueDepths(queue_depths))
        self.node_seconds = Histogram(
            "nodeloom_node_duration_seconds", "Time nodes took to run, by node type", ["type"],
            registry=self.registry, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800),
        )

    def observe_node(self, node_type: str, seconds: float) -> None:
        self.node_seconds.labels(node_type).observe(seconds)
