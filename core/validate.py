"""Validation: every problem of a graph at once, as data, never a traceback.

`validate_graph(source, catalog)` accepts JSON text, parsed JSON or a `Graph` and returns
a list of `ValidationIssue` (empty when the graph is valid); the issue codes are listed in
`nodeloom.core.issues`. `analyze_graph` also returns what planning needs of each node.
Reading the JSON document is `nodeloom.core.document`'s work; checking the values given for
a run's inputs, `nodeloom.core.run_inputs`'.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from nodeloom.core.branches import branch_issues
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.document import NAME_PATTERN, parse_json_text
from nodeloom.core.graph import Graph, read_graph_document
from nodeloom.core.graph_parts import InputRef, Link, NodeInstance
from nodeloom.core.issues import ISSUE_CODES, ValidationIssue, for_node, json_kind, nearest, one_of
from nodeloom.core.ports import Port
from nodeloom.core.run_inputs import check_run_inputs
from nodeloom.core.spec import NodeDefinition
from nodeloom.core.subgraphs import expand_graph_nodes
from nodeloom.core.types import PortType, can_connect

#: names other modules import from here; each is defined in the module named in its import above
__all__ = [
    "ISSUE_CODES",
    "NAME_PATTERN",
    "NodeAnalysis",
    "NodeCatalog",
    "ValidationIssue",
    "analyze_graph",
    "catalog_for",
    "check_run_inputs",
    "cycle_issues",
    "find_cycles",
    "read_graph_document",
    "validate_graph",
]


# -- checking against a catalog ------------------------------------------------------


class _CatalogWithLocal:
    """A catalog that also knows a graph's own `@node` objects."""

    def __init__(self, base: NodeCatalog, local: Mapping[str, NodeDefinition]) -> None:
        self.base = base
        self.local = local

    @property
    def revision(self) -> int:
        return self.base.revision

    def find(self, type_name: str) -> NodeDefinition | None:
        return self.local.get(type_name) or self.base.find(type_name)

    def suggest(self, type_name: str, limit: int = 3) -> list[str]:
        return self.base.suggest(type_name, limit)


class _Found(dict[str, NodeDefinition | None]):
    """Type name -> definition, looked up in `base` the first time a name is asked for."""

    def __init__(self, base: NodeCatalog) -> None:
        super().__init__()
        self.base = base

    def __missing__(self, type_name: str) -> NodeDefinition | None:
        found = self[type_name] = self.base.find(type_name)
        return found


class _MemoCatalog:
    """Remembers lookups for the length of one analysis (a type is looked up once)."""

    #: a dict lookup rather than a method: a repeated type (the usual case) costs no Python call
    find: Callable[[str], NodeDefinition | None]

    def __init__(self, base: NodeCatalog) -> None:
        self.base = base
        self.find = _Found(base).__getitem__

    @property
    def revision(self) -> int:
        return self.base.revision

    def suggest(self, type_name: str, limit: int = 3) -> list[str]:
        return self.base.suggest(type_name, limit)


_NOTHING_CHECKED: Mapping[str, Port] = MappingProxyType({})


class NodeAnalysis(NamedTuple):
    """What validation learned about a node that planning needs, so it is not redone."""

    definition: NodeDefinition
    #: literal inputs, coerced to their port types
    literals: dict[str, Any]
    #: (port, graph input name) pairs
    graph_inputs: tuple[tuple[str, str], ...]
    #: (port, upstream node, upstream output) links
    links: tuple[tuple[str, str, str], ...]
    #: the ports whose incoming (linked or graph-input) value must be checked and coerced when the node runs
    checked: Mapping[str, Port]


#: builds a `NodeAnalysis` from a plain tuple in C: the generated `NodeAnalysis(...)` is a Python-level
#: call, once per node of every new graph (measured gain: 1.6k of 38.2k instr/node in planning, chain-100)
_new_analysis = tuple.__new__


