"""One attempt of one node, as every executor makes it: build the node's context, call the
node (sync or async), word a timeout, and decide whether a failure is tried again.

The local executor (`executors/local/run.py`) and the Celery worker
(`executors/celery/tasks.py`) differ in where inputs come from and where outcomes go (the
run's memory, or the run store); what happens between is this module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from nodeloom.core.artifacts import ArtifactStore
from nodeloom.core.cache import ResultCache
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import NodeContext, RunConfig
from nodeloom.core.errors import NodeTimeoutError, error_record
from nodeloom.core.plan import ExecutionPlan
from nodeloom.core.spec import NodeDefinition, RetryPolicy

Outputs = dict[str, Any]


class AttemptSite(Protocol):
    """Where one attempt runs, as the executor sees it; read only when the node takes a `NodeContext`
    (or is async), so an attempt of a plain node costs no more than the call."""

    @property
    def run_id(self) -> str: ...

    @property
    def number(self) -> int: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def config(self) -> RunConfig: ...

    @property
    def catalog(self) -> NodeCatalog | None: ...

    @property
    def device(self) -> str | None: ...

    def progress(self, done: float, total: float | None, message: str) -> None: ...

    def is_cancelled(self) -> bool: ...

    @property
    def cache(self) -> ResultCache | None:
        """The run's result cache, for nodes that cache calls of their own (control.map's items)."""
        ...

    def run_async(self, coroutine: Coroutine[Any, Any, Outputs]) -> Outputs:
        """Run an async node's coroutine to its outputs."""
        ...


class AttemptRun(Protocol):
    """What an attempt reads of its run (the local `LocalRun`, the Celery `DistributedRun`)."""

    @property
    def run_id(self) -> str: ...

    @property
    def config(self) -> RunConfig: ...

    @property
    def plan(self) -> ExecutionPlan: ...


class AttemptOfRun:
    """The part of an `AttemptSite` both executors read from their run object `run`."""

    __slots__ = ()
    run: AttemptRun

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def config(self) -> RunConfig:
        return self.run.config

    @property
    def catalog(self) -> NodeCatalog | None:
        return self.run.plan.catalog


def call_node(definition: NodeDefinition, node_id: str, inputs: Mapping[str, Any], site: AttemptSite) -> Outputs:
    """Call the node once and return its checked outputs; a node that takes a `NodeContext` gets one."""
    ctx = None
    if definition.context_param is not None:
        ctx = NodeContext(run_id=site.run_id, node_id=node_id, artifacts=site.artifacts, config=site.config,
                          attempt=site.number, device=site.device, on_progress=site.progress,
                          is_cancelled=site.is_cancelled, catalog=site.catalog,
                          cache=site.cache)
    if definition.is_async:
        return site.run_async(definition.invoke_async(node_id, inputs, ctx))
    return definition.invoke(node_id, inputs, ctx)


def timeout_error(node_id: str, seconds: float | None) -> NodeTimeoutError:
    """The error of an attempt that ran past the node's timeout."""
    return NodeTimeoutError(f"node {node_id!r} did not finish within {seconds:g} s", node=node_id)


def failure_outcome(error: BaseException, attempt: int, retry: RetryPolicy) -> tuple[dict[str, Any], float | None]:
    """The record of a failed attempt, and the delay before trying again (None: the node has failed).

    A retryable error is tried again while attempts are left; a cancelled attempt never is.
    """
    info, retryable = error_record(error)
    if isinstance(error, concurrent.futures.CancelledError | asyncio.CancelledError):
        retryable = False
    return info, (retry.delay(attempt) if retryable and attempt < retry.max_attempts else None)
