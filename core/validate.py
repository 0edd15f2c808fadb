"""Validation: every problem of a graph at once, as data, never a traceback.

`validate_graph(source, catalog)` accepts JSON text, parsed JSON or a `Graph` and returns
a list of `ValidationIssue` (empty when the graph is valid). Issue codes:

| code | meaning |
|---|---|
| `malformed_json` | the text is not JSON (line and column in the message) |
| `invalid_format` | a part of the document has the wrong shape |
| `unsupported_format_version` | written by a newer nodeloom |
| `invalid_id` | a node id or input name has characters that are not allowed |
| `invalid_type` | a graph input declares an unknown type |
| `unknown_node_type` | no node of this type is registered (hint: nearest names) |
| `unknown_port` | an input given that the node does not have, or a link to an output it does not have |
| `missing_input` | a required input has no value |
| `dangling_link` | a link to a node, or a reference to a graph input, that does not exist |
| `type_mismatch` | a value or link of the wrong type (expected and received are set) |
| `out_of_range`, `not_in_choices`, `pattern_mismatch` | a value breaks a constraint |
| `cycle` | nodes depend on each other in a loop (the loop is in the message) |
| `no_outputs` | the graph declares no outputs |
| `unknown_input` | a run was given a value for an input the graph does not declare |
| `branch_dependent_output` | a graph output not marked optional is absent for some choice of the branches |
| `unknown_graph` | a `graph:NAME@VERSION` node names a graph or version that no graph source has |
| `graph_recursion` | a graph used as a node contains itself, directly or through other graphs |
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from nodeloom.core.branches import branch_issues
from nodeloom.core.graph import (
    FORMAT_VERSION,
    Graph,
    GraphInput,
    InputRef,
    Link,
    NodeInstance,
    parse_value,
)
from nodeloom.core.ports import REQUIRED, Port
from nodeloom.core.spec import NodeDefinition, RetryPolicy
from nodeloom.core.subgraphs import expand_graph_nodes
from nodeloom.core.types import PortType, can_connect, parse_type

#: a node id; `/` separates the path of a graph node's inner node (`ad/storyboard`)
NODE_ID_PATTERN = re.compile(r"^(?=.{1,200}$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})*$")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

ISSUE_CODES = frozenset(
    {
        "malformed_json",
        "invalid_format",
        "unsupported_format_version",
        "invalid_id",
        "invalid_type",
        "unknown_node_type",
        "unknown_port",
        "missing_input",
        "dangling_link",
        "type_mismatch",
        "out_of_range",
        "not_in_choices",
        "pattern_mismatch",
        "cycle",
        "no_outputs",
        "unknown_input",
        "branch_dependent_output",
        "unknown_graph",
        "graph_recursion",
    }
)


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem: what (`code`, `message`), where (`node`, `port`), and how to fix it (`hint`)."""

    code: str
    message: str
    node: str | None = None
    port: str | None = None
    hint: str | None = None
    expected: str | None = None
    received: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "node": self.node,
            "port": self.port,
            "hint": self.hint,
            "expected": self.expected,
            "received": self.received,
        }

    def __str__(self) -> str:
        where = ".".join(part for part in (self.node, self.port) if part)
        text = f"[{self.code}] {where + ': ' if where else ''}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class NodeCatalog(Protocol):
    """What validation and planning need of a registry."""

    #: increases whenever a node type is added or replaced
    @property
    def revision(self) -> int: ...

    def find(self, type_name: str) -> NodeDefinition | None: ...

    def suggest(self, type_name: str, limit: int = 3) -> list[str]: ...


def _nearest(word: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=limit, cutoff=0.5)


