"""Drafting metrics: how close a drafted graph is to a reference graph.

Definitions (the full text, with worked examples, is docs/drafting-metrics.md):

- **format validity**: the draft validates against the catalog (`validate_graph` finds nothing);
- **pass rate**: the share of drafts that ran to completion, among drafts whose run was tried;
- **node P/R/F1**: node types matched as multisets; graph inputs are not nodes;
- **edge P/R/F1**: node-to-node links `(src type, src port) -> (dst type, dst port)`, matched
  through a one-to-one assignment of draft nodes to reference nodes of the same type, the
  assignment chosen to match as many edges as possible (found exactly by branch and bound).
- **loose edge F1** (reported beside the strict one, never instead): the same, except that the
  name of a `text.template` variable port (`{{ page }}`, `{{ review }}`: any name works) is
  not compared; every such port counts as the one port `{variable}`.

When one side has nothing to count (no nodes, or no edges), precision, recall and F1 are
1.0 if the other side has nothing either and 0.0 otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodeloom.core.graph import Graph, as_graph
from nodeloom.core.validate import NodeCatalog, read_graph_document, validate_graph

#: (source node id, source output, target node id, target input)
Edge = tuple[str, str, str, str]


@dataclass(frozen=True)
class DraftScore:
    """The scores of one draft against its reference. `ran` is None when the draft was not run."""

    valid: bool
    ran: bool | None
    node_precision: float
    node_recall: float
    node_f1: float
    edge_precision: float
    edge_recall: float
    edge_f1: float
    #: edge F1 with template variable names ignored (see `loose_shape`); None when not computed
    edge_f1_loose: float | None = None


@dataclass(frozen=True)
class _Shape:
    """What the metrics look at in a graph: node types by id and node-to-node edges."""

    types: dict[str, str]
    edges: list[Edge]


def _shape(graph: Graph) -> _Shape:
    types = {node_id: instance.type for node_id, instance in graph.nodes.items()}
    edges = [
        (link.node, link.output, node_id, port)
        for node_id, instance in graph.nodes.items()
        for port, link in instance.links()
        if link.node in types
    ]
    return _Shape(types, edges)


#: node types whose variadic input names are arbitrary, and the ports of theirs that are not variables
TEMPLATE_PORTS: dict[str, frozenset[str]] = {"text.template": frozenset({"template", "values"})}
LOOSE_PORT = "{variable}"


def loose_shape(shape: _Shape) -> _Shape:
    """The shape with every template variable port renamed to `LOOSE_PORT`."""
    edges = [
        (source, output, target, LOOSE_PORT if port not in TEMPLATE_PORTS.get(shape.types[target], {port})
         else port)
        for source, output, target, port in shape.edges
    ]
    return _Shape(shape.types, edges)


def _draft_graph(draft: Graph | Mapping[str, Any] | None) -> Graph | None:
    """The draft as a graph, keeping what can be read of a malformed document."""
    if draft is None or isinstance(draft, Graph):
        return draft
    graph, _ = read_graph_document(draft)
    return graph


def precision_recall_f1(matched: int, drafted: int, expected: int) -> tuple[float, float, float]:
    """P = matched/drafted, R = matched/expected, F1 their harmonic mean; empty sides as documented."""
    if drafted == 0 or expected == 0:
        value = 1.0 if drafted == expected else 0.0
        return value, value, value
    precision = matched / drafted
    recall = matched / expected
    f1 = 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def matched_node_count(draft: Mapping[str, str], reference: Mapping[str, str]) -> int:
    """Σ over node types of min(draft count, reference count)."""
    draft_types = Counter(draft.values())
    reference_types = Counter(reference.values())
    return sum(min(count, reference_types[name]) for name, count in draft_types.items())


def _signature(shape: _Shape, edge: Edge) -> tuple[str, str, str, str]:
    source, output, target, port = edge
    return (shape.types[source], output, shape.types[target], port)


#: search steps after which `matched_edge_count` stops and keeps the best assignment found
SEARCH_STEPS = 5_000


def matched_edge_count(
    draft: Graph | Mapping[str, Any], reference: Graph | Mapping[str, Any], *, max_steps: int = SEARCH_STEPS
) -> tuple[int, bool]:
    """How many draft edges the best node matching maps onto reference edges, and whether that is proven best.

    See `_edge_match`.
    """
    graph = _draft_graph(draft)
    drafted = _shape(graph) if graph is not None else _Shape({}, [])
    return _edge_match(drafted, _shape(as_graph(reference)), max_steps)


def _edge_match(draft: _Shape, reference: _Shape, max_steps: int) -> tuple[int, bool]:
    """The most draft edges that an assignment of draft nodes to same-type reference nodes maps onto reference edges.

    An assignment is one-to-one and only pairs nodes of the same type. A draft edge
    (a, p, b, q) is matched under it when a and b are both assigned and (σ(a), p, σ(b), q)
    is a reference edge. The search is depth first over the draft nodes that touch an edge
    whose typed signature occurs in the reference, most constrained first; a node is left
    unassigned only when its type has more such draft nodes than reference nodes (otherwise
    assigning it never loses an edge). A branch is cut when the edges matched so far plus the
    edges still open cannot beat the best found, and the search ends at the multiset ceiling
    (Σ over typed signatures of min(draft count, reference count)). It is exact unless it
    runs past `max_steps` assignments, which takes many nodes of one type wired alike
    (see docs/drafting-metrics.md); then the best assignment found is used.

    Returns the count and whether it is proven the maximum.
    """
    reference_edges = set(reference.edges)
    by_signature = Counter(_signature(reference, edge) for edge in reference.edges)
    drafted = Counter(_signature(draft, edge) for edge in draft.edges)
    ceiling = sum(min(count, by_signature[sig]) for sig, count in drafted.items())
    if ceiling == 0:
        return 0, True
    # only edges whose typed signature occurs in the reference can ever match
    useful = [edge for edge in draft.edges if by_signature[_signature(draft, edge)] > 0]
    touching: dict[str, list[Edge]] = {}
    for edge in useful:
        touching.setdefault(edge[0], []).append(edge)
        if edge[2] != edge[0]:
            touching.setdefault(edge[2], []).append(edge)
    candidates: dict[str, list[str]] = {
        node: sorted(ref for ref, kind in reference.types.items() if kind == draft.types[node]) for node in touching
    }
    searched_types = Counter(draft.types[node] for node in touching)
    available = Counter(reference.types.values())
    #: per type, how many searched draft nodes must stay unassigned
    spare = {kind: max(0, count - available[kind]) for kind, count in searched_types.items()}
    order = sorted(touching, key=lambda node: (len(candidates[node]), -len(touching[node]), node))
    # what each reference node offers: outgoing (port, target, port) and incoming (source, port, port) edges,
    # by node and by the other end's type
    offers_out: dict[str, set[tuple[str, str, str]]] = {}
    offers_in: dict[str, set[tuple[str, str, str]]] = {}
    for source, output, target, port in reference.edges:
        offers_out.setdefault(source, set()).update({(output, target, port), (output, "type:" + reference.types[target],
                                                                                    port)})
        offers_in.setdefault(target, set()).update({(source, output, port), ("type:" + reference.types[source],
                                                                             output, port)})
    #: draft node -> reference node, or None for "left unmatched"
    assigned: dict[str, str | None] = {}
    used: set[str] = set()
    best = 0
    steps = 0

    def matched_so_far() -> int:
        return sum(
            1
            for source, output, target, port in useful
            if assigned.get(source) is not None
            and assigned.get(target) is not None
            and (assigned[source], output, assigned[target], port) in reference_edges
        )

    def gain(node: str, choice: str) -> float:
        """At most how many of `node`'s open edges can match if it goes to `choice` (shared edges count half)."""
        total = 0.0
        outgoing, incoming = offers_out.get(choice, set()), offers_in.get(choice, set())
        for source, output, target, port in touching[node]:
            if source == target:
                total += (choice, output, choice, port) in reference_edges
                continue
            other = target if source == node else source
            if other in assigned:
                mapped = assigned[other]
                if mapped is None:
                    continue
                key, weight = mapped, 1.0
            else:
                key, weight = "type:" + draft.types[other], 0.5
            if source == node:
                total += weight * ((output, key, port) in outgoing)
            else:
                total += weight * ((key, output, port) in incoming)
        return total

    def ceiling_from(depth: int) -> float:
        """An upper bound on the edges the nodes order[depth:] can still add."""
        total = 0.0
        for node in order[depth:]:
            options = [gain(node, ref) for ref in candidates[node] if ref not in used]
            total += max(options, default=0.0)
        return total

    def search(depth: int, matched: int) -> bool:
        """Explore assignments of order[depth:]; True when the search must end (ceiling reached or out of steps)."""
        nonlocal best, steps
        steps += 1
        if matched > best:
            best = matched
        if best == ceiling or steps >= max_steps:
            return True
        if depth == len(order) or matched + ceiling_from(depth) < best + 1:
            return False
        node = order[depth]
        kind = draft.types[node]
        scored = sorted(((gain(node, ref), ref) for ref in candidates[node] if ref not in used), key=lambda x: -x[0])
        choices: list[str | None] = [ref for _, ref in scored]
        if spare[kind] > 0 or not choices:
            choices.append(None)
        for choice in choices:
            assigned[node] = choice
            if choice is None:
                spare[kind] -= 1
            else:
                used.add(choice)
            done = search(depth + 1, matched_so_far())
            del assigned[node]
            if choice is None:
                spare[kind] += 1
            else:
                used.discard(choice)
            if done:
                return True
        return False

    search(0, 0)
    return best, steps < max_steps or best == ceiling


