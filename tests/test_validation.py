"""Validation: every problem at once, as structured data, never an exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodeloom.core import Graph, Text, ValidationIssue, check_run_inputs, validate_graph
from nodeloom.core.validate import ISSUE_CODES
from nodeloom.node_registry import NodeRegistry


def valid_document() -> dict[str, Any]:
    return {
        "format_version": 1,
        "name": "demo",
        "inputs": {
            "name": {"type": "Text", "default": "world"},
            "level": {"type": "Int", "default": 2, "min": 1, "max": 5},
        },
        "nodes": {
            "greet": {"type": "text.template", "inputs": {"template": "Hi {{ name }}", "name": {"input": "name"}}},
            "size": {"type": "math.add", "inputs": {"a": {"input": "level"}, "b": 1}},
            "both": {
                "type": "text.join",
                "inputs": {"first": {"node": "greet", "output": "text"}, "separator": " "},
            },
        },
        "outputs": {"text": {"node": "both", "output": "text"}, "size": {"node": "size", "output": "result"}},
    }


def codes(issues: list[ValidationIssue]) -> list[str]:
    return [issue.code for issue in issues]


def test_valid_document_has_no_issues(registry: NodeRegistry) -> None:
    assert validate_graph(valid_document(), registry) == []
    assert validate_graph(json.dumps(valid_document()), registry) == []


def test_unknown_node_type_hints_the_nearest_names(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["greet"]["type"] = "text.templat"
    [issue] = validate_graph(doc, registry)
    assert (issue.code, issue.node) == ("unknown_node_type", "greet")
    assert issue.hint is not None and "'text.template'" in issue.hint


def test_missing_required_input(registry: NodeRegistry) -> None:
    doc = valid_document()
    del doc["nodes"]["greet"]["inputs"]["template"]
    [issue] = validate_graph(doc, registry)
    assert (issue.code, issue.node, issue.port, issue.expected) == ("missing_input", "greet", "template", "Text")


def test_unknown_input_port_suggests_the_nearest(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["size"]["inputs"]["bb"] = 2
    [issue] = validate_graph(doc, registry)
    assert (issue.code, issue.node, issue.port) == ("unknown_port", "size", "bb")
    assert issue.hint == "did you mean b?"


def test_link_to_unknown_output(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["both"]["inputs"]["first"]["output"] = "txt"
    [issue] = validate_graph(doc, registry)
    assert (issue.code, issue.node, issue.port) == ("unknown_port", "both", "first")
    assert "has no output 'txt'" in issue.message and issue.hint == "outputs of text.template: text"


def test_type_mismatch_names_expected_and_received(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["size"]["inputs"]["b"] = "one"
    doc["nodes"]["both"]["inputs"]["second"] = {"node": "size", "output": "result"}
    issues = validate_graph(doc, registry)
    assert codes(issues) == ["type_mismatch", "type_mismatch"]
    literal, link = issues
    assert (literal.node, literal.port, literal.expected, literal.received) == ("size", "b", "Float", "Text")
    assert (link.node, link.port, link.expected, link.received) == ("both", "second", "Text", "Float")


def test_values_out_of_range_or_choices(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["nap"] = {"type": "test.sleep", "inputs": {"label": "x", "seconds": 99}}
    [issue] = validate_graph(doc, registry)
    assert (issue.code, issue.node, issue.port) == ("out_of_range", "nap", "seconds")
    assert issue.hint == "allowed range [0, 30]"
    doc = valid_document()
    doc["inputs"]["mode"] = {"type": "Text", "default": "c", "choices": ["a", "b"]}
    [issue] = validate_graph(doc, registry)
    assert (issue.code, issue.port) == ("not_in_choices", "mode")


def test_dangling_links_to_nodes_and_graph_inputs(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["both"]["inputs"]["first"]["node"] = "gret"
    doc["nodes"]["size"]["inputs"]["a"] = {"input": "levle"}
    doc["outputs"]["ghost"] = {"node": "nowhere", "output": "x"}
    issues = validate_graph(doc, registry)
    assert sorted((i.code, i.node or "", i.port or "") for i in issues) == [
        ("dangling_link", "", "ghost"),
        ("dangling_link", "both", "first"),
        ("dangling_link", "size", "a"),
    ]
    by_port = {issue.port: issue for issue in issues}
    assert by_port["first"].hint == "nodes: greet"


def test_cycle_is_reported_with_its_path(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["a"] = {"type": "math.add", "inputs": {"a": {"node": "b", "output": "result"}}}
    doc["nodes"]["b"] = {"type": "math.add", "inputs": {"a": {"node": "c", "output": "result"}}}
    doc["nodes"]["c"] = {"type": "math.add", "inputs": {"a": {"node": "a", "output": "result"}}}
    doc["nodes"]["after"] = {"type": "math.add", "inputs": {"a": {"node": "c", "output": "result"}}}
    [issue] = validate_graph(doc, registry)
    assert issue.code == "cycle"
    loop = issue.message.split(": ")[1].split(" -> ")
    assert set(loop) == {"a", "b", "c"} and loop[0] == loop[-1] and len(loop) == 4


def test_self_loop_is_a_cycle(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["me"] = {"type": "math.add", "inputs": {"a": {"node": "me", "output": "result"}}}
    assert codes(validate_graph(doc, registry)) == ["cycle"]


def test_no_outputs(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["outputs"] = {}
    assert codes(validate_graph(doc, registry)) == ["no_outputs"]


def test_malformed_json_gives_line_and_column(registry: NodeRegistry) -> None:
    [issue] = validate_graph('{"nodes": {,}}', registry)
    assert issue.code == "malformed_json" and "line 1, column 12" in issue.message


def test_wrong_shapes_are_format_issues(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["greet"] = ["not", "an", "object"]
    doc["nodes"]["size"]["timeout"] = -1
    doc["outputs"]["bad"] = "both.text"
    doc["inputs"]["weird"] = {"type": "Txt"}
    doc["nodes"]["bad id!"] = {"type": "math.add", "inputs": {"a": 1}}
    issues = validate_graph(doc, registry)
    found = sorted((i.code, i.node or "", i.port or "") for i in issues)
    assert ("invalid_format", "greet", "") in found
    assert ("invalid_format", "size", "") in found
    assert ("invalid_format", "", "bad") in found
    assert ("invalid_type", "", "weird") in found
    assert ("invalid_id", "bad id!", "") in found


def test_every_problem_is_reported_at_once(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["nodes"]["greet"]["type"] = "nope.nothing"
    del doc["nodes"]["size"]["inputs"]["a"]
    doc["nodes"]["both"]["inputs"]["separator"] = 5
    doc["outputs"] = {}
    assert sorted(codes(validate_graph(doc, registry))) == [
        "missing_input", "no_outputs", "type_mismatch", "unknown_node_type",
    ]


def test_handles_cannot_be_literals(registry: NodeRegistry) -> None:
    from nodeloom.core import DiffusionPipe, node

    @node("demo.usepipe")
    def use(pipe: Any = None) -> str:
        return ""

    graph = Graph()
    graph.input("p", DiffusionPipe)
    graph.output("x", graph.add(use, pipe={"not": "a pipe"})["result"])
    assert validate_graph(graph, registry) == []  # Any accepts literals
    g2 = Graph.from_json({"nodes": {"t": {"type": "text.template", "inputs": {"template": "x"}}},
                          "outputs": {"o": {"node": "t", "output": "text"}}})
    assert validate_graph(g2, registry) == []


def test_run_inputs_are_checked_and_defaults_applied() -> None:
    g = Graph()
    g.input("name", Text)
    g.input("level", "Int", default=2, min=1, max=5)
    values, issues = check_run_inputs(g, {"level": 9, "other": 1})
    assert sorted((i.code, i.port) for i in issues) == [
        ("missing_input", "name"), ("out_of_range", "level"), ("unknown_input", "other"),
    ]
    values, issues = check_run_inputs(g, {"name": "x"})
    assert issues == [] and values == {"name": "x", "level": 2}


def test_issues_serialise_to_plain_dicts(registry: NodeRegistry) -> None:
    doc = valid_document()
    doc["outputs"] = {}
    [issue] = validate_graph(doc, registry)
    assert json.loads(json.dumps(issue.to_dict()))["code"] == "no_outputs"
    assert "[no_outputs]" in str(issue)


# -- property-based: validation never raises ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)

SPECIAL_KEYS = ["node", "output", "input", "literal", "type", "inputs", "nodes", "outputs", "format_version",
                "default", "min", "max", "choices", "pattern", "retry", "timeout", "schema"]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _mutate(doc: Any, data: st.DataObject) -> Any:
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(_paths(doc)))
        action = data.draw(st.sampled_from(["replace", "delete", "add_key", "rename_link"]))
        if not path:
            doc = data.draw(json_values) if action == "replace" else doc
            continue
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        if action == "replace":
            parent[key] = data.draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "add_key" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(SPECIAL_KEYS))] = data.draw(json_values)
        elif action == "rename_link":
            parent[key] = {"node": data.draw(st.sampled_from(["greet", "size", "both", "zz"])),
                           "output": data.draw(st.sampled_from(["text", "result", "nope"]))}
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_graphs_give_only_structured_issues(registry: NodeRegistry, data: st.DataObject) -> None:
    doc = _mutate(valid_document(), data)
    issues = validate_graph(doc, registry)
    assert all(isinstance(issue, ValidationIssue) and issue.code in ISSUE_CODES for issue in issues)
    if not isinstance(doc, str):  # a str source is read as JSON text, not as a JSON string value
        assert [i.code for i in validate_graph(json.dumps(doc), registry)] == [i.code for i in issues]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=json_values)
def test_random_json_gives_only_structured_issues(registry: NodeRegistry, doc: Any) -> None:
    issues = validate_graph(doc, registry)
    assert issues and all(issue.code in ISSUE_CODES for issue in issues)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60) | st.binary(max_size=60))
def test_random_text_gives_only_structured_issues(registry: NodeRegistry, text: str | bytes) -> None:
    issues = validate_graph(text, registry)
    assert issues and all(issue.code in ISSUE_CODES for issue in issues)


@pytest.mark.parametrize("code", sorted(ISSUE_CODES - {"unknown_input"}))
def test_every_issue_code_is_produced_by_some_document(registry: NodeRegistry, code: str) -> None:
    examples: dict[str, Any] = {
        "malformed_json": "{",
        "invalid_format": [],
        "unsupported_format_version": {"format_version": 7},
        "invalid_id": {"nodes": {"a b": {"type": "math.add"}}},
        "invalid_type": {"inputs": {"x": {"type": "Nope"}}},
        "unknown_node_type": {"nodes": {"a": {"type": "no.such"}}},
        "unknown_port": {"nodes": {"a": {"type": "math.add", "inputs": {"a": 1, "zz": 1}}}},
        "missing_input": {"nodes": {"a": {"type": "math.add"}}},
        "dangling_link": {"nodes": {"a": {"type": "math.add", "inputs": {"a": {"input": "x"}}}}},
        "type_mismatch": {"nodes": {"a": {"type": "math.add", "inputs": {"a": "x"}}}},
        "out_of_range": {"inputs": {"x": {"type": "Int", "default": 9, "max": 1}}},
        "not_in_choices": {"inputs": {"x": {"type": "Text", "default": "z", "choices": ["a"]}}},
        "pattern_mismatch": {"inputs": {"x": {"type": "Text", "default": "z", "pattern": "[0-9]+"}}},
        "cycle": {"nodes": {"a": {"type": "math.add", "inputs": {"a": {"node": "a", "output": "result"}}}}},
        "no_outputs": {"nodes": {}},
        "unknown_graph": {"nodes": {"a": {"type": "graph:nowhere@1"}}, "outputs": {"x": {"node": "a", "output": "y"}}},
        "graph_recursion": {"nodes": {"a": {"type": "graph:loop@1"}}, "outputs": {"x": {"node": "a", "output": "y"}}},
        "branch_dependent_output": {
            "nodes": {"b": {"type": "control.branch", "inputs": {"condition": True, "value": 1}}},
            "outputs": {"x": {"node": "b", "output": "true"}},
        },
    }
    doc = examples[code]
    source = doc if isinstance(doc, str) else json.dumps(doc)
    if code == "graph_recursion":
        registry = registry.extended()
        registry.add_graph("loop", examples[code], 1)
    assert code in codes(validate_graph(source, registry))


# -- a graph input bound to a JSON Schema (the form docs/graph-format.md shows) ---------

BRIEF_SCHEMA = {"type": "object", "required": ["audience"], "properties": {"audience": {"type": "string"}}}


def brief_document(**declaration: Any) -> dict[str, Any]:
    doc = valid_document()
    doc["inputs"]["brief"] = {"type": "Json", "schema": BRIEF_SCHEMA, **declaration}
    return doc


def test_a_json_input_keeps_its_schema_and_run_values_are_checked_against_it() -> None:
    graph = Graph.from_json(brief_document())
    assert graph.inputs["brief"].type.json_schema() == BRIEF_SCHEMA
    values, issues = check_run_inputs(graph, {"brief": {"audience": "tea lovers"}})
    assert (issues, values["brief"]) == ([], {"audience": "tea lovers"})
    _, [issue] = check_run_inputs(graph, {"brief": 42})
    assert (issue.code, issue.port, issue.expected, issue.received) == ("type_mismatch", "brief", "Json[schema]", "Int")
    assert issue.message == "graph input 'brief': does not match the Json[schema] schema: 42 is not of type 'object'"
    _, [issue] = check_run_inputs(graph, {"brief": {"audience": 3}})
    assert issue.message == ("graph input 'brief': does not match the Json[schema] schema at audience: "
                             "3 is not of type 'string'")


def test_a_json_input_default_is_checked_against_its_schema(registry: NodeRegistry) -> None:
    [issue] = validate_graph(brief_document(default={"tone": "warm"}), registry)
    assert (issue.code, issue.port) == ("type_mismatch", "brief")
    assert issue.message == "graph input 'brief': default does not match the Json[schema] schema: " \
                            "'audience' is a required property"


@pytest.mark.parametrize(
    ("declaration", "code", "message"),
    [
        ({"type": "Text", "schema": {"type": "object"}}, "invalid_format",
         "graph input 'brief': \"schema\" belongs to a Json type, not 'Text'"),
        ({"type": "Json", "schema": {"type": "no such type"}}, "invalid_type",
         "graph input 'brief': invalid JSON Schema: 'no such type' is not valid under any of the given schemas"),
        ({"type": "Json", "schema": []}, "invalid_type",
         "graph input 'brief': \"schema\" of a Json type must be a JSON object"),
        ({"type": "Json", "scheme": {"type": "object"}}, "invalid_format",
         "graph input 'brief': unknown keys ['scheme']; allowed: type, schema, item, default, description, "
         "min, max, choices, pattern"),
    ],
)
def test_a_schema_that_cannot_apply_is_reported_not_dropped(
    registry: NodeRegistry, declaration: dict[str, Any], code: str, message: str
) -> None:
    doc = valid_document()
    doc["inputs"]["brief"] = declaration
    [issue] = validate_graph(doc, registry)
    assert (issue.code, issue.port, issue.message) == (code, "brief", message)