def _one_of(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "(none)"


# -- reading the document ------------------------------------------------------------


def parse_json_text(text: str | bytes) -> tuple[Any, list[ValidationIssue]]:
    try:
        return json.loads(text), []
    except json.JSONDecodeError as error:
        return None, [
            ValidationIssue(
                "malformed_json",
                f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                hint="check for a missing comma, quote or bracket near that position",
            )
        ]
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return None, [ValidationIssue("malformed_json", f"not valid JSON: {error}")]


def _format_issue(message: str, node: str | None = None, port: str | None = None) -> ValidationIssue:
    return ValidationIssue("invalid_format", message, node=node, port=port)


def _read_graph_input(name: str, raw: Any, issues: list[ValidationIssue]) -> GraphInput | None:
    where = f"graph input {name!r}"
    if not NAME_PATTERN.match(name):
        issues.append(
            ValidationIssue(
                "invalid_id", f"{where}: names are letters, digits and underscores", port=name
            )
        )
        return None
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        issues.append(_format_issue(f'{where} must be an object such as {{"type": "Text"}}', port=name))
        return None
    try:
        port_type = parse_type(raw.get("type", "Any"))
    except ValueError as error:
        issues.append(ValidationIssue("invalid_type", f"{where}: {error}", port=name))
        return None
    description = raw.get("description", "")
    if not isinstance(description, str):
        issues.append(_format_issue(f"{where}: description must be a string", port=name))
        description = ""
    constraints = {k: raw[k] for k in ("min", "max", "choices", "pattern") if k in raw}
    for key in ("min", "max"):
        if key in constraints and (
            not isinstance(constraints[key], int | float) or isinstance(constraints[key], bool)
        ):
            issues.append(_format_issue(f"{where}: {key} must be a number", port=name))
            return None
    if "choices" in constraints and not isinstance(constraints["choices"], list):
        issues.append(_format_issue(f"{where}: choices must be a list", port=name))
        return None
    if "pattern" in constraints:
        try:
            re.compile(constraints["pattern"])
        except (re.error, TypeError) as error:
            issues.append(_format_issue(f"{where}: pattern is not a regular expression: {error}", port=name))
            return None
    try:
        declared = GraphInput(name, port_type, parse_value(raw["default"]) if "default" in raw else REQUIRED,
                              description, constraints)
    except (TypeError, ValueError) as error:
        issues.append(_format_issue(f"{where}: {error}", port=name))
        return None
    if not declared.port.required and declared.default is not None:
        problem = declared.port.check_value(declared.default)
        if problem is not None:
            code, message, hint = problem
            issues.append(ValidationIssue(code, f"{where}: default {message}", port=name, hint=hint))
    return declared


_RETRY_FIELDS = set(RetryPolicy.__dataclass_fields__)


def _is_text(value: object) -> bool:
    """isinstance(value, str), for fields typed str that JSON may have filled with anything."""
    return isinstance(value, str)


def _read_node(node_id: str, raw: Any, issues: list[ValidationIssue]) -> NodeInstance | None:
    if not NODE_ID_PATTERN.match(node_id):
        issues.append(
            ValidationIssue(
                "invalid_id",
                f"node id {node_id!r}: use letters, digits, '_', '.', '-' (at most 128; '/' only in the path "
                "of a graph node's inner node)",
                node=node_id,
            )
        )
        return None
    if not isinstance(raw, dict):
        issues.append(_format_issue('a node must be an object {"type": ..., "inputs": {...}}', node=node_id))
        return None
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        issues.append(_format_issue('a node needs a "type" string such as "text.template"', node=node_id))
        return None
    raw_inputs = raw.get("inputs", {})
    if not isinstance(raw_inputs, dict):
        issues.append(_format_issue('"inputs" must be an object of input name to value', node=node_id))
        return None
    unknown_keys = set(raw) - {"type", "inputs", "retry", "timeout", "queue", "label"}
    if unknown_keys:
        issues.append(
            _format_issue(
                f"unknown node keys {sorted(unknown_keys)}; allowed: type, inputs, retry, timeout, queue, label",
                node=node_id,
            )
        )
    inputs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for port, value in raw_inputs.items():
        parsed = parse_value(value)
        if isinstance(parsed, Link) and not (_is_text(parsed.node) and _is_text(parsed.output)):
            issues.append(_format_issue("a link's node and output must be strings", node=node_id, port=port))
            continue
        if isinstance(parsed, InputRef) and not _is_text(parsed.name):
            issues.append(_format_issue("a graph input reference names a string", node=node_id, port=port))
            continue
        inputs[port] = parsed
    retry = raw.get("retry")
    if retry is not None:
        if not isinstance(retry, dict) or not set(retry) <= _RETRY_FIELDS:
            allowed = sorted(_RETRY_FIELDS)
            issues.append(_format_issue(f"retry must be an object with keys among {allowed}", node=node_id))
        else:
            try:
                RetryPolicy(**retry)
                options["retry"] = retry
            except (TypeError, ValueError) as error:
                issues.append(_format_issue(f"retry: {error}", node=node_id))
    timeout = raw.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            issues.append(_format_issue("timeout must be a positive number of seconds", node=node_id))
        else:
            options["timeout"] = float(timeout)
    for key in ("queue", "label"):
        option = raw.get(key)
        if option is not None:
            if isinstance(option, str):
                options[key] = option
            else:
                issues.append(_format_issue(f"{key} must be a string", node=node_id))
    return NodeInstance(node_id, node_type, inputs, **options)


def read_graph_document(data: Any) -> tuple[Graph | None, list[ValidationIssue]]:
    """Turn parsed JSON into a `Graph`, reporting every problem of shape at once."""
    issues: list[ValidationIssue] = []
    if not isinstance(data, dict):
        return None, [_format_issue('a graph is a JSON object with "nodes" and "outputs"')]
    version = data.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        issues.append(_format_issue("format_version must be an integer"))
    elif version > FORMAT_VERSION:
        issues.append(
            ValidationIssue(
                "unsupported_format_version",
                f"format_version {version} is newer than this nodeloom reads ({FORMAT_VERSION})",
                hint="upgrade nodeloom",
            )
        )
        return None, issues
    name = data.get("name", "graph")
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        issues.append(_format_issue("name and description must be strings"))
        name, description = "graph", ""
    graph = Graph(name, description)
    metadata = data.get("metadata", {})
    if isinstance(metadata, dict):
        graph.metadata = metadata
    else:
        issues.append(_format_issue("metadata must be an object"))
    sections: dict[str, dict[str, Any]] = {}
    for section in ("inputs", "nodes", "outputs"):
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            issues.append(_format_issue(f'"{section}" must be an object keyed by name'))
            raw = {}
        sections[section] = raw
    for input_name, raw in sections["inputs"].items():
        declared = _read_graph_input(input_name, raw, issues)
        if declared is not None:
            graph._put_input(declared)
    for node_id, raw in sections["nodes"].items():
        instance = _read_node(node_id, raw, issues)
        if instance is not None:
            graph._put_node(instance)
    for output_name, raw in sections["outputs"].items():
        optional = isinstance(raw, dict) and raw.get("optional") is True
        if optional:
            raw = {key: value for key, value in raw.items() if key != "optional"}
        link = parse_value(raw)
        if not isinstance(link, Link) or not _is_text(link.node) or not _is_text(link.output):
            issues.append(
                _format_issue(
                    f'graph output {output_name!r} must be a link {{"node": id, "output": name}}',
                    port=output_name,
                )
            )
            continue
        graph.output(output_name, link, optional=optional)
    return graph, issues


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


#: What validation learned about a node that planning needs, so it is not redone:
#: (definition, literals coerced to their port types, (port, graph input name) pairs,
#: (port, upstream node, upstream output) links, the ports whose incoming value must be
#: checked and coerced when the node runs). A plain tuple rather than a NamedTuple: one is
#: made per node of every new graph, and building a NamedTuple costs a Python-level call.
NodeAnalysis = tuple[
    NodeDefinition,
    dict[str, Any],
    tuple[tuple[str, str], ...],
    tuple[tuple[str, str, str], ...],
    Mapping[str, Port],
]


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
                hint=f"nodes: {_one_of(_nearest(link.node, graph.nodes) or graph.nodes)}",
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
                hint=f"outputs of {source.type}: {_one_of(outputs)}",
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
    graph_inputs: list[tuple[str, str]] = []
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
                            f"did you mean {_one_of(_nearest(port_name, spec.input_map))}?"
                            if _nearest(port_name, spec.input_map)
                            else f"inputs of {spec.type}: {_one_of(spec.input_map)}"
                        ),
                    )
                )
                continue
            port = _extra_port(port_name, spec.variadic)
        if isinstance(value, Link):
            links.append((port_name, value.node, value.output))
            upstream = nodes.get(value.node)
            upstream_definition = catalog.find(upstream.type) if upstream is not None else None
            source = upstream_definition.spec.output_map.get(value.output) if upstream_definition else None
            if source is None:  # not there: say why
                _check_link_source(graph, catalog, value, node_id, port_name, issues)
            else:
                if source.type is not port.type:  # the test `_check_connection` starts with, saving a call
                    _check_connection(source.type, port, node_id, value, issues)
                if port.constraints or (source.type is not port.type and source.type != port.type):
                    checked = checked or {}
                    checked[port_name] = port
        elif isinstance(value, InputRef):
            graph_inputs.append((port_name, value.name))
            declared = declared_inputs.get(value.name)
            if declared is None:
                issues.append(_dangling_input(value, node_id, port_name, graph))
            else:
                _check_connection(declared.type, port, node_id, value, issues)
                if port.constraints or (declared.type is not port.type and declared.type != port.type):
                    checked = checked or {}
                    checked[port_name] = port
        elif (convert := port.plain_literals.get(type(value))) is not None:  # the common case
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
                        received=_json_kind(value) if code == "type_mismatch" else None,
                    )
                )
            else:
                literals[port_name] = port.type.coerce(value) if value is not None else None
    if definition.check is not None:
        for own in definition.check(literals, catalog):
            issues.append(ValidationIssue(own.code, own.message, node=node_id, port=own.port, hint=own.hint))
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
    return definition, literals, tuple(graph_inputs), tuple(links), checked or _NOTHING_CHECKED


