"""The one Celery task: execute one attempt of one node of a run.

A delivery first claims the node in the run store (which also counts redeliveries of an
attempt whose worker died, and dead-letters it past `max_deliveries`), runs the node with
inputs read from the store, then records the outputs and sends the children it made ready.
Everything a worker needs (registry, store, artifacts, plans) is made lazily inside the
worker process, after the pool forked, and kept between tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from celery import Task  # type: ignore[import-untyped]
from celery.exceptions import SoftTimeLimitExceeded  # type: ignore[import-untyped]

from nodeloom.core.artifacts import LocalArtifactStore
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeTimeoutError, error_record
from nodeloom.core.events import RunStatus
from nodeloom.core.validate import NodeCatalog
from nodeloom.executors.celery.app import EXECUTE_NODE, CeleryConfig, app
from nodeloom.executors.celery.dispatch import DistributedRun
from nodeloom.executors.celery.store import RunStore
from nodeloom.executors.celery.values import encode_outputs

log = logging.getLogger(__name__)


def worker_registry(config: CeleryConfig) -> NodeCatalog:
    """The default registry, plus the node modules the configuration names."""
    from nodeloom.node_registry import default_registry

    registry = default_registry()
    if not config.node_modules:
        return registry
    extended = registry.extended()
    for module in config.node_modules:
        extended.register_module(module)
    return extended


class NodeWorker:
    """What one worker process keeps between tasks: store client, artifacts, registry, recent runs."""

    def __init__(self, config: CeleryConfig, keep_runs: int = 256) -> None:
        self.config = config
        self.store = RunStore.from_url(config.redis_url, config.key_prefix)
        self.artifacts = LocalArtifactStore(config.artifacts)
        self.registry = worker_registry(config)
        self.keep_runs = keep_runs
        self._runs: OrderedDict[str, DistributedRun] = OrderedDict()

    def run(self, run_id: str) -> DistributedRun | None:
        found = self._runs.get(run_id)
        if found is None:
            found = DistributedRun.load(run_id, self.store, self.registry, self.artifacts)
            if found is None:
                return None
            self._runs[run_id] = found
            while len(self._runs) > self.keep_runs:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return found

    def execute(self, run_id: str, node_id: str, attempt: int, cache_key: str | None, worker: str) -> str:
        verdict, _ = self.store.claim(run_id, node_id, attempt, self.config.max_deliveries, worker)
        if verdict in ("skip", "dead"):
            return verdict
        run = self.run(run_id)
        if run is None:
            return "skip"
        planned = run.plan.nodes[node_id]
        if verdict == "done":
            # a redelivery of a finished node: its worker may have died before sending its children
            waiting = run.store.outbox(run_id).intersection(planned.downstream)
            if waiting:
                run.send(app, waiting)
            return verdict
        definition = planned.definition
        started = time.monotonic()
        error: BaseException | None = None
        encoded = ""
        try:
            inputs = run.gather(planned)
            ctx = None
            if definition.context_param is not None:
                ctx = NodeContext(
                    run_id=run_id,
                    node_id=node_id,
                    artifacts=self.artifacts,
                    config=run.config,
                    attempt=attempt,
                    device=os.environ.get("NODELOOM_DEVICE"),
                    on_progress=lambda done, total, message: self._progress(run_id, node_id, attempt,
                                                                            done, total, message),
                    is_cancelled=lambda: self.store.status(run_id) is not RunStatus.RUNNING,
                    catalog=run.plan.catalog,
                )
            if definition.is_async:
                outputs = asyncio.run(definition.invoke_async(node_id, inputs, ctx))
            else:
                outputs = definition.invoke(node_id, inputs, ctx)
            encoded = encode_outputs(outputs, self.artifacts, self.config.inline_limit, node_id)
        except SoftTimeLimitExceeded:
            error = NodeTimeoutError(f"node {node_id!r} did not finish within {planned.timeout:g} s", node=node_id)
        except Exception as failure:
            error = failure
            log.debug("node %s of run %s failed", node_id, run_id, exc_info=True)
        if error is None:
            if cache_key is not None and run.use_cache:
                self.store.put_cached(cache_key, encoded)
            ready = self.store.complete(run_id, node_id, attempt, encoded, time.monotonic() - started, cache_key)
            if ready:
                run.send(app, ready)
            return "done"
        info, retryable = error_record(error)
        retry = planned.retry
        delay = retry.delay(attempt) if retryable and attempt < retry.max_attempts else None
        outcome = self.store.fail(run_id, node_id, attempt, info, delay)
        if outcome is not None and outcome[0] == "retry":
            run.send(app, [node_id], countdown=delay)
        return "failed"

    def _progress(self, run_id: str, node_id: str, attempt: int, done: float, total: float | None,
                  message: str) -> None:
        data: dict[str, Any] = {"done": done, "total": total}
        if message:
            data["message"] = message
        self.store.progress(run_id, node_id, attempt, data)


_worker: NodeWorker | None = None
_worker_pid = 0
_worker_lock = threading.Lock()


def node_worker() -> NodeWorker:
    """This process's `NodeWorker`, made on first use (after the pool forked, never before)."""
    global _worker, _worker_pid
    with _worker_lock:
        if _worker is None or _worker_pid != os.getpid():
            _worker = NodeWorker(app.nodeloom_config)
            _worker_pid = os.getpid()
        return _worker


@app.task(name=EXECUTE_NODE, bind=True, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def execute_node(self: Task, run_id: str, node_id: str, attempt: int, cache_key: str | None = None) -> str:
    """Execute one attempt of one node; the outcome is recorded in the run store."""
    return node_worker().execute(run_id, node_id, attempt, cache_key, str(self.request.hostname))
