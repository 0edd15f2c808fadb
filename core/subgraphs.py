"""Graphs as nodes: a saved graph used as the node type `graph:NAME@VERSION`.

Its input ports are the saved graph's inputs, its output ports the saved graph's outputs.
When a run is planned (and when a graph is validated) every such node is expanded inline:
the saved graph's nodes join the graph under path ids (`ad/storyboard` is node `storyboard`
of the graph node `ad`; graph nodes nest), so each inner node is cached, scheduled on its own
lane and reported in events like any other.

Saved graphs come from a `GraphSource`: the registry's `graphs` library (graphs added with
`NodeRegistry.add_graph` and folders of `NAME@VERSION.json` files, such as the folders named in
`NODELOOM_GRAPHS`), and the REST API's graphs of the caller's project. A graph node naming a
graph or version no source has (`unknown_graph`), one whose graph contains itself
(`graph_recursion`), and one whose ports no longer fit the saved graph (`unknown_port`,
`missing_input`) are validation errors naming the node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nodeloom.core.errors import GraphValidationError
from nodeloom.core.graph import Graph, as_graph
from nodeloom.core.graph_parts import InputRef, Link

if TYPE_CHECKING:
    from nodeloom.core.catalog import NodeCatalog
    from nodeloom.core.issues import ValidationIssue

GRAPH_TYPE_PREFIX = "graph:"
#: separates the id of a graph node from the ids of its inner nodes
PATH_SEPARATOR = "/"
#: the longest path id of an inner node (what the API's tables hold)
MAX_PATH_LENGTH = 200


@runtime_checkable
class GraphSource(Protocol):
    """Where saved graphs are looked up by name and version."""

    def find_graph(self, name: str, version: str) -> Graph | None: ...

    def graph_versions(self, name: str) -> list[str]: ...


def graph_type(name: str, version: str | int) -> str:
    """The node type of a saved graph: `graph:NAME@VERSION`."""
    return f"{GRAPH_TYPE_PREFIX}{name}@{version}"


def parse_graph_type(node_type: str) -> tuple[str, str] | None:
    """(name, version) of a `graph:NAME@VERSION` type; None for any other type or a malformed one."""
    if not node_type.startswith(GRAPH_TYPE_PREFIX):
        return None
    name, at, version = node_type[len(GRAPH_TYPE_PREFIX):].rpartition("@")
    return (name, version) if at and name and version else None


class GraphLibrary:
    """Saved graphs of a registry: added ones, then the folders of `NAME@VERSION.json` files, then
    the parent library. Thread-safe; a file is read when it is asked for."""

    def __init__(self, folders: Iterable[str | Path] = (), parent: GraphSource | None = None) -> None:
        self._graphs: dict[tuple[str, str], Graph] = {}
        self._folders = [Path(folder) for folder in folders]
        self.parent = parent
        self._lock = threading.Lock()

    def add(self, name: str, graph: Graph | Mapping[str, Any] | str, version: str | int = 1) -> str:
        """Make `graph` usable as the node type `graph:NAME@VERSION` (returned)."""
        if not name or "@" in name or PATH_SEPARATOR in name:
            raise ValueError(f"a graph name must be non-empty, without '@' or '/': {name!r}")
        with self._lock:
            self._graphs[(name, str(version))] = as_graph(graph)
        return graph_type(name, version)

    def add_folder(self, folder: str | Path) -> None:
        with self._lock:
            self._folders.append(Path(folder))

    def find_graph(self, name: str, version: str) -> Graph | None:
        found = self._graphs.get((name, version))
        if found is not None:
            return found
        for folder in self._folders:
            path = folder / f"{name}@{version}.json"
            if PATH_SEPARATOR not in name and path.is_file():
                return Graph.loads(path.read_bytes())
        return self.parent.find_graph(name, version) if self.parent is not None else None

    def graph_versions(self, name: str) -> list[str]:
        versions = {version for (known, version) in self._graphs if known == name}
        for folder in self._folders:
            versions.update(path.name[len(name) + 1:-len(".json")] for path in folder.glob(f"{name}@*.json"))
        if self.parent is not None:
            versions.update(self.parent.graph_versions(name))
        return sorted(versions, key=lambda v: (len(v), v))


class GraphSources:
    """Several graph sources, asked in order."""

    def __init__(self, *sources: GraphSource | None) -> None:
        self.sources = [source for source in sources if source is not None]

    def find_graph(self, name: str, version: str) -> Graph | None:
        for source in self.sources:
            found = source.find_graph(name, version)
            if found is not None:
                return found
        return None

    def graph_versions(self, name: str) -> list[str]:
        return sorted({v for source in self.sources for v in source.graph_versions(name)}, key=lambda v: (len(v), v))


def graph_source(catalog: Any) -> GraphSource | None:
    """The graphs a catalog knows (its `graphs` attribute), if any."""
    found = getattr(catalog, "graphs", None)
    return found if isinstance(found, GraphSource) else None


class CatalogWithGraphs:
    """A node catalog that also knows more saved graphs (the API: the graphs of one project)."""

    def __init__(self, base: NodeCatalog, graphs: GraphSource) -> None:
        self.base = base
        self.graphs = GraphSources(graphs, graph_source(base))

    @property
    def revision(self) -> int:
        return self.base.revision

    def find(self, type_name: str) -> Any:
        return self.base.find(type_name)

    def suggest(self, type_name: str, limit: int = 3) -> list[str]:
        return self.base.suggest(type_name, limit)


def has_graph_nodes(graph: Graph) -> bool:
    return any(node_type.startswith(GRAPH_TYPE_PREFIX) for node_type in graph.node_types())


def expand_graph_nodes(graph: Graph, catalog: Any) -> tuple[Graph, list[ValidationIssue]]:
    """`graph` with every `graph:NAME@VERSION` node replaced by the saved graph's nodes (path ids),
    and the problems found; `graph` itself when it has no graph node."""
    if not has_graph_nodes(graph):
        return graph, []
    flat = Graph(graph.name, graph.description)
    flat.metadata = graph.metadata
    for declared in graph.inputs.values():
        flat._put_input(declared)
    flat._local.update(graph._local)
    inliner = _Inliner(flat, graph_source(catalog))
    resolve = inliner.inline(graph, "", None, ())
    for name, link in graph.outputs.items():
        target = resolve(link, None, name)
        if isinstance(target, Link):
            flat.output(name, target, optional=name in graph.optional_outputs)
    return flat, inliner.issues


def expanded(graph: Graph, catalog: Any) -> Graph:
    """`graph` with its graph nodes expanded; raises `GraphValidationError` naming each bad one."""
    flat, issues = expand_graph_nodes(graph, catalog)
    if issues:
        raise GraphValidationError(issues)
    return flat


#: translates a value of one (saved) graph into the flat graph's terms: (value, node id, port) -> value
Resolver = Callable[[Any, str | None, str | None], Any]


class _Inliner:
    """Builds the flat graph, graph node by graph node, and collects the problems found."""

    def __init__(self, flat: Graph, source: GraphSource | None) -> None:
        self.flat = flat
        self.source = source
        self.issues: list[ValidationIssue] = []

    def _issue(self, code: str, message: str, node: str | None, port: str | None = None,
               hint: str | None = None) -> None:
        from nodeloom.core.issues import ValidationIssue

        self.issues.append(ValidationIssue(code, message, node=node, port=port, hint=hint))

    def inline(self, graph: Graph, prefix: str, bindings: Mapping[str, Any] | None,
               stack: tuple[str, ...]) -> Resolver:
        """Add `graph`'s nodes to the flat graph under `prefix`; returns how to translate a value of
        `graph` (a link, a graph input reference, a literal) into the flat graph's terms."""
        outputs: dict[str, dict[str, Any] | None] = {}
        expanding: set[str] = set()

        def resolve(value: Any, node: str | None, port: str | None) -> Any:
            if isinstance(value, InputRef) and bindings is not None:
                if value.name not in bindings:
                    self._issue("dangling_link", f"refers to graph input {value.name!r}, which its graph does not "
                                "declare", prefix + node if node is not None else None, port)
                return bindings.get(value.name)
            if not isinstance(value, Link):
                return value
            source = graph.nodes.get(value.node)
            if source is None or not source.type.startswith(GRAPH_TYPE_PREFIX):
                return Link(prefix + value.node, value.output)
            exposed = expand(value.node)
            if exposed is None:
                return None  # the graph node's problem is reported on it
            if value.output not in exposed:
                self._issue("unknown_port", f"graph node {value.node!r} ({source.type}) has no output {value.output!r}",
                            prefix + node if node is not None else None, port,
                            f"outputs of {source.type}: {', '.join(sorted(exposed)) or '(none)'}")
                return None
            return exposed[value.output]

        def expand(node_id: str) -> dict[str, Any] | None:
            if node_id in outputs:
                return outputs[node_id]
            path = prefix + node_id
            if node_id in expanding:
                self._issue("cycle", f"graph node {node_id!r} depends on its own outputs", path,
                            hint="remove one of the links in the loop")
                return None
            expanding.add(node_id)
            try:
                outputs[node_id] = found = expand_node(node_id, path)
            finally:
                expanding.discard(node_id)
            return found

        def expand_node(node_id: str, path: str) -> dict[str, Any] | None:
            instance = graph.nodes[node_id]
            parsed = parse_graph_type(instance.type)
            if parsed is None:
                self._issue("unknown_graph", f"{instance.type!r} is not of the form graph:NAME@VERSION", path,
                            hint="for example graph:storyboard@2")
                return None
            name, version = parsed
            if name in stack:
                chain = " -> ".join((*stack, name))
                self._issue("graph_recursion", f"graph {name!r} contains itself: {chain}", path,
                            hint="a graph cannot use itself as a node, directly or through other graphs")
                return None
            try:
                inner = self.source.find_graph(name, version) if self.source is not None else None
            except (GraphValidationError, OSError) as error:
                self._issue("invalid_format", f"saved graph {name}@{version} cannot be read: {error}", path)
                return None
            if inner is None:
                versions = self.source.graph_versions(name) if self.source is not None else []
                what = f"version {version} of graph {name!r}" if versions else f"graph {name!r}"
                self._issue("unknown_graph", f"no {what} is saved", path,
                            hint=f"versions: {', '.join(versions)}" if versions else
                            "save it (POST /v1/graphs), add it to the registry (add_graph) or to NODELOOM_GRAPHS")
                return None
            problems = len(self.issues)
            for port in instance.inputs:
                if port not in inner.inputs:
                    self._issue("unknown_port", f"graph {name}@{version} has no input {port!r}", path, port,
                                f"inputs: {', '.join(sorted(inner.inputs)) or '(none)'}")
            for input_name, declared in inner.inputs.items():
                if input_name not in instance.inputs and declared.port.required:
                    self._issue("missing_input", f"graph {name}@{version} needs its input {input_name!r}", path,
                                input_name, f"type {declared.type.name}")
            if len(self.issues) > problems:
                return None
            inner_bindings = {input_name: declared.default for input_name, declared in inner.inputs.items()
                              if not declared.port.required}
            for port, value in instance.inputs.items():
                inner_bindings[port] = resolve(value, node_id, port)
            self.flat._local.update(inner._local)
            inner_resolve = self.inline(inner, path + PATH_SEPARATOR, inner_bindings, (*stack, name))
            return {out: inner_resolve(link, None, out) for out, link in inner.outputs.items()}

        for node_id, instance in graph.nodes.items():
            if instance.type.startswith(GRAPH_TYPE_PREFIX):
                expand(node_id)
                continue
            new_id = prefix + node_id
            if len(new_id) > MAX_PATH_LENGTH:
                self._issue("invalid_id", f"the path of inner node {new_id[:60]!r}... is longer than "
                            f"{MAX_PATH_LENGTH} characters", prefix.rstrip(PATH_SEPARATOR) or None,
                            hint="nest graph nodes less deeply or use shorter node ids")
                continue
            if new_id in self.flat.nodes:
                self._issue("invalid_id", f"node id {new_id!r} is also the path of a graph node's inner node",
                            new_id, hint="rename the node")
                continue
            inputs = {port: resolve(value, node_id, port) for port, value in instance.inputs.items()}
            self.flat._put_node(replace(instance, id=new_id, inputs=inputs))
        return resolve