def catalog_for(graph: Graph, catalog: NodeCatalog) -> NodeCatalog:
    """`catalog`, extended with the `@node` objects the graph was built with."""
    return _CatalogWithLocal(catalog, graph.local_definitions) if graph.local_definitions else catalog


def _check_link_source(
    graph: Graph,
    catalog: NodeCatalog,
    link: Link,
    node: str | None,
    port: str | None,
    issues: list[ValidationIssue],
) -> Port | None:
    source = graph._nodes.get(link.node)
    if source is None:
        issues.append(
            ValidationIssue(
                "dangling_link",
                f"links to node {link.node!r}, which is not in the graph",
                node=node,
                port=port,
                hint=f"nodes: {one_of(nearest(link.node, graph.nodes) or graph.nodes)}",
            )
        )
        return None
    definition = catalog.find(source.type)
    if definition is None:
        return None  # reported as unknown_node_type on the source node
    found = definition.spec.output_map.get(link.output)
    if found is None:
        outputs = definition.spec.output_map
        issues.append(
            ValidationIssue(
                "unknown_port",
                f"node {link.node!r} ({source.type}) has no output {link.output!r}",
                node=node,
                port=port,
                hint=f"outputs of {source.type}: {one_of(outputs)}",
            )
        )
    return found


def _check_node(
    graph: Graph, catalog: NodeCatalog, instance: NodeInstance, issues: list[ValidationIssue]
) -> NodeAnalysis | None:
    definition = catalog.find(instance.type)
    node_id = instance.id
    if definition is None:
        suggestions = catalog.suggest(instance.type)
        issues.append(
            ValidationIssue(
                "unknown_node_type",
                f"unknown node type {instance.type!r}",
                node=node_id,
                hint=f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions
                else "run 'nodeloom nodes' to list the node types",
            )
        )
        for given, value in instance._given.items():
            if isinstance(value, Link):
                _check_link_source(graph, catalog, value, node_id, given, issues)
            elif isinstance(value, InputRef) and value.name not in graph.inputs:
                issues.append(_dangling_input(value, node_id, given, graph))
        return None
    spec = definition.spec
    literals: dict[str, Any] = {}
    graph_inputs: list[tuple[str, str]] | None = None  # made for the few nodes that read a graph input
    links: list[tuple[str, str, str]] = []
    checked: dict[str, Port] | None = None
    declared_inputs = graph._inputs
    nodes = graph._nodes
    for port_name, value in instance._given.items():
        port = spec.input_map.get(port_name)
        if port is None:
            if spec.variadic is None or not NAME_PATTERN.match(port_name):
                issues.append(
                    ValidationIssue(
                        "unknown_port",
                        f"{spec.type} has no input {port_name!r}",
                        node=node_id,
                        port=port_name,
                        hint=(
                            f"did you mean {one_of(nearest(port_name, spec.input_map))}?"
                            if nearest(port_name, spec.input_map)
                            else f"inputs of {spec.type}: {one_of(spec.input_map)}"
                        ),
                    )
                )
                continue
            port = _extra_port(port_name, spec.variadic)
        if isinstance(value, Link):
            # unpacked once: a NamedTuple's field read by name is not specialized (with the graph-input list made
            # only when needed: 0.3k of 36.9k instr/node in planning, chain-100)
            source_node, source_output = value
            links.append((port_name, source_node, source_output))
            upstream = nodes.get(source_node)
            upstream_definition = catalog.find(upstream.type) if upstream is not None else None
            source = upstream_definition.spec.output_map.get(source_output) if upstream_definition else None
            if source is None:  # not there: say why
                _check_link_source(graph, catalog, value, node_id, port_name, issues)
            else:
                # measured gain: this test and the literal fast path below save 5.1k of 101.3k instr/node (chain-100)
                if source.type is not port.type:  # the test `_check_connection` starts with, saving a call
                    _check_connection(source.type, port, node_id, value, issues)
                if port.constraints or (source.type is not port.type and source.type != port.type):
                    checked = checked or {}
                    checked[port_name] = port
        elif isinstance(value, InputRef):
            if graph_inputs is None:
                graph_inputs = []
            graph_inputs.append((port_name, value.name))
            declared = declared_inputs.get(value.name)
            if declared is None:
                issues.append(_dangling_input(value, node_id, port_name, graph))
            else:
                _check_connection(declared.type, port, node_id, value, issues)
                if port.constraints or (declared.type is not port.type and declared.type != port.type):
                    checked = checked or {}
                    checked[port_name] = port
        elif (convert := port.plain_literals.get(type(value))) is not None:  # the common case (gain: see above)
            literals[port_name] = convert(value)
        elif not port.type.accepts_literal:
            issues.append(
                ValidationIssue(
                    "type_mismatch",
                    f"a {port.type.name} cannot be written as a literal; link it from a node",
                    node=node_id,
                    port=port_name,
                    expected=port.type.name,
                    received="literal",
                )
            )
        else:
            problem = port.check_value(value)
            if problem is not None:
                code, message, hint = problem
                issues.append(
                    ValidationIssue(
                        code,
                        message,
                        node=node_id,
                        port=port_name,
                        hint=hint,
                        expected=port.type.name if code == "type_mismatch" else None,
                        received=json_kind(value) if code == "type_mismatch" else None,
                    )
                )
            else:
                literals[port_name] = port.type.coerce(value) if value is not None else None
    if definition.check is not None:
        issues += _for_node(definition.check(literals, catalog), node_id)
    given_inputs = instance._given
    if not given_inputs.keys() >= spec.required_names:  # one set test; the loop only to report what is missing
        for port in spec.required_inputs:
            if port.name not in given_inputs:
                issues.append(
                    ValidationIssue(
                        "missing_input",
                        f"required input {port.name!r} ({port.type.name}) has no value",
                        node=node_id,
                        port=port.name,
                        hint="give a literal, a link to a node output, or a graph input",
                        expected=port.type.name,
                    )
                )
    read_inputs = tuple(graph_inputs) if graph_inputs else ()
    return _new_analysis(NodeAnalysis, (definition, literals, read_inputs, tuple(links), checked or _NOTHING_CHECKED))


