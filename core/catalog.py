"""The node catalog protocol: what validation, planning and nodes that run other nodes need of a registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nodeloom.core.spec import NodeDefinition


class NodeCatalog(Protocol):
    """Node types by name: `nodeloom.node_registry.NodeRegistry` is one."""

    #: increases whenever a node type is added or replaced
    @property
    def revision(self) -> int: ...

    def find(self, type_name: str) -> NodeDefinition | None: ...

    def suggest(self, type_name: str, limit: int = 3) -> list[str]: ...
