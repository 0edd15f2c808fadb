"""Branches: outputs a node may leave untaken, what that skips, and the check that a graph's
outputs do not hang on one branch alone.

A conditional node (`control.branch`, `control.switch`) returns `NOT_TAKEN` for the outputs
it does not take. Executors drop those outputs and skip, for the reason `branch`, every node
that links to one of them, and so on downstream; a skip is not a failure and the run still
succeeds. `control.first` is the join: it runs when its upstream nodes have settled and at
least one of its linked inputs arrived, and is skipped only when none did.

`branch_issues` is the validation side: a graph output that is absent for some choice of
the branches is an error unless the output is marked optional (`"optional": true` in the
graph JSON, `Graph.output(..., optional=True)`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from nodeloom.core.graph import Graph
    from nodeloom.core.graph_parts import Link
    from nodeloom.core.issues import ValidationIssue


class NotTaken(Enum):
    """The value of an output a conditional node did not take: `NOT_TAKEN`, its only member."""

    NOT_TAKEN = "not_taken"

    def __repr__(self) -> str:
        return "NOT_TAKEN"


NOT_TAKEN: Final = NotTaken.NOT_TAKEN

#: node types whose outputs may be left untaken
CONDITIONAL_TYPES: Final = frozenset({"control.branch", "control.switch"})
#: node types that run when any one of their linked inputs arrived
FIRST_TYPES: Final = frozenset({"control.first"})
#: the node types a plan marks (conditional or join); a graph with none of them is planned without looking
CONTROL_TYPES: Final = CONDITIONAL_TYPES | FIRST_TYPES
#: how many outputs `control.switch` has besides `default`
SWITCH_CASES: Final = 8
#: the cache key recorded for a skipped node: a join after it is keyed by which input did not arrive
SKIPPED_KEY: Final = "skipped"
#: at most this many combinations of branch choices are checked per graph
MAX_COMBINATIONS: Final = 4096


def switch_outputs(count: int) -> list[str]:
    """The output names of a switch with `count` cases: `case_0` ... and `default`."""
    return [f"case_{index}" for index in range(count)] + ["default"]


def split_taken(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """A conditional node's outputs without the untaken ones, and the names of those."""
    gone = frozenset(name for name, value in outputs.items() if value is NOT_TAKEN)
    if not gone:
        return dict(outputs), gone
    return {name: value for name, value in outputs.items() if name not in gone}, gone


def untaken(declared: Iterable[str], produced: Mapping[str, Any]) -> frozenset[str]:
    """The declared outputs that `produced` (a stored or cached result) lacks."""
    return frozenset(name for name in declared if name not in produced)


# -- validation ----------------------------------------------------------------------


def _choices(graph: Graph, node_id: str) -> list[str]:
    instance = graph.nodes[node_id]
    if instance.type == "control.branch":
        return ["true", "false"]
    cases = instance.inputs.get("cases")
    count = len(cases) if isinstance(cases, list) and 0 < len(cases) <= SWITCH_CASES else SWITCH_CASES
    return switch_outputs(count)


def _order(graph: Graph) -> list[str]:
    waiting = {node_id: {link.node for _, link in n.links()} for node_id, n in graph.nodes.items()}
    ordered: list[str] = []
    ready = [node_id for node_id, parents in waiting.items() if not parents]
    children: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
    for node_id, parents in waiting.items():
        for parent in parents:
            children[parent].append(node_id)
    while ready:
        node_id = ready.pop()
        ordered.append(node_id)
        for child in children[node_id]:
            waiting[child].discard(node_id)
            if not waiting[child]:
                ready.append(child)
    return ordered


def _ancestors(graph: Graph, node_id: str) -> set[str]:
    seen: set[str] = set()
    work = [node_id]
    while work:
        current = work.pop()
        if current in seen:
            continue
        seen.add(current)
        work.extend(link.node for _, link in graph.nodes[current].links())
    return seen


def _present(graph: Graph, order: list[str], choice: Mapping[str, str]) -> dict[str, set[str] | None]:
    """Per node: the outputs that carry a value under `choice` (None: every output), or
    absent from the result when the node is skipped."""
    present: dict[str, set[str] | None] = {}
    for node_id in order:
        instance = graph.nodes[node_id]
        arrived = [_carries(present, link) for _, link in instance.links()]
        runs = (any(arrived) or not arrived) if instance.type in FIRST_TYPES else all(arrived)
        if runs:
            present[node_id] = {choice[node_id]} if node_id in choice else None
    return present


def _carries(present: Mapping[str, set[str] | None], link: Link) -> bool:
    if link.node not in present:
        return False
    outputs = present[link.node]
    return outputs is None or link.output in outputs


def branch_issues(graph: Graph, *, check_outputs: bool = True) -> list[ValidationIssue]:
    """Problems with branches: a link to a switch case the switch does not have (`unknown_port`)
    and, with `check_outputs` (for a graph otherwise valid), a graph output not marked optional
    that some choice of the branches leaves absent (`branch_dependent_output`)."""
    from nodeloom.core.issues import ValidationIssue

    if CONDITIONAL_TYPES.isdisjoint(graph.node_types()):
        return []
    issues: list[ValidationIssue] = []
    uses: list[tuple[str | None, str, Link]] = [
        (node_id, port, link) for node_id, n in graph.nodes.items() for port, link in n.links()
    ]
    uses += [(None, name, link) for name, link in graph.outputs.items()]
    for node_id, port, link in uses:
        source = graph.nodes.get(link.node)
        if source is not None and source.type == "control.switch" and link.output not in _choices(graph, link.node):
            issues.append(ValidationIssue(
                "unknown_port", f"switch {link.node!r} has no output {link.output!r} for its cases",
                node=node_id, port=port, hint=f"outputs: {', '.join(_choices(graph, link.node))}",
            ))
    if issues or not check_outputs:
        return issues
    for name, (node_id, choice) in dependent_outputs(graph).items():
        taken = ", ".join(f"{decider!r} takes {option!r}" for decider, option in choice.items())
        output = graph.outputs[name].output
        issues.append(ValidationIssue(
            "branch_dependent_output", f"graph output {name!r} is absent when {taken}", node=node_id, port=name,
            hint=f'mark it optional ({{"node": "{node_id}", "output": "{output}", "optional": true}}) '
                 "or join the branches with control.first",
        ))
    return issues


def dependent_outputs(graph: Graph) -> dict[str, tuple[str, dict[str, str]]]:
    """The graph outputs, not marked optional, that some choice of the branches leaves absent: per output name,
    the node it reads and the first such choice (conditional node id -> output taken). Empty for a graph with a
    loop (reported as `cycle`)."""
    conditional = [node_id for node_id, n in graph.nodes.items() if n.type in CONDITIONAL_TYPES]
    order = _order(graph)
    if not conditional or len(order) != len(graph.nodes):
        return {}
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for name, link in graph.outputs.items():
        if name in graph.optional_outputs or link.node not in graph.nodes:
            continue
        upstream = _ancestors(graph, link.node)
        deciding = [node_id for node_id in conditional if node_id in upstream]
        combinations = itertools.islice(
            itertools.product(*(_choices(graph, node_id) for node_id in deciding)), MAX_COMBINATIONS
        )
        for picked in combinations:
            choice = dict(zip(deciding, picked, strict=True))
            present = _present(graph, [n for n in order if n in upstream], choice)
            if not _carries(present, link):
                found[name] = (link.node, choice)
                break
    return found