def _for_node(problems: Iterable[ValidationIssue], node_id: str) -> list[ValidationIssue]:
    # apart from `_check_node`: a comprehension there naming `node_id` would make every call of it allocate a cell
    return [for_node(own, node_id) for own in problems]


@functools.lru_cache(maxsize=32768)  # wide fan-ins name thousands of extra inputs (v0 ... v9999)
def _extra_port(name: str, port_type: PortType) -> Port:
    """The port of an extra input of a variadic node (graphs reuse names such as v0, v1, ...)."""
    return Port(name, port_type)


def _dangling_input(ref: InputRef, node: str, port: str, graph: Graph) -> ValidationIssue:
    return ValidationIssue(
        "dangling_link",
        f"refers to graph input {ref.name!r}, which the graph does not declare",
        node=node,
        port=port,
        hint=f'declare it under "inputs"; declared: {one_of(graph.inputs)}',
    )


def _check_connection(
    src_type: Any, port: Port, node: str, source: Link | InputRef, issues: list[ValidationIssue]
) -> None:
    if src_type is port.type:
        return
    verdict = can_connect(src_type, port.type)
    if not verdict:
        what = f"output {source.node}.{source.output}" if isinstance(source, Link) else f"graph input {source.name!r}"
        issues.append(
            ValidationIssue(
                "type_mismatch",
                f"{what} is {src_type.name} but input {port.name!r} takes {port.type.name}: {verdict.reason}",
                node=node,
                port=port.name,
                expected=port.type.name,
                received=src_type.name,
            )
        )


