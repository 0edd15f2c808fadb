"""The graph model: builder, JSON format, lossless round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeloom.core import FORMAT_VERSION, Float, Graph, GraphValidationError, InputRef, Json, Link, List, Text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def build_graph() -> Graph:
    g = Graph("demo", "a demo graph")
    topic = g.input("topic", Text, default="tea", description="what to write about")
    count = g.input("count", "Int", default=3, min=1, max=10)
    g.input("tags", List(Text), default=["a", "b"])
    g.input("extra", Json({"type": "object"}), default={"k": 1})
    text = g.add("text.template", "intro", template="About {{ topic }}", topic=topic, n=count)
    g.add("json.extract", "pick", data={"node": "x", "output": "y"}, path="node").configure(
        retry={"max_attempts": 2}, timeout=5, queue="custom", label="Pick one"
    )
    g.output("intro", text["text"])
    g.metadata["author"] = "tests"
    return g


def test_builder_records_links_and_graph_input_refs() -> None:
    g = build_graph()
    intro = g.nodes["intro"]
    assert intro.inputs["topic"] == InputRef("topic")
    assert g.outputs["intro"] == Link("intro", "text")
    assert g.inputs["count"].port.constraints[0].max == 10


def test_json_round_trip_is_lossless() -> None:
    g = build_graph()
    data = g.to_json()
    assert data["format_version"] == FORMAT_VERSION
    again = Graph.loads(json.dumps(data))
    assert again.to_json() == data
    assert again == g


def test_literal_object_shaped_like_a_link_is_escaped() -> None:
    g = build_graph()
    raw = g.to_json()["nodes"]["pick"]["inputs"]["data"]
    assert raw == {"literal": {"node": "x", "output": "y"}}
    again = Graph.from_json(g.to_json())
    assert again.nodes["pick"].inputs["data"] == {"node": "x", "output": "y"}


def test_node_options_survive_the_round_trip() -> None:
    pick = Graph.from_json(build_graph().to_json()).nodes["pick"]
    options = (dict(pick.retry or {}), pick.timeout, pick.queue, pick.label)
    assert options == ({"max_attempts": 2}, 5, "custom", "Pick one")


def test_graph_changes_only_through_methods_and_counts_revisions() -> None:
    g = build_graph()
    before = g.revision
    with pytest.raises(TypeError):
        g.nodes["new"] = g.nodes["intro"]  # type: ignore[index]
    with pytest.raises(TypeError):
        g.nodes["intro"].inputs["topic"] = "x"  # type: ignore[index]
    g.set_inputs("intro", template="Changed {{ topic }}")
    assert g.nodes["intro"].inputs["template"] == "Changed {{ topic }}"
    assert g.revision > before


def test_builder_refuses_a_whole_node_as_an_input() -> None:
    g = Graph()
    first = g.add("math.add", a=1)
    with pytest.raises(TypeError, match="pass one output"):
        g.add("math.add", a=first)


def test_duplicate_node_id_is_refused() -> None:
    g = Graph()
    g.add("math.add", "n", a=1)
    with pytest.raises(ValueError, match="already has a node 'n'"):
        g.add("math.add", "n", a=1)


def test_fresh_ids_are_unique_per_type() -> None:
    g = Graph()
    ids = [g.add("math.add", a=float(i)).id for i in range(3)]
    assert ids == ["add_1", "add_2", "add_3"]


def test_malformed_documents_raise_structured_errors() -> None:
    with pytest.raises(GraphValidationError) as caught:
        Graph.loads("{not json")
    assert caught.value.issues[0].code == "malformed_json"
    with pytest.raises(GraphValidationError) as caught:
        Graph.from_json({"format_version": 99, "nodes": {}})
    assert caught.value.issues[0].code == "unsupported_format_version"


def test_example_graphs_load() -> None:
    files = sorted(EXAMPLES.glob("*/graph.json"))
    assert files, "examples/*/graph.json should exist"
    for path in files:
        graph = Graph.loads(path.read_text())
        assert graph.outputs, path


def test_float_default_round_trip_keeps_type() -> None:
    g = Graph()
    g.input("x", Float, default=0.5)
    assert Graph.from_json(g.to_json()).inputs["x"].default == 0.5


def test_a_schema_bound_input_is_written_as_the_docs_show_and_read_back() -> None:
    schema = {"type": "object", "required": ["audience"]}
    g = Graph("brief")
    g.input("brief", Json(schema))
    g.input("briefs", List(Json(schema)), default=[])
    written = g.to_json()["inputs"]
    assert written["brief"] == {"type": "Json", "schema": schema}
    assert written["briefs"] == {"type": "List", "item": {"type": "Json", "schema": schema}, "default": []}
    again = Graph.loads(g.dumps())
    assert again.inputs["brief"].type == Json(schema) and again.inputs["briefs"].type == List(Json(schema))
    assert again == g
    # the older nested form, {"type": {"type": "Json", "schema": ...}}, still reads
    nested = Graph.from_json({"inputs": {"brief": {"type": {"type": "Json", "schema": schema}}}, "nodes": {},
                              "outputs": {}})
    assert nested.inputs["brief"].type == Json(schema)


def test_the_graph_input_example_of_the_format_docs_reads_with_its_schema() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "graph-format.md").read_text()
    block = text[text.index('"inputs": {\n  "product"'):]
    block = "{" + block[: block.index("\n}\n") + 2] + "}"
    graph = Graph.from_json({**json.loads(block), "nodes": {}, "outputs": {}})
    assert graph.inputs["brief"].type == Json({"type": "object", "required": ["audience"]})
    assert graph.inputs["scenes"].port.check_value(9) is not None


def test_node_types_follow_every_change_of_the_graph() -> None:
    graph = Graph()
    assert graph.node_types() == frozenset()
    first = graph.add("text.template", "a", template="hi")
    assert graph.node_types() == {"text.template"}
    graph.add("control.branch", "b", condition=True, value=first["text"])
    assert graph.node_types() == {"text.template", "control.branch"}
    graph.remove("b")
    assert graph.node_types() == {"text.template"}
    loaded = Graph.loads(graph.dumps())
    assert loaded.node_types() == {"text.template"}
