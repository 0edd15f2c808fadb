"""The text pack: templates (sandboxed), joining, JSON extraction."""

from __future__ import annotations

import pytest

from nodeloom.core import Graph, NodeExecutionError
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry.json import json_extract, json_parse
from nodeloom.node_registry.text import text_join, text_template


def test_template_renders_values_and_extra_inputs() -> None:
    out = text_template.invoke("t", {"template": "{{ a }}-{{ b.c }}", "values": {"b": {"c": 2}}, "a": "x"})
    assert out == {"text": "x-2"}


def test_template_names_the_missing_variable_and_the_given_ones() -> None:
    with pytest.raises(NodeExecutionError, match=r"'missing' is undefined; variables given: a"):
        text_template.invoke("t", {"template": "{{ missing }}", "a": 1})


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ x.__class__.__base__ }}",
    ],
)
def test_template_sandbox_refuses_reaching_into_python(template: str) -> None:
    with pytest.raises(NodeExecutionError, match="template error"):
        text_template.invoke("t", {"template": template, "x": 1})


def test_join_joins_items_then_extra_inputs_in_order() -> None:
    assert text_join.invoke("j", {"items": ["a", "b"], "separator": "+", "z": "c", "y": "d"}) == {"text": "a+b+c+d"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [("scenes.1.caption", "two"), ("/scenes/0/caption", "one"), ("title", "T"), ("", {"title": "T"})],
)
def test_extract_reads_dotted_paths_and_json_pointers(path: str, expected: object) -> None:
    data = {"title": "T", "scenes": [{"caption": "one"}, {"caption": "two"}]}
    if path == "":
        data = {"title": "T"}
    assert json_extract.invoke("e", {"data": data, "path": path}) == {"value": expected}


def test_extract_explains_a_missing_path_or_returns_null_when_allowed() -> None:
    data = {"scenes": [{"caption": "one"}]}
    with pytest.raises(NodeExecutionError, match=r"'5' is not an index of the list at 'scenes.5' \(length 1\)"):
        json_extract.invoke("e", {"data": data, "path": "scenes.5"})
    with pytest.raises(NodeExecutionError, match="keys there: scenes"):
        json_extract.invoke("e", {"data": data, "path": "title"})
    assert json_extract.invoke("e", {"data": data, "path": "title", "missing_ok": True}) == {"value": None}


def test_parse_reports_where_the_json_breaks() -> None:
    assert json_parse.invoke("p", {"text": '{"a": [1]}'}) == {"data": {"a": [1]}}
    with pytest.raises(NodeExecutionError, match="line 1, column 7"):
        json_parse.invoke("p", {"text": '{"a": ]'})


def test_text_nodes_compose_in_a_graph(executor: LocalExecutor) -> None:
    g = Graph()
    data = g.add("json.parse", text='{"product": "Loom", "tone": "warm"}')
    product = g.add("json.extract", data=data["data"], path="product")
    line = g.add("text.template", template="Meet {{ p }}.", p=product["value"])
    g.output("line", line["text"])
    assert executor.run(g).outputs == {"line": "Meet Loom."}


def test_object_builds_json_with_artifact_references(executor: LocalExecutor) -> None:
    from nodeloom.node_registry.json import json_object

    ref = executor.artifacts.put_bytes(b"\x89PNG fake", "image/png")
    out = json_object.invoke("o", {"title": "Ad", "count": 2, "poster": ref})
    assert out == {"data": {"title": "Ad", "count": 2, "poster": ref.to_json()}}
