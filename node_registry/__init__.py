"""nodeloom.node_registry: the registry and the built-in node packs.

`default_registry()` holds the built-in packs and the third-party packs found through
the `nodeloom.nodes` entry-point group, and the saved graphs of the folders named in
`NODELOOM_GRAPHS` (files `NAME@VERSION.json`, usable as node types `graph:NAME@VERSION`);
it is built once per process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from nodeloom.node_registry.catalog import catalog_entry, ports_schema
from nodeloom.node_registry.registry import (
    ENTRY_POINT_GROUP,
    NodeRegistry,
    PluginProblem,
    definitions_in,
)

#: modules of the built-in packs, registered into every default registry
BUILTIN_PACKS = (
    "nodeloom.node_registry.text",
    "nodeloom.node_registry.json",
    "nodeloom.node_registry.math",
    "nodeloom.node_registry.llm",
    "nodeloom.node_registry.image",
    "nodeloom.node_registry.audio",
    "nodeloom.node_registry.video",
    "nodeloom.node_registry.http",
    "nodeloom.node_registry.webhook",
    "nodeloom.node_registry.file",
    "nodeloom.node_registry.control",
    "nodeloom.node_registry.comfy",
)

_default: NodeRegistry | None = None
_default_lock = threading.Lock()


def builtin_registry() -> NodeRegistry:
    """A new registry with the built-in packs only (no plugin discovery)."""
    registry = NodeRegistry()
    for module in BUILTIN_PACKS:
        registry.register_module(module)
    return registry


def registry_with(modules: Sequence[str]) -> NodeRegistry:
    """The default registry, extended with the nodes of `modules` (a server's or a worker's own packs)."""
    registry = default_registry()
    if not modules:
        return registry
    extended = registry.extended()
    for module in modules:
        extended.register_module(module)
    return extended


def default_registry() -> NodeRegistry:
    """The process-wide registry: built-in packs plus discovered plugins."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                registry = builtin_registry()
                registry.discover()
                for folder in os.environ.get("NODELOOM_GRAPHS", "").split(os.pathsep):
                    if folder:
                        registry.graphs.add_folder(folder)
                _default = registry
    return _default


__all__ = [
    "BUILTIN_PACKS",
    "ENTRY_POINT_GROUP",
    "NodeRegistry",
    "PluginProblem",
    "builtin_registry",
    "catalog_entry",
    "default_registry",
    "definitions_in",
    "ports_schema",
    "registry_with",
]
