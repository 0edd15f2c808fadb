"""Planning: from a valid graph to what an executor needs to run it.

`plan_execution` validates the graph, orders its nodes topologically and precomputes,
per node, its literal inputs, its links, the ports whose incoming values must be checked
at run time, and the static part of its cache key. Executors then only count ready
dependencies, which keeps the per-node cost of the runtime low.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeloom.core.branches import CONDITIONAL_TYPES, CONTROL_TYPES, FIRST_TYPES
from nodeloom.core.cache import cache_key, linked_cache_key, static_part
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.errors import GraphValidationError, NodeExecutionError
from nodeloom.core.graph import Graph
from nodeloom.core.graph_parts import Link
from nodeloom.core.ports import Port
from nodeloom.core.run_inputs import check_run_inputs
from nodeloom.core.spec import NodeDefinition, Resources, RetryPolicy
from nodeloom.core.subgraphs import expanded
from nodeloom.core.validate import NodeAnalysis, analyze_graph, catalog_for, cycle_issues


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
    checked: Mapping[str, Port]
    upstream: tuple[str, ...]
    retry: RetryPolicy
    timeout: float | None
    resources: Resources
    #: static part of the cache key; None when the node must never be cached
    static_key: str | None
    #: a non-deterministic node with a `seed` input: cacheable only when the seed is set
    seeded: bool = False
    downstream: tuple[str, ...] = ()
    #: a conditional node (`control.branch`, `control.switch`): some outputs may be `NOT_TAKEN`
    conditional: bool = False
    #: a join (`control.first`): runs with the linked inputs that arrived, leaving out the others
    joins: bool = False

    def gather_inputs(
        self, input_values: Mapping[str, Any], upstream: Mapping[str, Mapping[str, Any]], check: bool = True
    ) -> dict[str, Any]:
        """This node's inputs: literals, graph input values and upstream outputs; with `check`,
        values arriving over links are checked against their ports and coerced."""
        inputs = dict(self.literals)
        for port_name, input_name in self.graph_inputs:
            inputs[port_name] = input_values[input_name]
        for port_name, node, output in self.links:
            try:
                inputs[port_name] = upstream[node][output]
            except KeyError:
                if not self.joins:  # only a join leaves out an input that did not arrive
                    raise
        if check and self.checked:
            for port_name, port in self.checked.items():
                if port_name not in inputs:
                    continue  # an input of a join that did not arrive
                value = inputs[port_name]
                problem = port.check_value(value)
                if problem is not None:
                    code, message, hint = problem
                    raise NodeExecutionError(
                        f"input {port_name!r}: {message}",
                        node=self.id,
                        retryable=False,
                        details={"port": port_name, "reason": code, "hint": hint},
                    )
                if value is not None:
                    inputs[port_name] = port.type.coerce(value)
        return inputs

    def key(self, input_tokens: Mapping[str, str | None], upstream_keys: Mapping[str, str | None],
            seed: Any = None) -> str | None:
        """This node's cache key for one run, or None when it is not cacheable in this run."""
        static = self.static_key
        if static is None:
            return None
        if self.seeded and seed is None:
            return None  # a non-deterministic node is only repeatable with a fixed seed
        links = self.links
        if len(links) == 1 and not self.graph_inputs:
            port, node, output = links[0]
            upstream = upstream_keys[node]
            return None if upstream is None else linked_cache_key(static, port, upstream, output)
        parts = [static]
        for port, name in self.graph_inputs:
            token = input_tokens[name]
            if token is None:
                return None
            parts += (port, token)
        for port, node, output in links:
            upstream = upstream_keys[node]
            if upstream is None:
                return None
            parts += (port, upstream, output)
        return cache_key(parts)


@dataclass
class ExecutionPlan:
    """A validated graph, ready to run: nodes know their upstream and downstream neighbours."""

    graph: Graph
    nodes: dict[str, PlannedNode]
    outputs: dict[str, Link]
    #: where the node types came from (with the graph's own @node objects)
    catalog: NodeCatalog
    #: whether any node has a timeout (executors that run nodes on the caller's thread check this)
    has_timeouts: bool = False
    #: per node, how many upstream nodes it waits for: what a run counts down (copy it first)
    upstream_counts: dict[str, int] = field(default_factory=dict)
    #: the nodes without upstream nodes, in graph order: where a run starts
    roots: tuple[str, ...] = ()


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
    # graph nodes are expanded inline: the plan is of their inner nodes (saved graphs may change,
    # so such a plan is not remembered)
    flat = expanded(graph, catalog)
    issues, analyses = analyze_graph(flat, catalog, check_cycles=False)
    if issues:
        raise GraphValidationError(issues + cycle_issues(flat))
    plan, ordered = _plan(flat, analyses, catalog_for(flat, catalog))
    # nodes that each come after all their upstream nodes cannot form a loop; otherwise
    # counting ready nodes is cheaper than searching for loops
    if not ordered and not _acyclic(plan):
        raise GraphValidationError(cycle_issues(flat))
    if flat is graph:
        graph.plan_memo[id(catalog)] = (graph.revision, catalog.revision, catalog, plan)
    return plan


