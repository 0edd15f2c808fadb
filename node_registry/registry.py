"""The node registry: register, look up, search, discover plugins, export the catalog."""

from __future__ import annotations

import difflib
import importlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from nodeloom.core.errors import NodeDefinitionError, UnknownNodeTypeError
from nodeloom.core.spec import NodeDefinition, NodeSpec, definition_of
from nodeloom.core.subgraphs import GraphLibrary

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "nodeloom.nodes"
CATALOG_FORMAT_VERSION = 1
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A node pack that could not be loaded; the registry keeps working without it."""

    entry_point: str
    target: str
    message: str


def definitions_in(source: Any) -> list[NodeDefinition]:
    """The node definitions in a module (its `@node` objects), an iterable of them, or one."""
    found = definition_of(source)
    if found is not None:
        return [found]
    if isinstance(source, ModuleType):
        return [d for value in vars(source).values() if (d := definition_of(value)) is not None]
    if isinstance(source, Iterable) and not isinstance(source, str | bytes):
        collected: list[NodeDefinition] = []
        for item in source:
            collected.extend(definitions_in(item))
        return collected
    raise NodeDefinitionError(f"{source!r} is not a node, a module of nodes, or a list of nodes")


class NodeRegistry:
    """Node definitions by type name. `extended()` makes a child that falls back to its parent."""

    def __init__(self, nodes: Iterable[Any] = (), *, parent: NodeRegistry | None = None) -> None:
        self._definitions: dict[str, NodeDefinition] = {}
        self._own_revision = 0
        self.parent = parent
        #: saved graphs usable as node types `graph:NAME@VERSION` (falls back to the parent's)
        self.graphs: GraphLibrary = GraphLibrary(parent=parent.graphs if parent is not None else None)
        self.plugin_problems: list[PluginProblem] = []
        for definition in definitions_in(list(nodes)):
            self.register(definition)

    # -- registering ---------------------------------------------------------------
    def register(self, obj: Any, *, replace: bool = False) -> NodeDefinition:
        """Add a `@node` function or class (or a `NodeDefinition`). Duplicates are refused."""
        definition = definition_of(obj)
        if definition is None:
            raise NodeDefinitionError(f"{obj!r} is not a node: decorate it with @node")
        name = definition.spec.type
        existing = self.find(name)
        if existing is not None and existing is not definition and not replace:
            raise NodeDefinitionError(
                f"node type {name!r} is already registered (by {existing.func.__module__})"
            )
        self._definitions[name] = definition
        self._own_revision += 1
        return definition

    def add_graph(self, name: str, graph: Any, version: str | int = 1) -> str:
        """Make a graph (a `Graph`, its JSON or JSON text) usable as the node type
        `graph:NAME@VERSION`, which is returned; its ports are the graph's inputs and outputs."""
        return self.graphs.add(name, graph, version)

    @property
    def revision(self) -> int:
        """Counts registrations here and in the parent; plans made before a change are redone."""
        return self._own_revision + (self.parent.revision if self.parent is not None else 0)

    def register_module(self, module: ModuleType | str) -> list[NodeDefinition]:
        loaded = importlib.import_module(module) if isinstance(module, str) else module
        return [self.register(d) for d in definitions_in(loaded)]

    def discover(self, group: str = ENTRY_POINT_GROUP) -> list[PluginProblem]:
        """Load third-party node packs from the entry points of `group`.

        An entry point may name a module (its `@node` objects are registered), a list of
        nodes, or a function `register(registry)`. A pack that fails to load is recorded in
        `plugin_problems` and skipped, never fatal.
        """
        problems: list[PluginProblem] = []
        for entry in entry_points(group=group):
            try:
                target = entry.load()
                if callable(target) and definition_of(target) is None and not isinstance(target, ModuleType):
                    target(self)
                else:
                    for definition in definitions_in(target):
                        self.register(definition)
            except Exception as error:
                problem = PluginProblem(entry.name, entry.value, f"{type(error).__name__}: {error}")
                log.warning("node pack %s (%s) was not loaded: %s", entry.name, entry.value, problem.message)
                problems.append(problem)
        self.plugin_problems.extend(problems)
        return problems

    def extended(self, nodes: Iterable[Any] = ()) -> NodeRegistry:
        """A child registry with extra nodes; lookups fall back to this one."""
        return NodeRegistry(nodes, parent=self)

    # -- looking up ----------------------------------------------------------------
    def find(self, type_name: str) -> NodeDefinition | None:
        found = self._definitions.get(type_name)
        if found is None and self.parent is not None:
            return self.parent.find(type_name)
        return found

    def get(self, type_name: str) -> NodeDefinition:
        found = self.find(type_name)
        if found is None:
            raise UnknownNodeTypeError(type_name, self.suggest(type_name))
        return found

    def suggest(self, type_name: str, limit: int = 3) -> list[str]:
        """The registered type names nearest to `type_name` (for 'did you mean')."""
        names = self.types()
        close = difflib.get_close_matches(type_name, names, n=limit, cutoff=0.5)
        if close:
            return close
        # same last word in another pack ("text.templat" vs "tmpl.template")
        tail = type_name.rsplit(".", 1)[-1]
        return difflib.get_close_matches(tail, names, n=limit, cutoff=0.3)[:limit]

    def types(self) -> list[str]:
        names = set(self._definitions)
        if self.parent is not None:
            names.update(self.parent.types())
        return sorted(names)

    def __iter__(self) -> Iterator[NodeDefinition]:
        for name in self.types():
            definition = self.find(name)
            assert definition is not None
            yield definition

    def __len__(self) -> int:
        return len(self.types())

    def __contains__(self, type_name: object) -> bool:
        return isinstance(type_name, str) and self.find(type_name) is not None

    def search(self, query: str, limit: int = 10) -> list[NodeSpec]:
        """Node specs ranked by how well their name, category, description and ports match."""
        words = _WORD.findall(query.lower())
        if not words:
            return []
        scored: list[tuple[float, str, NodeSpec]] = []
        for definition in self:
            spec = definition.spec
            fields = (
                (3.0, _WORD.findall(spec.type.lower())),
                (2.0, _WORD.findall(spec.category.lower())),
                (1.0, _WORD.findall(spec.description.lower())),
                (0.5, [w for p in (*spec.inputs, *spec.outputs) for w in _WORD.findall(p.name.lower())]),
            )
            score = 0.0
            for word in words:
                score += max(
                    (
                        weight * (1.0 if token == word else 0.6)
                        for weight, tokens in fields
                        for token in tokens
                        if token == word or (len(word) >= 3 and token.startswith(word))
                    ),
                    default=0.0,
                )
            if score > 0:
                scored.append((score, spec.type, spec))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [spec for _, _, spec in scored[:limit]]

    def catalog(self) -> dict[str, Any]:
        """The catalog: every node with one JSON Schema for its inputs and one for its outputs."""
        from nodeloom.node_registry.catalog import catalog_entry

        return {
            "format_version": CATALOG_FORMAT_VERSION,
            "nodes": [catalog_entry(definition.spec) for definition in self],
        }