def score_draft(
    draft: Graph | Mapping[str, Any] | None,
    reference: Graph | Mapping[str, Any],
    *,
    valid: bool,
    ran: bool | None = None,
) -> DraftScore:
    """Score a draft (None when the drafter returned no graph) against the reference graph.

    `valid` is the format validity (see `format_valid`); `ran` whether the draft ran to
    completion, None when it was not run.
    """
    expected = _shape(as_graph(reference))
    graph = _draft_graph(draft)
    drafted = _shape(graph) if graph is not None else _Shape({}, [])
    node_scores = precision_recall_f1(
        matched_node_count(drafted.types, expected.types), len(drafted.types), len(expected.types)
    )
    matched_edges, _ = _edge_match(drafted, expected, SEARCH_STEPS)
    edge_scores = precision_recall_f1(matched_edges, len(drafted.edges), len(expected.edges))
    loose_matched, _ = _edge_match(loose_shape(drafted), loose_shape(expected), SEARCH_STEPS)
    loose = precision_recall_f1(loose_matched, len(drafted.edges), len(expected.edges))[2]
    return DraftScore(valid, ran, *node_scores, *edge_scores, edge_f1_loose=loose)


def format_valid(draft: Graph | Mapping[str, Any] | None, catalog: NodeCatalog) -> bool:
    """Format validity: the draft exists and the core validator finds no problem in it."""
    return draft is not None and not validate_graph(draft, catalog)


def summarize(scores: Sequence[DraftScore]) -> dict[str, float]:
    """Aggregate scores: `count`, `validity` (share valid), `pass_rate`, and the mean of each P/R/F1.

    `pass_rate` is the share of drafts with `ran=True` among those whose `ran` is known, and
    `runs` how many those are; both are left out when no draft was run. An empty sequence
    gives `{"count": 0.0}`.
    """
    count = len(scores)
    if count == 0:
        return {"count": 0.0}
    summary: dict[str, float] = {"count": float(count), "validity": sum(s.valid for s in scores) / count}
    tried = [score.ran for score in scores if score.ran is not None]
    if tried:
        summary["runs"] = float(len(tried))
        summary["pass_rate"] = sum(tried) / len(tried)
    for field in ("node_precision", "node_recall", "node_f1", "edge_precision", "edge_recall", "edge_f1"):
        summary[field] = sum(getattr(score, field) for score in scores) / count
    return summary


__all__ = ["DraftScore", "format_valid", "loose_shape", "matched_edge_count", "precision_recall_f1", "score_draft",
           "summarize"]