def prepare_run(
    graph: Graph, catalog: NodeCatalog, inputs: Mapping[str, Any] | None
) -> tuple[ExecutionPlan, dict[str, Any]]:
    """What every executor does before a run starts: plan the graph and check the values given
    for its inputs (defaults applied). Raises `GraphValidationError` before anything runs.
    The plan's `graph` is the graph with its graph nodes expanded."""
    plan = plan_execution(graph, catalog)
    values, issues = check_run_inputs(graph, inputs or {})
    if issues:
        raise GraphValidationError(issues)
    return plan, values


def _plan(graph: Graph, analyses: Mapping[str, NodeAnalysis], catalog: NodeCatalog) -> tuple[ExecutionPlan, bool]:
    """The plan, and whether every node comes after its upstream nodes (then the graph has no loop)."""
    nodes: dict[str, PlannedNode] = {}
    #: parent -> the nodes linked to it, in graph order (their `downstream`)
    children: dict[str, list[str]] = {}
    upstream_counts: dict[str, int] = {}
    roots: list[str] = []
    ordered = True
    has_timeouts = False
    for node_id, instance in graph.nodes.items():
        definition, literals, graph_inputs, links, checked = analyses[node_id]  # unpacked: by name costs more
        spec = definition.spec
        try:
            static: str | None = static_part(spec.type, spec.version, literals)
        except TypeError:
            static = None  # a literal without a stable form (builder-made graphs only)
        repeatable = spec.deterministic
        if not repeatable:
            if definition.repeatable is not None:
                token = definition.repeatable(literals, catalog)
                if token is not None and static is not None:
                    repeatable, static = True, f"{static}\x00{token}"
            if not repeatable and "seed" not in spec.input_map:
                static = None  # non-deterministic and no seed: never repeatable
        resources = spec.resources
        if instance.queue is not None:
            resources = Resources(resources.kind, instance.queue)
        upstream = (links[0][1],) if len(links) == 1 else _distinct_sources(links)
        upstream_counts[node_id] = len(upstream)
        if not upstream:
            roots.append(node_id)
        for parent in upstream:
            if parent in children:
                children[parent].append(node_id)
            else:
                children[parent] = [node_id]
                if parent not in nodes:  # a parent first seen after its child (it stays not ordered)
                    ordered = False
        timeout = instance.timeout if instance.timeout is not None else spec.timeout
        if timeout is not None:
            has_timeouts = True
        nodes[node_id] = PlannedNode(  # positional: this runs once per node of every new graph
            node_id,
            definition,
            literals,
            graph_inputs,
            links,
            checked,
            upstream,
            instance.retry_policy(spec.retry) if instance.retry else spec.retry,
            timeout,
            resources,
            static,
            not repeatable,
        )
    if not CONTROL_TYPES.isdisjoint(graph.node_types()):  # branches and joins: most graphs have none
        for planned in nodes.values():
            node_type = planned.definition.spec.type
            planned.conditional = node_type in CONDITIONAL_TYPES
            planned.joins = node_type in FIRST_TYPES
    for parent, linked in children.items():
        nodes[parent].downstream = tuple(linked)
    plan = ExecutionPlan(graph=graph, nodes=nodes, outputs=dict(graph.outputs), catalog=catalog,
                         has_timeouts=has_timeouts, upstream_counts=upstream_counts, roots=tuple(roots))
    return plan, ordered


def _acyclic(plan: ExecutionPlan) -> bool:
    nodes = plan.nodes
    waiting = dict(plan.upstream_counts)
    ready = list(plan.roots)
    reached = 0
    while ready:
        reached += 1
        for child in nodes[ready.pop()].downstream:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return reached == len(nodes)


def _distinct_sources(links: tuple[tuple[str, str, str], ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(node for _, node, _ in links))
