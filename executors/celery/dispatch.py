"""One distributed run as a process sees it: its plan, input values and settings, and how its
ready nodes are sent to the queues of their resources.

The submitter builds it from the graph; a worker re-creates it from the run's stored graph
JSON (the plan is made again from the worker's registry) and keeps it while tasks of the
run keep coming.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from nodeloom.core.artifacts import ArtifactStore
from nodeloom.core.branches import untaken
from nodeloom.core.cache import value_token
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.graph import Graph
from nodeloom.core.plan import ExecutionPlan, PlannedNode, plan_execution
from nodeloom.core.values import decode_outputs, revive
from nodeloom.executors.celery.app import EXECUTE_NODE
from nodeloom.executors.celery.store import RunDocument, RunStore, task_id


class DistributedRun:
    """A run's plan and values in this process, able to send its ready nodes."""

    def __init__(
        self,
        run_id: str,
        plan: ExecutionPlan,
        input_values: Mapping[str, Any],
        config: RunConfig,
        use_cache: bool,
        store: RunStore,
        artifacts: ArtifactStore,
    ) -> None:
        self.run_id = run_id
        self.plan = plan
        self.input_values = dict(input_values)
        self.input_tokens = {name: value_token(value) for name, value in self.input_values.items()}
        self.config = config
        self.use_cache = use_cache
        self.store = store
        self.artifacts = artifacts

    @classmethod
    def load(
        cls, run_id: str, store: RunStore, catalog: NodeCatalog, artifacts: ArtifactStore,
        plans: MutableMapping[str, ExecutionPlan] | None = None,
    ) -> DistributedRun | None:
        """Re-create a run from the store (None if the store does not know it).

        `plans` keeps plans by graph JSON: runs of a graph already planned in this process reuse
        its plan (a plan holds no run state).
        """
        document: RunDocument | None = store.document(run_id)
        if document is None:
            return None
        plan = plans.get(document.graph_text) if plans is not None else None
        if plan is None:
            plan = plan_execution(Graph.from_json(document.graph), catalog)
            if plans is not None:
                plans[document.graph_text] = plan
        return cls(run_id, plan, revive(document.inputs), RunConfig.from_json(document.config),
                   document.use_cache, store, artifacts)

    def upstream_outputs(self, planned: PlannedNode, texts: Sequence[str | None] | None = None) -> dict[str, Any]:
        """The outputs of a node's upstream nodes by node id (`texts`: as the claim returned them)."""
        if texts is None:
            texts = self.store.node_outputs(self.run_id, planned.upstream)
        found: dict[str, dict[str, Any]] = {}
        for node, text in zip(planned.upstream, texts, strict=True):
            if text is None:
                if planned.joins:
                    continue  # skipped by a branch: a join leaves that input out
                raise NodeExecutionError(f"the outputs of upstream node {node!r} are not in the run store",
                                         node=planned.id, details={"upstream": node})
            found[node] = decode_outputs(text, self.artifacts)
        return found

    def gather(self, planned: PlannedNode, check: bool = True,
               texts: Sequence[str | None] | None = None) -> dict[str, Any]:
        """The input values of a node, read from the run's inputs and its upstream outputs."""
        return planned.gather_inputs(self.input_values, self.upstream_outputs(planned, texts), check)

    def cache_key(self, planned: PlannedNode) -> str | None:
        if planned.static_key is None:
            return None
        keys = dict(zip(planned.upstream, self.store.node_keys(self.run_id, planned.upstream), strict=True))
        seed = self.gather(planned, check=False).get("seed") if planned.seeded else None
        return planned.key(self.input_tokens, keys, seed)

    def send(self, app: Celery, ready: Iterable[tuple[str, int]], countdown: float | None = None) -> None:
        """Send ready `(node, attempt)` pairs: complete cache hits here, enqueue the others on their queues.

        Sent nodes stay in the run's outbox until a worker claims them.
        """
        work = list(ready)
        nodes = self.plan.nodes
        with app.producer_or_acquire() as producer:
            while work:
                node_id, attempt = work.pop()
                planned = nodes[node_id]
                # cache keys are only needed to look results up and to store them
                key = self.cache_key(planned) if self.use_cache else None
                if key is not None and countdown is None:
                    hit = self.store.cached(key)
                    if hit is not None:
                        gone = (untaken(planned.definition.spec.output_map, decode_outputs(hit, self.artifacts))
                                if planned.conditional else ())
                        work.extend(self.store.complete_cached(self.run_id, node_id, hit, key, gone) or ())
                        continue
                options: dict[str, Any] = {}
                args: list[Any] = [self.run_id, node_id, attempt, key]
                if planned.timeout is not None:
                    options["soft_time_limit"] = planned.timeout
                if countdown:
                    # a worker holds a delayed message unacknowledged until it is due: past the visibility
                    # timeout the broker would deliver it again, so long delays are waited out in hops
                    hop = max_hop(app)
                    options["countdown"] = min(countdown, hop)
                    if countdown > hop:
                        args.append(time.time() + countdown)
                app.send_task(
                    EXECUTE_NODE,
                    args=args,
                    queue=planned.resources.queue_name,
                    task_id=task_id(self.run_id, node_id, attempt),
                    producer=producer,
                    **options,
                )


def branch_wiring(plan: ExecutionPlan) -> tuple[dict[str, dict[str, list[str]]], dict[str, int]]:
    """What the run store needs to skip the nodes after an untaken output: per node, the outputs
    each child links to; per join, how many of its inputs must be missing to skip it."""
    feeds: dict[str, dict[str, list[str]]] = {}
    joins: dict[str, int] = {}
    if not any(planned.conditional for planned in plan.nodes.values()):
        return feeds, joins  # nothing is ever skipped for a branch
    for node_id, planned in plan.nodes.items():
        for _, parent, output in planned.links:
            feeds.setdefault(parent, {}).setdefault(node_id, []).append(output)
        if planned.joins:
            # a join with a literal or graph input always has something that arrived: never skipped
            joins[node_id] = len(planned.links) + (1 if planned.literals or planned.graph_inputs else 0)
    return feeds, joins


def max_hop(app: Celery) -> float:
    """The longest countdown one message may wait: half the broker's visibility timeout."""
    options = app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout", 3600.0)) / 2
