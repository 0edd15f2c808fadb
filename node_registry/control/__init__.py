"""The control pack: nodes that run other nodes (`control.map` applies one to every item of a list,
`control.refine` repeats one while a critic rewrites its instruction) and branches
(`control.branch`, `control.switch`, and `control.first` to join them), and `control.approve`, which
waits for a person's decision."""

from nodeloom.node_registry.control.approve import control_approve
from nodeloom.node_registry.control.branch import control_branch, control_first, control_switch
from nodeloom.node_registry.control.map import control_map
from nodeloom.node_registry.control.refine import control_refine

__all__ = ["control_approve", "control_branch", "control_first", "control_map", "control_refine", "control_switch"]
