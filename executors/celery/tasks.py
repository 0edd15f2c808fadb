"""The one Celery task: execute one attempt of one node of a run.

A delivery first claims the node in the run store (which also counts redeliveries of an
attempt whose worker died, and dead-letters it past `max_deliveries`), runs the node with
inputs read from the store, then records the outputs and sends the children it made ready.
Everything a worker needs (registry, store, artifacts, plans) is made lazily inside the
worker process, after the pool forked, and kept between tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

import redis
from celery import Task  # type: ignore[import-untyped]
from celery.exceptions import SoftTimeLimitExceeded  # type: ignore[import-untyped]
from celery.signals import worker_process_shutdown  # type: ignore[import-untyped]

from nodeloom.core.approvals import ApprovalPending
from nodeloom.core.artifacts import ArtifactStore, open_artifact_store
from nodeloom.core.attempt import AttemptOfRun, call_node, failure_outcome, timeout_error
from nodeloom.core.branches import split_taken
from nodeloom.core.cache import ResultCache
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.events import EVENT_FIELDS, EventKind, RunStatus
from nodeloom.core.plan import ExecutionPlan
from nodeloom.core.values import encode_outputs
from nodeloom.executors.celery.app import EXECUTE_NODE, CeleryConfig, app
from nodeloom.executors.celery.dispatch import DistributedRun
from nodeloom.executors.celery.results import StoredResults
from nodeloom.executors.celery.store import RunStore

log = logging.getLogger(__name__)

#: (kind, module, attribute) of the per-process model caches a worker reports
_MODEL_CACHES = (
    ("image", "nodeloom.node_registry.image.pipelines", "PIPELINES"),
    ("comfy", "nodeloom.node_registry.comfy.models", "CHECKPOINTS"),
    ("llm", "nodeloom.node_registry.llm.local", "MODELS"),
)


def worker_registry(config: CeleryConfig) -> NodeCatalog:
    """The default registry, plus the node modules the configuration names."""
    from nodeloom.node_registry import registry_with

    return registry_with(config.node_modules)


class NodeWorker:
    """What one worker process keeps between tasks: store client, artifacts, registry, recent runs."""

    def __init__(self, config: CeleryConfig, keep_runs: int = 256, keep_plans: int = 64) -> None:
        self.config = config
        self.store = RunStore.from_url(config.redis_url, config.key_prefix, run_ttl=config.run_ttl)
        self.artifacts = open_artifact_store(config.artifacts)
        self.registry = worker_registry(config)
        self.keep_runs = keep_runs
        self.keep_plans = keep_plans
        self._runs: OrderedDict[str, DistributedRun] = OrderedDict()
        self._plans: OrderedDict[str, ExecutionPlan] = OrderedDict()
        self._reported: tuple[Any, ...] | None = None
        self.report_name: str | None = None

    def run(self, run_id: str) -> DistributedRun | None:
        found = self._runs.get(run_id)
        if found is None:
            found = DistributedRun.load(run_id, self.store, self.registry, self.artifacts, self._plans)
            if found is None:
                return None
            self._runs[run_id] = found
            while len(self._runs) > self.keep_runs:
                self._runs.popitem(last=False)
            while len(self._plans) > self.keep_plans:
                self._plans.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return found

    def execute(self, run_id: str, node_id: str, attempt: int, cache_key: str | None, worker: str,
                redelivered: bool = False, not_before: float | None = None) -> str:
        run = self.run(run_id)
        if run is None:
            return "skip"
        planned = run.plan.nodes[node_id]
        if not_before is not None and (left := not_before - time.time()) > 0.01:
            # a long retry delay: wait the next hop in a new message (see DistributedRun.send)
            run.send(app, [(node_id, attempt)], countdown=left)
            return "deferred"
        verdict, _, texts = self.store.claim(run_id, node_id, attempt, self.config.max_deliveries, worker,
                                             uuid.uuid4().hex, redelivered, planned.upstream)
        if verdict in ("skip", "dead"):
            return verdict
        if verdict == "done":
            # a redelivery of a finished node: its worker may have died before sending its children
            waiting = sorted(run.store.outbox(run_id).intersection(planned.downstream))
            if waiting:
                run.send(app, list(zip(waiting, run.store.attempts(run_id, waiting), strict=True)))
            return verdict
        started = time.monotonic()
        error: BaseException | None = None
        encoded = ""
        gone: frozenset[str] = frozenset()
        try:
            inputs = run.gather(planned, texts=texts)
            outputs = call_node(planned.definition, node_id, inputs, _TaskAttempt(self, run, node_id, attempt))
            if planned.conditional:
                outputs, gone = split_taken(outputs)
            encoded = encode_outputs(outputs, self.artifacts, self.config.inline_limit, node_id)
        except SoftTimeLimitExceeded:
            error = timeout_error(node_id, planned.timeout)
        except ApprovalPending as pending:
            # no decision yet: the attempt ends here and the node waits, holding no worker
            fields = EVENT_FIELDS[EventKind.NODE_WAITING]
            self.store.wait(run_id, node_id, attempt, dict(zip(fields, pending.event_values(), strict=True)))
            return "waiting"
        except Exception as failure:
            error = failure
            log.debug("node %s of run %s failed", node_id, run_id, exc_info=True)
        if error is None:
            ready = self.store.complete(run_id, node_id, attempt, encoded, time.monotonic() - started, cache_key,
                                        cache=run.use_cache, untaken=gone)
            if ready:
                run.send(app, ready)
            return "done"
        info, delay = failure_outcome(error, attempt, planned.retry)
        outcome = self.store.fail(run_id, node_id, attempt, info, delay)
        if outcome is not None and outcome[0] == "retry":
            run.send(app, [(node_id, outcome[1])], countdown=delay)
        return "failed"

    def report_models(self, worker: str) -> None:
        """Tell the run store which models this process holds: on its first task and when that changes.

        Only the model caches of packs a node already imported are looked at (the image pack's
        pipelines, the LLM pack's local models), so listing models never imports torch or llama.cpp.
        """
        models: list[dict[str, str]] = []
        loads = 0
        for kind, module, attribute in _MODEL_CACHES:
            cache = getattr(sys.modules.get(module), attribute, None)
            if cache is not None:
                models += [{"kind": kind, **held} for held in cache.held()]
                loads += int(cache.loads)
        state = (worker, loads, json.dumps(models))
        if state == self._reported:
            return
        self.report_name = f"{worker}/{os.getpid()}"
        self.store.report_worker(self.report_name, {"worker": worker, "pid": os.getpid(), "models": models,
                                                    "model_loads": loads, "updated": time.time()})
        self._reported = state

    def _progress(self, run_id: str, node_id: str, attempt: int, done: float, total: float | None,
                  message: str) -> None:
        data: dict[str, Any] = {"done": done, "total": total}
        if message:
            data["message"] = message
        self.store.progress(run_id, node_id, attempt, data)


class _TaskAttempt(AttemptOfRun):
    """The `AttemptSite` of one attempt on a worker: progress and cancellation go through the run store."""

    __slots__ = ("node_id", "number", "run", "worker")
    run: DistributedRun

    def __init__(self, worker: NodeWorker, run: DistributedRun, node_id: str, number: int) -> None:
        self.worker = worker
        self.run = run
        self.node_id = node_id
        self.number = number

    @property
    def artifacts(self) -> ArtifactStore:
        return self.worker.artifacts

    @property
    def device(self) -> str | None:
        return os.environ.get("NODELOOM_DEVICE")

    def progress(self, done: float, total: float | None, message: str) -> None:
        self.worker._progress(self.run_id, self.node_id, self.number, done, total, message)

    def is_cancelled(self) -> bool:
        return self.worker.store.status(self.run_id) is not RunStatus.RUNNING

    @property
    def cache(self) -> ResultCache | None:
        worker = self.worker
        return StoredResults(worker.store, worker.artifacts, worker.config.inline_limit) if self.run.use_cache else None

    def run_async(self, coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        return asyncio.run(coroutine)


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
def execute_node(self: Task, run_id: str, node_id: str, attempt: int, cache_key: str | None = None,
                 not_before: float | None = None) -> str:
    """Execute one attempt of one node (not before the Unix time `not_before`); the outcome is
    recorded in the run store."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    worker = node_worker()
    hostname = str(self.request.hostname)
    try:
        return worker.execute(run_id, node_id, attempt, cache_key, hostname, redelivered, not_before)
    finally:
        try:
            worker.report_models(hostname)
        except redis.RedisError:  # the report is informative: a failed one never fails the node
            log.warning("could not report this worker's models to the run store", exc_info=True)


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def forget_this_process(**_: Any) -> None:
    """A pool process that exits takes its model report out of the run store."""
    if _worker is not None and _worker_pid == os.getpid() and _worker.report_name is not None:
        with contextlib.suppress(redis.RedisError):
            _worker.store.forget_worker(_worker.report_name)
