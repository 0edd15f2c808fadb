"""Branch validation: conditions that are not Bool, switch cases, and graph outputs that hang
on one branch alone unless marked optional. (Running branches: test_executor_conformance.py.)"""

from __future__ import annotations

import json

from nodeloom.core import Bool, Graph, Text
from nodeloom.core.branches import dependent_outputs
from nodeloom.core.validate import validate_graph
from nodeloom.node_registry import NodeRegistry


def _issues(graph: Graph, registry: NodeRegistry) -> list[tuple[str, str | None, str | None]]:
    return [(issue.code, issue.node, issue.port) for issue in validate_graph(graph, registry)]


def test_a_condition_that_is_not_bool_compatible_is_a_type_mismatch(registry: NodeRegistry) -> None:
    g = Graph()
    word = g.add("text.template", "word", template="yes")
    branch = g.add("control.branch", "branch", condition=word["text"], value=1)
    g.add("control.branch", "literal", condition="maybe", value=1)
    g.output("x", g.add("control.first", "join", a=branch["true"], b=branch["false"])["value"])
    issues = validate_graph(g, registry)
    assert {(i.code, i.node, i.port) for i in issues} == {
        ("type_mismatch", "branch", "condition"), ("type_mismatch", "literal", "condition")}
    assert all(i.expected == "Bool" for i in issues)


def test_an_output_on_one_branch_alone_names_the_choice_that_leaves_it_absent(registry: NodeRegistry) -> None:
    g = Graph()
    flag = g.input("flag", Bool)
    branch = g.add("control.branch", "branch", condition=flag, value="v")
    upper = g.add("text.template", "upper", template="{{ v | upper }}", v=branch["true"])
    g.output("upper", upper["text"])
    (issue,) = validate_graph(g, registry)
    assert (issue.code, issue.node, issue.port) == ("branch_dependent_output", "upper", "upper")
    assert "'branch' takes 'false'" in issue.message and "optional" in (issue.hint or "")
    g.output("upper", upper["text"], optional=True)
    assert validate_graph(g, registry) == []


def test_a_join_of_both_branches_is_always_present_and_nested_branches_are_followed(
    registry: NodeRegistry,
) -> None:
    g = Graph()
    flag = g.input("flag", Bool)
    inner_flag = g.input("inner", Bool)
    outer = g.add("control.branch", "outer", condition=flag, value="v")
    inner = g.add("control.branch", "inner", condition=inner_flag, value=outer["true"])
    g.output("both", g.add("control.first", "both", a=outer["true"], b=outer["false"])["value"])
    partial = g.add("control.first", "partial", a=inner["true"], b=outer["false"])
    g.output("partial", partial["value"])
    (issue,) = validate_graph(g, registry)
    assert (issue.code, issue.port) == ("branch_dependent_output", "partial")
    assert "'inner' takes 'false'" in issue.message and "'outer' takes 'true'" in issue.message
    # the same finding as a mapping, for a drafter that marks such outputs optional
    assert dependent_outputs(g) == {"partial": ("partial", {"outer": "true", "inner": "false"})}
    g.output("partial", partial["value"], optional=True)
    assert dependent_outputs(g) == {}


def test_optional_outputs_round_trip_through_json(registry: NodeRegistry) -> None:
    g = Graph()
    text = g.input("text", Text)
    branch = g.add("control.branch", "branch", condition=True, value=text)
    g.output("kept", branch["true"], optional=True)
    data = json.loads(g.dumps())
    assert data["outputs"]["kept"] == {"node": "branch", "output": "true", "optional": True}
    again = Graph.loads(json.dumps(data))
    assert again.optional_outputs == {"kept"} and again == g
    assert validate_graph(json.dumps(data), registry) == []


def test_switch_cases_are_checked_and_a_link_past_the_cases_is_an_unknown_port(registry: NodeRegistry) -> None:
    g = Graph()
    key = g.input("key", Text)
    switch = g.add("control.switch", "switch", key=key, value=key, cases=["a", "b"])
    g.output("past", switch["case_2"], optional=True)
    g.add("control.switch", "many", key=key, value=1, cases=[str(n) for n in range(9)])
    g.add("control.switch", "twice", key=key, value=1, cases=["a", "a"])
    assert set(_issues(g, registry)) == {
        ("unknown_port", None, "past"), ("out_of_range", "many", "cases"), ("invalid_format", "twice", "cases")}
