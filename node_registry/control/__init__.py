"""The control pack: nodes that run other nodes (`control.map` applies one to every item of a list,
`control.refine` repeats one while a critic rewrites its instruction)."""

from nodeloom.node_registry.control.map import control_map
from nodeloom.node_registry.control.refine import control_refine

__all__ = ["control_map", "control_refine"]
