"""The local executor: the embedded default, running graphs inside this process."""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from nodeloom.core.artifacts import ArtifactStore, LocalArtifactStore, default_artifact_root
from nodeloom.core.cache import ResultCache
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import RunNotFoundError, RunTimeoutError
from nodeloom.core.events import RunEvent, RunResult
from nodeloom.core.graph import Graph
from nodeloom.core.plan import prepare_run
from nodeloom.executors.base import EventCallback, ExecutorConveniences, RunHandle
from nodeloom.executors.local.lanes import AsyncLoop, Lane, Timers
from nodeloom.executors.local.run import LocalRun


def _on_lane_thread() -> bool:
    """True inside a lane worker (a node running a graph): it must not block its lane by helping."""
    return threading.current_thread().name.startswith("nodeloom-")


def detect_gpu_devices() -> list[str]:
    """CUDA devices if torch sees any, else one lane on the CPU ("cpu")."""
    try:
        import torch
    except ImportError:
        return ["cpu"]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{index}" for index in range(count)] or ["cpu"]


class LocalExecutor(ExecutorConveniences):
    """Runs graphs in this process: a lane of threads per resource kind, one per GPU device.

    >>> with LocalExecutor() as executor:
    ...     result = executor.submit(graph, {"topic": "tea"}).result()

    Results of deterministic nodes are kept in an in-memory LRU cache (`cache_size`
    entries), so a re-run recomputes only what changed; pass `cache` to use another
    `ResultCache` (the API passes one kept in its database; the executor closes it).
    Finished runs are kept for `keep_runs` runs, then forgotten oldest first.
    """

    def __init__(
        self,
        registry: NodeCatalog | None = None,
        *,
        artifacts: ArtifactStore | str | os.PathLike[str] | None = None,
        cache_size: int = 100_000,
        cache: ResultCache | None = None,
        cpu_workers: int | None = None,
        io_workers: int = 32,
        gpu_devices: Sequence[str] | None = None,
        config: RunConfig | None = None,
        keep_runs: int = 1000,
    ) -> None:
        if registry is None:
            from nodeloom.node_registry import default_registry

            registry = default_registry()
        self.registry = registry
        if artifacts is None or isinstance(artifacts, str | os.PathLike):
            artifacts = LocalArtifactStore(artifacts or default_artifact_root())
        self.artifacts: ArtifactStore = artifacts
        self.cache = cache if cache is not None else ResultCache(cache_size)
        self.config = config or RunConfig()
        self.keep_runs = keep_runs
        self.timers = Timers()
        self.async_loop = AsyncLoop()
        self._lanes = {
            "cpu": Lane("cpu", cpu_workers or max(2, os.cpu_count() or 2), self.timers),
            "io": Lane("io", io_workers, self.timers),
        }
        self._lanes["cpu"].start()
        self._gpu_devices = list(gpu_devices) if gpu_devices is not None else None
        self._gpu_lanes: list[Lane] | None = None
        self._runs: OrderedDict[str, LocalRun] = OrderedDict()
        self._lock = threading.Lock()

    # -- the executor protocol -----------------------------------------------------
    def submit(
        self,
        graph: Graph,
        inputs: Mapping[str, Any] | None = None,
        *,
        config: RunConfig | None = None,
        on_event: EventCallback | None = None,
        use_cache: bool = True,
    ) -> RunHandle:
        run = self._create(graph, inputs, config, on_event, use_cache)
        self.dispatch(run, run.start(), None)
        return RunHandle(self, run.run_id)

    def _create(
        self,
        graph: Graph,
        inputs: Mapping[str, Any] | None,
        config: RunConfig | None,
        on_event: EventCallback | None,
        use_cache: bool,
    ) -> LocalRun:
        plan, values = prepare_run(graph, self.registry, inputs)
        run_id = uuid.uuid4().hex
        run = LocalRun(
            self, plan, run_id, values, config or self.config,
            [on_event] if on_event is not None else [], use_cache,
        )
        with self._lock:
            self._runs[run_id] = run
            self._forget_old_runs()
        return run

    def events(self, run_id: str, after: int = 0, timeout: float | None = None) -> Iterator[RunEvent]:
        return self._run(run_id).iter_events(after, timeout)

    def cancel(self, run_id: str) -> bool:
        return self._run(run_id).cancel()

    def result(self, run_id: str, timeout: float | None = None) -> RunResult:
        run = self._run(run_id)
        if not run.done.wait(timeout):
            raise RunTimeoutError(f"run {run_id} did not finish within {timeout} s", run_id=run_id, timeout=timeout)
        return run.snapshot()

    def status(self, run_id: str) -> RunResult:
        """A snapshot of the run now, finished or not."""
        return self._run(run_id).snapshot()

    def run(
        self,
        graph: Graph,
        inputs: Mapping[str, Any] | None = None,
        *,
        config: RunConfig | None = None,
        on_event: EventCallback | None = None,
        use_cache: bool = True,
    ) -> RunResult:
        """Submit and wait: the result of the finished run.

        Overrides `ExecutorConveniences.run`: while it waits, the calling thread runs the
        run's cpu nodes itself (saving two thread hand-offs per run) — unless a node has a
        timeout, since a thread inside a node cannot return before the node does; then
        everything runs on the lanes.
        """
        run = self._create(graph, inputs, config, on_event, use_cache)
        ready = run.start()
        cpu = self._lanes["cpu"]
        helping = not run.plan.has_timeouts and not _on_lane_thread()
        if helping:
            own = [node_id for node_id in ready if run.plan.nodes[node_id].resources.kind == "cpu"]
            self.dispatch(run, [node_id for node_id in ready if node_id not in own], None)
            if own:
                cpu.help(run, own, run.done)
        else:
            self.dispatch(run, ready, None)
        run.done.wait()
        return run.snapshot()

    def close(self) -> None:
        for lane in self._all_lanes():
            lane.close()
        self.timers.close()
        self.async_loop.close()
        self.cache.close()

    # -- used by runs --------------------------------------------------------------
    def dispatch(self, run: LocalRun, ready: list[str], current: Lane | None) -> str | None:
        """Queue ready nodes on their lanes; keep one for `current` to run next, if any fits."""
        nodes = run.plan.nodes
        if len(ready) == 1 and current is not None:
            # the common case in a chain: one successor, on the lane that finished its parent
            only = ready[0]
            if self._lanes.get(nodes[only].resources.kind) is current:
                return only
        keep: str | None = None
        batches: dict[Lane, list[str]] = {}
        for node_id in ready:
            lane = self._lane_for(nodes[node_id].resources.kind, batches)
            if lane is current and keep is None:
                keep = node_id
            else:
                batches.setdefault(lane, []).append(node_id)
        for lane, node_ids in batches.items():
            lane.push(run, node_ids)
        return keep

    def run_finished(self, run: LocalRun) -> None:
        with self._lock:
            self._forget_old_runs()

    # -- internals -----------------------------------------------------------------
    def _lane_for(self, kind: str, pending: Mapping[Lane, list[str]]) -> Lane:
        if kind != "gpu":
            return self._lanes[kind]
        if self._gpu_lanes is None:
            with self._lock:
                if self._gpu_lanes is None:
                    devices = self._gpu_devices or detect_gpu_devices()
                    # one thread per device, never a spare: a stuck node keeps its device busy
                    self._gpu_lanes = [
                        Lane(f"gpu-{device}", 1, self.timers, device=device, replace_stuck=False)
                        for device in devices
                    ]
        # spread over the devices: the least loaded, counting what this dispatch is about to add
        return min(self._gpu_lanes, key=lambda lane: lane.load + len(pending.get(lane, ())))

    def _all_lanes(self) -> list[Lane]:
        return [*self._lanes.values(), *(self._gpu_lanes or [])]

    def _run(self, run_id: str) -> LocalRun:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r} on this executor", details={"run_id": run_id})
        return run

    def _forget_old_runs(self) -> None:
        excess = len(self._runs) - self.keep_runs
        if excess <= 0:
            return
        for run_id in [rid for rid, run in self._runs.items() if run.done.is_set()][:excess]:
            del self._runs[run_id]
