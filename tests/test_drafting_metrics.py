"""Drafting metrics on hand-made pairs whose scores were worked out by hand (arithmetic in comments)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodeloom.agents.metrics import DraftScore, format_valid, matched_edge_count, score_draft, summarize
from nodeloom.agents.program import compile_program
from nodeloom.core.graph import Graph, Link
from nodeloom.node_registry import builtin_registry

CATALOG = builtin_registry()


def program(source: str) -> Graph:
    return compile_program(source, CATALOG)


# product -> brief (text.template) -> story (llm.chat) -> card (image.title_card)
# nodes: {text.template, llm.chat, image.title_card}; edges: brief.text->story.prompt, story.text->card.text
REFERENCE = program(
    'product = input("product", "Text", default="Loom Lamp")\n'
    'brief = text.template(template="Write about {{ p }}", p=product)\n'
    "story = llm.chat(prompt=brief)\n"
    "card = image.title_card(text=story)\n"
    'output("card", card)\n'
)


def scores(score: DraftScore) -> tuple[float, ...]:
    return tuple(
        round(value, 6)
        for value in (score.node_precision, score.node_recall, score.node_f1,
                      score.edge_precision, score.edge_recall, score.edge_f1)
    )


def test_a_draft_equal_to_the_reference_scores_one_everywhere() -> None:
    assert scores(score_draft(REFERENCE, REFERENCE, valid=True)) == (1.0,) * 6


def test_extra_node_and_miswired_edges() -> None:
    # draft nodes: text.template, llm.chat, image.title_card, audio.speak
    #   matched nodes 3 -> P = 3/4 = 0.75, R = 3/3 = 1, F1 = 2*0.75*1/(0.75+1) = 1.5/1.75 = 6/7
    # draft edges: (template.text -> chat.prompt) matches; (template.text -> title_card.text) and
    #   (chat.text -> speak.text) do not -> P = 1/3, R = 1/2, F1 = 2*(1/3)*(1/2)/(1/3+1/2) = (1/3)/(5/6) = 2/5
    draft = program(
        'brief = text.template(template="Lamp")\n'
        "story = llm.chat(prompt=brief)\n"
        "card = image.title_card(text=brief)\n"
        "voice = audio.speak(text=story)\n"
        'output("card", card)\n'
    )
    assert scores(score_draft(draft, REFERENCE, valid=True)) == (0.75, 1.0, round(6 / 7, 6), round(1 / 3, 6), 0.5,
                                                                  0.4)


def test_node_types_are_matched_as_multisets() -> None:
    # draft: 3 x text.template; reference: 1 x text.template, 1 x llm.chat, 1 x image.title_card
    #   matched = min(3, 1) = 1 -> P = 1/3, R = 1/3, F1 = 1/3
    # draft edges: t1.text -> t2.a, t2.text -> t3.a: neither signature is in the reference -> P = 0/2, R = 0/2, F1 = 0
    draft = program(
        't1 = text.template(template="x")\n'
        't2 = text.template(template="{{ a }}", a=t1)\n'
        't3 = text.template(template="{{ a }}", a=t2)\n'
        'output("t", t3)\n'
    )
    third = round(1 / 3, 6)
    assert scores(score_draft(draft, REFERENCE, valid=True)) == (third, third, third, 0.0, 0.0, 0.0)


def test_graph_inputs_are_not_nodes_and_their_links_are_not_edges() -> None:
    # the same nodes with a literal where the reference has a graph input: nothing changes
    draft = program(
        'brief = text.template(template="Write about Loom Lamp")\n'
        "story = llm.chat(prompt=brief)\n"
        "card = image.title_card(text=story)\n"
        'output("card", card)\n'
    )
    assert scores(score_draft(draft, REFERENCE, valid=True)) == (1.0,) * 6


CHAIN = (
    '{a} = text.template(template="x")\n'
    "{b} = llm.chat(prompt={a})\n"
    '{c} = text.template(template="{{{{ x }}}}", x={b})\n'
    "{d} = llm.chat(prompt={c})\n"
    'output("o", {d})\n'
)


def test_edges_are_matched_through_the_node_matching_not_through_ids() -> None:
    # reference t1 -> c1 -> t2 -> c2; the draft is the same chain with t1<->t2 and c1<->c2 renamed.
    # by ids only 2 of 3 edges would line up (t2->c2 and t1->c1); the matching t2->t1, c2->c1, t1->t2, c1->c2
    # maps all 3 -> every score is 1.0
    reference = program(CHAIN.format(a="t1", b="c1", c="t2", d="c2"))
    draft = program(CHAIN.format(a="t2", b="c2", c="t1", d="c1"))
    assert scores(score_draft(draft, reference, valid=True)) == (1.0,) * 6


def test_a_wrong_port_breaks_only_its_edge() -> None:
    # as above, but the last link goes to llm.chat's `system` instead of `prompt`:
    # nodes 4/4 -> 1.0; edges matched 2 of 3 on both sides -> P = R = F1 = 2/3
    reference = program(CHAIN.format(a="t1", b="c1", c="t2", d="c2"))
    draft = program(CHAIN.format(a="t1", b="c1", c="t2", d="c2").replace("llm.chat(prompt=t2)",
                                                                          'llm.chat(prompt="p", system=t2)'))
    two_thirds = round(2 / 3, 6)
    assert scores(score_draft(draft, reference, valid=True)) == (1.0, 1.0, 1.0, two_thirds, two_thirds, two_thirds)


def test_one_reference_node_cannot_match_two_draft_nodes() -> None:
    # reference: t -> c (1 edge). draft: t1 -> c, t2 -> c2 (two chats, two templates, 2 edges of the same signature)
    # nodes: draft {template x2, chat x2}, reference {template, chat}: matched 2 -> P = 2/4, R = 2/2, F1 = 2/3
    # edges: only one draft edge can map onto the single reference edge -> P = 1/2, R = 1/1, F1 = 2/3
    reference = program('t = text.template(template="x")\nc = llm.chat(prompt=t)\noutput("o", c)\n')
    draft = program(
        't1 = text.template(template="x")\nc = llm.chat(prompt=t1)\n'
        't2 = text.template(template="y")\nc2 = llm.chat(prompt=t2)\noutput("o", c)\n'
    )
    two_thirds = round(2 / 3, 6)
    assert scores(score_draft(draft, reference, valid=True)) == (0.5, 1.0, two_thirds, 0.5, 1.0, two_thirds)


def test_no_draft_scores_zero() -> None:
    # no nodes and no edges drafted, the reference has 3 and 2: every score is 0
    assert scores(score_draft(None, REFERENCE, valid=False)) == (0.0,) * 6
    empty = Graph("empty")
    assert scores(score_draft(empty, REFERENCE, valid=False)) == (0.0,) * 6


def test_no_edges_on_either_side_scores_one_for_edges() -> None:
    # one node each, the same type: nodes 1/1; edges 0 drafted and 0 expected -> 1.0 by definition
    single = program('t = text.template(template="x")\noutput("t", t)\n')
    assert scores(score_draft(single, single, valid=True)) == (1.0,) * 6


def test_edges_drafted_where_the_reference_has_none_score_zero() -> None:
    # nodes: draft {template, chat}, reference {template}: P = 1/2, R = 1, F1 = 2/3; edges 1 drafted, 0 expected -> 0
    single = program('t = text.template(template="x")\noutput("t", t)\n')
    draft = program('t = text.template(template="x")\nc = llm.chat(prompt=t)\noutput("c", c)\n')
    assert scores(score_draft(draft, single, valid=True)) == (0.5, 1.0, round(2 / 3, 6), 0.0, 0.0, 0.0)


def test_both_empty_scores_one() -> None:
    assert scores(score_draft(Graph("a"), Graph("b"), valid=False)) == (1.0,) * 6


def test_a_malformed_draft_document_is_scored_on_what_can_be_read() -> None:
    # one node has no type and is dropped; the other two and their edge are read
    draft: dict[str, Any] = {
        "nodes": {
            "brief": {"type": "text.template", "inputs": {"template": "x"}},
            "story": {"type": "llm.chat", "inputs": {"prompt": {"node": "brief", "output": "text"}}},
            "broken": {"inputs": {}},
        },
        "outputs": {"o": {"node": "story", "output": "text"}},
    }
    # nodes 2 of 2 drafted match, 2 of 3 expected -> P = 1, R = 2/3, F1 = 0.8; edges 1/1 and 1/2 -> F1 = 2/3
    assert scores(score_draft(draft, REFERENCE.to_json(), valid=False)) == (1.0, round(2 / 3, 6), 0.8, 1.0, 0.5,
                                                                            round(2 / 3, 6))


def test_validity_and_run_status_are_kept() -> None:
    score = score_draft(REFERENCE, REFERENCE, valid=True, ran=False)
    assert (score.valid, score.ran) == (True, False)
    assert score_draft(REFERENCE, REFERENCE, valid=True).ran is None


def test_format_validity_is_the_validators_verdict() -> None:
    assert format_valid(REFERENCE, CATALOG)
    assert not format_valid(None, CATALOG)
    broken = program('c = llm.chat(temperature=7)\noutput("c", c)\n')
    assert not format_valid(broken, CATALOG)
    assert not format_valid({"nodes": "nope"}, CATALOG)


def test_summary_means_rates_and_counts() -> None:
    perfect = DraftScore(True, True, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    half = DraftScore(True, False, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25)
    nothing = DraftScore(False, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    summary = summarize([perfect, half, nothing])
    # validity 2/3; pass rate over the 2 drafts that were run: 1/2; node P mean (1 + 0.5 + 0)/3 = 0.5;
    # edge P mean (1 + 0.25 + 0)/3 = 1.25/3
    assert summary == pytest.approx({
        "count": 3.0, "validity": 2 / 3, "runs": 2.0, "pass_rate": 0.5,
        "node_precision": 0.5, "node_recall": 0.5, "node_f1": 0.5,
        "edge_precision": 1.25 / 3, "edge_recall": 1.25 / 3, "edge_f1": 1.25 / 3,
    })


def test_summary_of_unrun_and_of_no_drafts() -> None:
    summary = summarize([DraftScore(True, None, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)])
    assert "pass_rate" not in summary and "runs" not in summary
    assert summarize([]) == {"count": 0.0}


# -- the edge matching is the maximum: checked against trying every assignment ---------------


def brute_force_edges(draft: Graph, reference: Graph) -> int:
    """The maximum over every one-to-one same-type assignment (partial where a type has surplus)."""
    d_types = {n: i.type for n, i in draft.nodes.items()}
    r_types = {n: i.type for n, i in reference.nodes.items()}
    d_edges = [(link.node, link.output, n, p) for n, i in draft.nodes.items() for p, link in i.links()]
    r_edges = {(link.node, link.output, n, p) for n, i in reference.nodes.items() for p, link in i.links()}
    best = 0
    draft_ids = sorted(d_types)
    options = [[r for r in r_types if r_types[r] == d_types[d]] + [None] for d in draft_ids]
    for choice in itertools.product(*options):
        chosen = [c for c in choice if c is not None]
        if len(chosen) != len(set(chosen)):
            continue
        sigma = dict(zip(draft_ids, choice, strict=True))
        hits = sum((sigma[a], p, sigma[b], q) in r_edges for a, p, b, q in d_edges if sigma[a] and sigma[b])
        best = max(best, hits)
    return best


@st.composite
def small_graphs(draw: st.DrawFn) -> Graph:
    graph = Graph("g")
    count = draw(st.integers(1, 5))
    for index in range(count):
        inputs = {}
        for port in ("a", "b"):
            if draw(st.booleans()):
                inputs[port] = Link(f"n{draw(st.integers(0, count - 1))}", draw(st.sampled_from(["out", "alt"])))
        graph.add(draw(st.sampled_from(["k.one", "k.two"])), f"n{index}", **inputs)
    return graph


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_graphs(), small_graphs())
def test_the_edge_matching_finds_the_maximum(draft: Graph, reference: Graph) -> None:
    assert matched_edge_count(draft, reference) == (brute_force_edges(draft, reference), True)


@settings(max_examples=100, deadline=None)
@given(small_graphs(), small_graphs())
def test_precision_and_recall_swap_when_draft_and_reference_swap(draft: Graph, reference: Graph) -> None:
    forward = score_draft(draft, reference, valid=True)
    backward = score_draft(reference, draft, valid=True)
    assert (forward.node_precision, forward.edge_precision) == pytest.approx(
        (backward.node_recall, backward.edge_recall))


def test_a_relabelled_marketing_graph_matches_itself_exactly() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "marketing_video" / "graph.json"
    reference = Graph.loads(example.read_text())
    data = reference.to_json()
    renamed = {f"x_{node_id}": node for node_id, node in data["nodes"].items()}
    for node in renamed.values():
        for value in node["inputs"].values():
            if isinstance(value, dict) and set(value) == {"node", "output"}:
                value["node"] = f"x_{value['node']}"
    data["nodes"] = renamed
    data["outputs"] = {name: {"node": f"x_{link['node']}", "output": link["output"]}
                       for name, link in data["outputs"].items()}
    draft = Graph.from_json(data)
    # every node-to-node link of the example, counted from the document (27 in the rebuilt pipeline)
    links = sum(1 for node in json.loads(example.read_text())["nodes"].values() for value in node["inputs"].values()
                if isinstance(value, dict) and set(value) == {"node", "output"})
    assert links >= 20
    assert matched_edge_count(draft, reference) == (links, True)
    assert scores(score_draft(draft, reference, valid=True)) == (1.0,) * 6