@functools.lru_cache(maxsize=32768)  # wide fan-ins name thousands of extra inputs (v0 ... v9999)
def _extra_port(name: str, port_type: PortType) -> Port:
    """The port of an extra input of a variadic node (graphs reuse names such as v0, v1, ...)."""
    return Port(name, port_type)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "Text"
    if isinstance(value, list):
        return "List"
    if value is None:
        return "null"
    return "Json"


def _dangling_input(ref: InputRef, node: str, port: str, graph: Graph) -> ValidationIssue:
    return ValidationIssue(
        "dangling_link",
        f"refers to graph input {ref.name!r}, which the graph does not declare",
        node=node,
        port=port,
        hint=f'declare it under "inputs"; declared: {_one_of(graph.inputs)}',
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


def check_run_inputs(graph: Graph, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[ValidationIssue]]:
    """Check the values given for a run against the graph's inputs; apply defaults.

    Returns the values the run uses (coerced to their types) and the problems found.
    """
    issues: list[ValidationIssue] = []
    resolved: dict[str, Any] = {}
    for name in values:
        if name not in graph.inputs:
            issues.append(
                ValidationIssue(
                    "unknown_input",
                    f"the graph has no input {name!r}",
                    port=name,
                    hint=f"inputs: {_one_of(graph.inputs)}",
                )
            )
    for name, declared in graph.inputs.items():
        if name in values:
            value = values[name]
        elif declared.port.required:
            issues.append(
                ValidationIssue(
                    "missing_input",
                    f"graph input {name!r} ({declared.type.name}) needs a value",
                    port=name,
                    expected=declared.type.name,
                    hint=declared.description or None,
                )
            )
            continue
        else:
            value = declared.default
        problem = declared.port.check_value(value)
        if problem is not None:
            code, message, hint = problem
            issues.append(ValidationIssue(code, f"graph input {name!r}: {message}", port=name, hint=hint,
                                          expected=declared.type.name if code == "type_mismatch" else None))
            continue
        resolved[name] = declared.type.coerce(value) if value is not None else None
    return resolved, issues