def find_cycles(graph: Graph) -> list[list[str]]:
    """Each loop of links among the graph's nodes, as a list of node ids (first repeated last)."""
    successors: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
    indegree = dict.fromkeys(graph.nodes, 0)
    for instance in graph.nodes.values():
        for _, link in instance.links():
            if link.node in successors:
                successors[link.node].append(instance.id)
                indegree[instance.id] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    while ready:
        current = ready.pop()
        for nxt in successors[current]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    remaining = {n for n, d in indegree.items() if d > 0}
    if not remaining:
        return []
    # drop nodes that only hang below a loop: keep those with a successor that is kept
    outdegree = {n: sum(1 for s in successors[n] if s in remaining) for n in remaining}
    predecessors: dict[str, list[str]] = {n: [] for n in remaining}
    for n in remaining:
        for s in successors[n]:
            if s in remaining:
                predecessors[s].append(n)
    sinks = [n for n, d in outdegree.items() if d == 0]
    while sinks:
        current = sinks.pop()
        remaining.discard(current)
        for p in predecessors[current]:
            if p in remaining:
                outdegree[p] -= 1
                if outdegree[p] == 0:
                    sinks.append(p)
    cycles: list[list[str]] = []
    assigned: set[str] = set()
    for start in sorted(remaining):
        if start in assigned:
            continue
        path: list[str] = []
        position: dict[str, int] = {}
        current = start
        while current not in position and current not in assigned:
            position[current] = len(path)
            path.append(current)
            current = next(s for s in successors[current] if s in remaining)
        assigned.update(path)
        if current in position:
            loop = path[position[current]:]
            cycles.append([*loop, loop[0]])
    return cycles


def analyze_graph(
    graph: Graph, catalog: NodeCatalog, *, check_cycles: bool = True
) -> tuple[list[ValidationIssue], dict[str, NodeAnalysis]]:
    """Check a graph against `catalog`: every issue, and per node what planning needs.

    `check_cycles=False` leaves out the loop search, for a caller that orders the nodes
    anyway and calls `cycle_issues` only when that finds a loop.
    """
    issues: list[ValidationIssue] = []
    memo = _MemoCatalog(catalog_for(graph, catalog))
    analyses: dict[str, NodeAnalysis] = {}
    for node_id, instance in graph.nodes.items():
        analysis = _check_node(graph, memo, instance, issues)
        if analysis is not None:
            analyses[node_id] = analysis
    for name, link in graph.outputs.items():
        _check_link_source(graph, memo, link, None, name, issues)
    if not graph.outputs:
        issues.append(
            ValidationIssue(
                "no_outputs",
                "the graph declares no outputs, so a run would return nothing",
                hint='add "outputs": {"name": {"node": id, "output": port}}',
            )
        )
    if check_cycles:
        issues.extend(cycle_issues(graph))
    issues.extend(branch_issues(graph, check_outputs=not issues))
    return issues, analyses


def cycle_issues(graph: Graph) -> list[ValidationIssue]:
    """One `cycle` issue per loop of links in the graph."""
    return [
        ValidationIssue(
            "cycle",
            "nodes depend on each other in a loop: " + " -> ".join(loop),
            node=loop[0],
            hint="remove one of the links in the loop",
        )
        for loop in find_cycles(graph)
    ]


def validate_graph(source: Graph | Mapping[str, Any] | str | bytes, catalog: NodeCatalog) -> list[ValidationIssue]:
    """Every problem of the graph against `catalog`, or an empty list. Never raises for bad input."""
    issues: list[ValidationIssue] = []
    if isinstance(source, Graph):
        graph = source
    else:
        data: Any = source
        if isinstance(source, str | bytes):
            data, issues = parse_json_text(source)
            if issues:
                return issues
        found, issues = read_graph_document(data)
        if found is None:
            return issues
        graph = found
    # graph nodes (`graph:NAME@VERSION`) are checked as what they expand to
    flat, expansion_issues = expand_graph_nodes(graph, catalog)
    if expansion_issues:
        return issues + expansion_issues
    return issues + analyze_graph(flat, catalog)[0]
