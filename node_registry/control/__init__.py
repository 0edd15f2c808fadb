"""The control pack: nodes that run other nodes (`control.map` applies one to every item of a list)."""

from nodeloom.node_registry.control.map import control_map

__all__ = ["control_map"]
