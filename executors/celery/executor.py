"""The Celery executor: runs graphs on Celery workers, one task per node, state in Redis."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from nodeloom.core.artifacts import ArtifactStore, open_artifact_store
from nodeloom.core.cache import ResultCache
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import RunNotFoundError, RunTimeoutError
from nodeloom.core.events import EventKind, RunEvent, RunResult, RunStatus
from nodeloom.core.graph import Graph
from nodeloom.core.values import decode_outputs, revive, to_json_text
from nodeloom.executors.base import EventCallback, ExecutorConveniences, RunHandle, prepare_worker_run
from nodeloom.executors.celery.app import CeleryConfig, make_app
from nodeloom.executors.celery.dispatch import DistributedRun, branch_wiring
from nodeloom.executors.celery.results import StoredResults
from nodeloom.executors.celery.store import RunDocument, RunNotices, RunStore, task_id

log = logging.getLogger(__name__)


class CeleryExecutor(ExecutorConveniences):
    """Runs graphs on Celery workers started with `celery -A nodeloom.executors.celery.app worker`.

    >>> with CeleryExecutor(config=CeleryConfig(broker_url="redis://127.0.0.1:6379/0")) as executor:
    ...     result = executor.submit(graph, {"topic": "tea"}).result()

    Workers re-create each run's plan from its stored graph JSON with their own registry, so
    every node type of a graph must be registered on the workers (`node_modules`); nodes
    given to a graph as Python objects that the registry does not know are refused.
    """

    def __init__(
        self,
        registry: NodeCatalog | None = None,
        *,
        config: CeleryConfig | None = None,
        run_config: RunConfig | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        if registry is None:
            from nodeloom.node_registry import default_registry

            registry = default_registry()
        self.registry = registry
        self.config = config or CeleryConfig.from_env()
        self.app: Celery = make_app(self.config)
        self.store = RunStore.from_url(self.config.redis_url, self.config.key_prefix, run_ttl=self.config.run_ttl)
        self.artifacts: ArtifactStore = open_artifact_store(self.config.artifacts)
        #: the results workers share in Redis, read here for run previews
        self.cache: ResultCache = StoredResults(self.store, self.artifacts, self.config.inline_limit)
        self.run_config = run_config or RunConfig()
        self.poll_interval = poll_interval
        self._closed = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._notices = RunNotices(self.store)

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
        plan, values = prepare_worker_run(graph, self.registry, inputs, "Celery workers",
                                          "register their module on the workers (NODELOOM_NODE_MODULES)")
        graph = plan.graph
        run_id = uuid.uuid4().hex
        input_json: dict[str, Any] = json.loads(to_json_text(values))
        document = RunDocument(graph.to_json(), input_json, (config or self.run_config).to_json(), use_cache)
        nodes = plan.nodes
        roots = self.store.create_run(
            run_id,
            document,
            graph.name,
            {node_id: p.definition.spec.type for node_id, p in nodes.items()},
            {node_id: p.upstream for node_id, p in nodes.items()},
            {node_id: p.downstream for node_id, p in nodes.items()},
            {name: (link.node, link.output) for name, link in plan.outputs.items()},
            *branch_wiring(plan),
        )
        run = DistributedRun(run_id, plan, revive(input_json), config or self.run_config, use_cache,
                             self.store, self.artifacts)
        if on_event is not None:
            self._watch(run_id, on_event)
        run.send(self.app, [(root, 1) for root in roots])
        return RunHandle(self, run_id)

    def events(self, run_id: str, after: int = 0, timeout: float | None = None) -> Iterator[RunEvent]:
        self._known(run_id)
        index = max(after, 0)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._notices.watching(run_id) as notice:
            while True:
                notice.clear()
                batch = self.store.events(run_id, index)
                if batch:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    yield from batch
                    index += len(batch)
                    if batch[-1].kind is EventKind.RUN_FINISHED:
                        return
                    continue
                if self._closed.is_set():
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    raise RunTimeoutError(f"no event of run {run_id} within {timeout} s", run_id=run_id,
                                          timeout=timeout)
                notice.wait(self._wait_step(deadline))

    def cancel(self, run_id: str) -> bool:
        self._known(run_id)
        stopped = self.store.cancel(run_id)
        if stopped is None:
            return False
        # queued tasks would only be dropped by their claim; revoking spares the workers the delivery
        ids = [task_id(run_id, node_id, attempt) for node_id, attempt in stopped]
        if ids:
            with contextlib.suppress(Exception):
                self.app.control.revoke(ids)
        return True

    def result(self, run_id: str, timeout: float | None = None) -> RunResult:
        self._known(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._notices.watching(run_id, EventKind.RUN_FINISHED.value) as notice:
            while True:
                notice.clear()
                status = self.store.status(run_id)
                # a run waiting for approval has settled too: nothing runs until a decision starts it again
                if status is not None and (status.terminal or status is RunStatus.WAITING):
                    return self.status(run_id)
                if deadline is not None and time.monotonic() >= deadline:
                    raise RunTimeoutError(f"run {run_id} did not finish within {timeout} s", run_id=run_id,
                                          timeout=timeout)
                notice.wait(self._wait_step(deadline))

    def _wait_step(self, deadline: float | None) -> float:
        # notices wake waiters at once; the poll interval only bounds a wait whose notice was lost
        step = self.poll_interval
        return step if deadline is None else max(0.0, min(step, deadline - time.monotonic()))

    def status(self, run_id: str) -> RunResult:
        """A snapshot of the run now, finished or not."""
        run, records = self.store.records(run_id)
        if not run:
            raise RunNotFoundError(f"no run {run_id!r} in the run store", details={"run_id": run_id})
        status = RunStatus(run["status"])
        wanted: dict[str, list[str]] = json.loads(run["outputs"])
        sources = sorted({node for node, _ in wanted.values()})
        values = {
            node: decode_outputs(text, self.artifacts)
            for node, text in zip(sources, self.store.node_outputs(run_id, sources), strict=True)
            if text is not None and records[node].state.succeeded
        }
        # an output a branch did not take is absent, like one of a skipped node
        outputs = {name: values[node][output] for name, (node, output) in wanted.items()
                   if node in values and output in values[node]}
        finished = run.get("finished_at")
        return RunResult(
            run_id=run_id,
            status=status,
            outputs=outputs,
            nodes=records,
            started_at=float(run["started_at"]),
            finished_at=float(finished) if finished else None,
        )

    def workers(self) -> list[dict[str, Any]]:
        """What each worker process reported after its tasks: `worker` (Celery node name), `pid`,
        `models` (what it holds loaded: `kind` "image" with model, dtype, device for diffusion
        pipelines; `kind` "llm" with model file and threads for local LLMs), `model_loads`
        (models it loaded from disk since it started) and `updated` (Unix time). A process that exits
        cleanly removes its record; one that was killed keeps it, with an old `updated`."""
        return self.store.worker_reports()

    def deadletters(self) -> list[dict[str, Any]]:
        """Records of node attempts given up after too many deliveries (their worker kept dying)."""
        return self.store.deadletters()

    def close(self) -> None:
        self._closed.set()
        self._notices.close()
        for watcher in self._watchers:
            watcher.join(timeout=1)
        self.store.close()
        self.app.close()

    # -- internals -----------------------------------------------------------------
    def _known(self, run_id: str) -> None:
        if not self.store.exists(run_id):
            raise RunNotFoundError(f"no run {run_id!r} in the run store", details={"run_id": run_id})

    def _watch(self, run_id: str, callback: EventCallback) -> None:
        def follow() -> None:
            for event in self.events(run_id):
                try:
                    callback(event)
                except Exception:
                    log.exception("event callback failed for %s", event.kind)

        watcher = threading.Thread(target=follow, name=f"nodeloom-events-{run_id[:8]}", daemon=True)
        self._watchers = [w for w in self._watchers if w.is_alive()]
        self._watchers.append(watcher)
        watcher.start()
