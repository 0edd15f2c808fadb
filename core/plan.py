"""Planning: from a valid graph to what an executor needs to run it.

`plan_execution` validates the graph, orders its nodes topologically and precomputes,
per node, its literal inputs, its links, the ports whose incoming values must be checked
at run time, and the static part of its cache key. Executors then only count ready
dependencies, which keeps the per-node cost of the runtime low.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from nodeloom.core.cache import cache_key, static_digest
from nodeloom.core.errors import GraphValidationError
from nodeloom.core.graph import Graph, Link
from nodeloom.core.ports import Port
from nodeloom.core.spec import NodeDefinition, Resources, RetryPolicy
from nodeloom.core.validate import NodeAnalysis, NodeCatalog, analyze_graph


@dataclass(slots=True)
class PlannedNode:
    id: str
    definition: NodeDefinition
    #: literal inputs, coerced to their port types
    literals: dict[str, Any]
    #: (port, graph input name)
    graph_inputs: tuple[tuple[str, str], ...]
    #: (port, upstream node, upstream output)
    links: tuple[tuple[str, str, str], ...]
    #: ports whose incoming (linked or graph-input) value must be checked and coerced at run time
    checked: dict[str, Port]
    upstream: tuple[str, ...]
    retry: RetryPolicy
    timeout: float | None
    resources: Resources
    #: static part of the cache key; None when the node must never be cached
    static_key: str | None
    #: a non-deterministic node with a `seed` input: cacheable only when the seed is set
    seeded: bool = False
    downstream: list[str] = field(default_factory=list)

    def key(self, input_tokens: Mapping[str, str | None], upstream_keys: Mapping[str, str | None],
            seed: Any = None) -> str | None:
        """This node's cache key for one run, or None when it is not cacheable in this run."""
        if self.static_key is None:
            return None
        if self.seeded and seed is None:
            return None  # a non-deterministic node is only repeatable with a fixed seed
        parts: list[str] = []
        for port, name in self.graph_inputs:
            token = input_tokens[name]
            if token is None:
                return None
            parts.append(f"{port}={token}")
        for port, node, output in self.links:
            upstream = upstream_keys[node]
            if upstream is None:
                return None
            parts.append(f"{port}={upstream}/{output}")
        return cache_key(self.static_key, parts)


@dataclass
class ExecutionPlan:
    graph: Graph
    nodes: dict[str, PlannedNode]
    outputs: dict[str, Link]

    @cached_property
    def order(self) -> list[str]:
        """Node ids in a topological order."""
        return _topological_order(self.nodes)

    @property
    def roots(self) -> list[str]:
        return [node_id for node_id, planned in self.nodes.items() if not planned.upstream]


def plan_execution(graph: Graph, catalog: NodeCatalog) -> ExecutionPlan:
    """Validate `graph` against `catalog` and plan it. Raises `GraphValidationError`.

    The plan is remembered on the graph and reused while neither the graph nor the
    catalog has changed (both count revisions), so re-running a graph skips this work.
    """
    memo = graph.plan_memo.get(id(catalog))
    if memo is not None:
        graph_revision, catalog_revision, memo_catalog, plan = memo
        if graph_revision == graph.revision and catalog_revision == catalog.revision and memo_catalog is catalog:
            return plan  # type: ignore[no-any-return]
    issues, analyses = analyze_graph(graph, catalog)
    if issues:
        raise GraphValidationError(issues)
    plan = _plan(graph, analyses)
    graph.plan_memo[id(catalog)] = (graph.revision, catalog.revision, catalog, plan)
    return plan


def _plan(graph: Graph, analyses: Mapping[str, NodeAnalysis]) -> ExecutionPlan:
    nodes: dict[str, PlannedNode] = {}
    for node_id, instance in graph.nodes.items():
        analysis = analyses[node_id]
        spec = analysis.definition.spec
        try:
            static: str | None = static_digest(spec.type, spec.version, analysis.literals)
        except TypeError:
            static = None  # a literal without a stable form (builder-made graphs only)
        if not spec.deterministic and "seed" not in spec.input_map:
            static = None  # non-deterministic and no seed: never repeatable
        resources = spec.resources
        if instance.queue is not None:
            resources = Resources(resources.kind, instance.queue)
        nodes[node_id] = PlannedNode(
            id=node_id,
            definition=analysis.definition,
            literals=analysis.literals,
            graph_inputs=tuple(analysis.graph_inputs),
            links=tuple(analysis.links),
            checked=analysis.checked,
            upstream=tuple(dict.fromkeys(node for _, node, _ in analysis.links)),
            retry=instance.retry_policy(spec.retry),
            timeout=instance.timeout if instance.timeout is not None else spec.timeout,
            resources=resources,
            static_key=static,
            seeded=not spec.deterministic,
        )
    for planned in nodes.values():
        for parent in planned.upstream:
            nodes[parent].downstream.append(planned.id)
    return ExecutionPlan(graph=graph, nodes=nodes, outputs=dict(graph.outputs))


def _topological_order(nodes: Mapping[str, PlannedNode]) -> list[str]:
    remaining = {node_id: len(planned.upstream) for node_id, planned in nodes.items()}
    ready = [node_id for node_id, count in remaining.items() if count == 0]
    order: list[str] = []
    while ready:
        current = ready.pop()
        order.append(current)
        for child in nodes[current].downstream:
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    return order
