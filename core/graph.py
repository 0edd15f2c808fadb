"""The graph model, its JSON format and the Python builder.

A graph is nodes by id (`{type, inputs}`), named graph inputs (the parameters a user sets
per run) and named graph outputs. A node input is a literal, a link to another node's
output `{"node": id, "output": name}`, or a reference to a graph input `{"input": name}`.
A literal object that has exactly the shape of a link or a reference is written wrapped,
`{"literal": {...}}`, so the round trip is lossless. See docs/graph-format.md.

The parts (`NodeInstance`, `GraphInput`, `Link`, `InputRef`) live in `graph_parts.py`,
the reader of the JSON document in `document.py`; this module assembles them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from nodeloom.core.document import FORMAT_VERSION, GraphDocument, parse_json_text, read_document
from nodeloom.core.errors import GraphValidationError
from nodeloom.core.graph_parts import GraphInput, InputRef, Link, NodeInstance, parse_value
from nodeloom.core.issues import ValidationIssue
from nodeloom.core.ports import REQUIRED
from nodeloom.core.spec import NodeDefinition, definition_of
from nodeloom.core.types import PortType, parse_type

#: the parts of a graph, importable from here as well (they were defined here before graph_parts.py)
__all__ = [
    "FORMAT_VERSION",
    "Graph",
    "GraphInput",
    "InputRef",
    "Link",
    "NodeHandle",
    "NodeInstance",
    "as_graph",
    "parse_value",
    "read_graph_document",
]


class NodeHandle:
    """What `Graph.add` returns: `handle["text"]` (or `handle.out("text")`) is a link."""

    __slots__ = ("graph", "id")

    def __init__(self, graph: Graph, node_id: str) -> None:
        self.graph = graph
        self.id = node_id

    def out(self, output: str) -> Link:
        return Link(self.id, output)

    def configure(self, **options: Any) -> NodeHandle:
        """Set node options (see `Graph.configure`); returns the handle for chaining."""
        self.graph.configure(self.id, **options)
        return self

    def __getitem__(self, output: str) -> Link:
        return Link(self.id, output)

    def __repr__(self) -> str:
        return f"<node {self.id!r}: {self.graph.nodes[self.id].type}>"


class Graph:
    """A workflow: build it in Python or load it from JSON, then validate and run it.

    >>> g = Graph("greeting")
    >>> name = g.input("name", Text, default="world")
    >>> hello = g.add("text.template", template="Hello {{ name }}!", name=name)
    >>> g.output("greeting", hello["text"])

    `nodes`, `inputs` and `outputs` are read-only views: a graph changes only through its
    methods, which count `revision`, so an executor may reuse a validated plan safely.
    """

    def __init__(self, name: str = "graph", description: str = "") -> None:
        self.name = name
        self.description = description
        self.metadata: dict[str, Any] = {}
        self._inputs: dict[str, GraphInput] = {}
        self._nodes: dict[str, NodeInstance] = {}
        self._outputs: dict[str, Link] = {}
        self._optional: set[str] = set()
        self._local: dict[str, NodeDefinition] = {}
        self.revision = 0
        #: plans made for this graph, by catalog (see `nodeloom.core.plan`)
        self.plan_memo: dict[int, tuple[int, int, Any, Any]] = {}
        self._types_memo: tuple[int, frozenset[str]] | None = None

    @property
    def inputs(self) -> Mapping[str, GraphInput]:
        return MappingProxyType(self._inputs)

    @property
    def nodes(self) -> Mapping[str, NodeInstance]:
        return MappingProxyType(self._nodes)

    @property
    def outputs(self) -> Mapping[str, Link]:
        return MappingProxyType(self._outputs)

    @property
    def optional_outputs(self) -> frozenset[str]:
        """Outputs that may be absent from a run's result (their source was skipped by a branch)."""
        return frozenset(self._optional)

    @property
    def local_definitions(self) -> Mapping[str, NodeDefinition]:
        """Node definitions given to `add` as objects; used to run the graph, never saved."""
        return MappingProxyType(self._local)

    def node_types(self) -> frozenset[str]:
        """The node types the graph uses, remembered until it changes: planning asks several times
        (graph nodes to expand? branches? joins?), so a plain graph is scanned once, not per question."""
        memo = self._types_memo
        if memo is None or memo[0] != self.revision:
            memo = self._types_memo = (self.revision, frozenset({node.type for node in self._nodes.values()}))
        return memo[1]

    def _changed(self) -> None:
        self.revision += 1

    # -- builder -------------------------------------------------------------------
    def input(
        self,
        name: str,
        type: PortType | str,
        *,
        default: Any = REQUIRED,
        description: str = "",
        **constraints: Any,
    ) -> InputRef:
        """Declare a graph input; `min`, `max`, `choices`, `pattern` may be given as keywords."""
        self._inputs[name] = GraphInput(name, parse_type(type), default, description, constraints)
        self._changed()
        return InputRef(name)

    def add(self, node_type: str | Any, id: str | None = None, /, **inputs: Any) -> NodeHandle:
        """Add a node by type name (or by a `@node` object) and return a handle to its outputs.

        Keywords are the node's inputs (any name, `id` and `timeout` included); set node
        options such as a timeout or a retry policy with `configure`.
        """
        definition = None if isinstance(node_type, str) else definition_of(node_type)
        if definition is not None:
            self._local[definition.spec.type] = definition
            type_name = definition.spec.type
        elif isinstance(node_type, str):
            type_name = node_type
        else:
            raise TypeError("add() takes a node type name or a @node function or class")
        node_id = id or self._fresh_id(type_name)
        if node_id in self._nodes:
            raise ValueError(f"the graph already has a node {node_id!r}")
        _refuse_handles(inputs)
        self._nodes[node_id] = NodeInstance(node_id, type_name, inputs)
        self._changed()
        return NodeHandle(self, node_id)

    def configure(
        self,
        node_id: str,
        *,
        retry: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        label: str | None = None,
    ) -> None:
        """Set per-node options: a retry policy (`{"max_attempts": 3}`), a timeout in
        seconds, a distributed queue, a display label. Options left out are unchanged."""
        current = self._nodes[node_id]
        changes: dict[str, Any] = {"retry": retry, "timeout": timeout, "queue": queue, "label": label}
        self._nodes[node_id] = replace(current, **{k: v for k, v in changes.items() if v is not None})
        self._changed()

    def set_inputs(self, node_id: str, **inputs: Any) -> None:
        """Change (or add) inputs of an existing node."""
        current = self._nodes[node_id]
        _refuse_handles(inputs)
        self._nodes[node_id] = replace(current, inputs={**current.inputs, **inputs})
        self._changed()

    def remove(self, node_id: str) -> None:
        """Remove a node (links to it become dangling and fail validation)."""
        del self._nodes[node_id]
        self._changed()

    def output(self, name: str, source: Link, *, optional: bool = False) -> None:
        """Expose a node output as the graph output `name`. An `optional` output may hang on a
        branch: when its source is skipped it is simply absent from the result."""
        if not isinstance(source, Link):
            raise TypeError("output() takes a link such as handle['text']")
        self._outputs[name] = source
        if optional:
            self._optional.add(name)
        else:
            self._optional.discard(name)
        self._changed()

    def _put_node(self, instance: NodeInstance) -> None:
        self._nodes[instance.id] = instance
        self._changed()

    def _put_input(self, declared: GraphInput) -> None:
        self._inputs[declared.name] = declared
        self._changed()

    def _fresh_id(self, type_name: str) -> str:
        stem = type_name.rsplit(".", 1)[-1]
        index = 1
        while f"{stem}_{index}" in self._nodes:
            index += 1
        return f"{stem}_{index}"

    # -- JSON ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format_version": FORMAT_VERSION, "name": self.name}
        if self.description:
            data["description"] = self.description
        data["inputs"] = {name: spec.to_json() for name, spec in self.inputs.items()}
        data["nodes"] = {node_id: n.to_json() for node_id, n in self.nodes.items()}
        data["outputs"] = {
            name: {**link.to_json(), "optional": True} if name in self._optional else link.to_json()
            for name, link in self.outputs.items()
        }
        if self.metadata:
            data["metadata"] = self.metadata
        return data

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_json(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Any) -> Graph:
        """Build a graph from parsed JSON. Raises `GraphValidationError` if its shape is wrong.

        This checks the format only; `validate_graph` checks it against a registry.
        """
        graph, issues = read_graph_document(data)
        if graph is None or issues:
            raise GraphValidationError(issues)
        return graph

    @classmethod
    def loads(cls, text: str | bytes) -> Graph:
        data, issues = parse_json_text(text)
        if issues:
            raise GraphValidationError(issues)
        return cls.from_json(data)

    @classmethod
    def _from_document(cls, document: GraphDocument) -> Graph:
        graph = cls(document.name, document.description)
        graph.metadata = document.metadata
        graph._inputs = {declared.name: declared for declared in document.inputs}
        graph._nodes = {instance.id: instance for instance in document.nodes}
        graph._outputs = dict(document.outputs)
        graph._optional = set(document.optional_outputs)
        graph.revision = 1
        return graph

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes>"


def _refuse_handles(inputs: Mapping[str, Any]) -> None:
    for port, value in inputs.items():
        if isinstance(value, NodeHandle):
            raise TypeError(f"input {port!r}: pass one output of node {value.id!r}, e.g. handle['result']")


def read_graph_document(data: Any) -> tuple[Graph | None, list[ValidationIssue]]:
    """Turn parsed JSON into a `Graph`, with every problem of shape at once (the graph is None when unreadable)."""
    document, issues = read_document(data)
    return (None if document is None else Graph._from_document(document)), issues


def as_graph(source: Graph | Mapping[str, Any] | str | bytes) -> Graph:
    """Accept a Graph, parsed JSON or JSON text."""
    if isinstance(source, Graph):
        return source
    if isinstance(source, str | bytes):
        return Graph.loads(source)
    return Graph.from_json(source)
