"""Graphs as nodes: `graph:NAME@VERSION` from the registry, from a folder (NODELOOM_GRAPHS) and
through the SDK; expansion into path ids, nesting, and the validation errors of a graph node.
(Both executors: test_executor_conformance.py; the API's project graphs: test_api_server.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nodeloom.core import Graph, Text
from nodeloom.core.subgraphs import expand_graph_nodes
from nodeloom.core.validate import validate_graph
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry


def _caption() -> Graph:
    g = Graph("caption")
    topic = g.input("topic", Text)
    style = g.input("style", Text, default="plain")
    line = g.add("text.template", "line", template="{{ t }} ({{ s }})", t=topic, s=style)
    g.output("caption", line["text"])
    return g


def _using(node_type: str, **inputs: object) -> Graph:
    g = Graph("outer")
    used = g.add(node_type, "ad", **inputs)
    g.output("caption", used["caption"])
    return g


def test_nested_graph_nodes_expand_into_path_ids(registry: NodeRegistry, tmp_path: Path) -> None:
    library = registry.extended()
    library.add_graph("caption", _caption(), 1)
    board = Graph("board")
    subject = board.input("subject", Text)
    first = board.add("graph:caption@1", "first", topic=subject, style="bold")
    board.output("caption", board.add("graph:caption@1", "second", topic=first["caption"])["caption"])
    library.add_graph("board", board, "2")
    outer = Graph("outer")
    what = outer.input("what", Text)
    outer.output("caption", outer.add("graph:board@2", "ad", subject=what)["caption"])
    flat, issues = expand_graph_nodes(outer, library)
    assert issues == [] and set(flat.nodes) == {"ad/first/line", "ad/second/line"}
    assert flat.outputs["caption"].node == "ad/second/line"
    with LocalExecutor(library, artifacts=tmp_path) as executor:
        result = executor.run(outer, {"what": "tea"})
    assert result.outputs == {"caption": "tea (bold) (plain)"}
    assert set(result.nodes) == {"ad/first/line", "ad/second/line"}


def test_version_drift_and_recursion_are_errors_naming_the_node(registry: NodeRegistry) -> None:
    library = registry.extended()
    library.add_graph("caption", _caption(), 1)
    drifted = Graph("drifted")
    drifted.add("graph:caption@1", "old", topic="x", colour="red")
    drifted.add("graph:caption@1", "bare")
    drifted.add("graph:caption@4", "missing", topic="x")
    drifted.add("graph:nothing@1", "nowhere")
    drifted.output("gone", drifted.add("graph:caption@1", "fine", topic="x")["subtitle"])
    found = {(i.code, i.node, i.port) for i in validate_graph(drifted, library)}
    assert found == {("unknown_port", "old", "colour"), ("missing_input", "bare", "topic"),
                     ("unknown_graph", "missing", None), ("unknown_graph", "nowhere", None),
                     ("unknown_port", None, "gone")}
    ping = {"nodes": {"p": {"type": "graph:pong@1"}}, "outputs": {"o": {"node": "p", "output": "o"}}}
    pong = {"nodes": {"q": {"type": "graph:ping@1"}}, "outputs": {"o": {"node": "q", "output": "o"}}}
    library.add_graph("ping", ping, 1)
    library.add_graph("pong", pong, 1)
    (issue,) = validate_graph(json.dumps(ping), library)
    assert (issue.code, issue.node) == ("graph_recursion", "p/q/p") and "pong -> ping -> pong" in issue.message


def test_graphs_from_a_folder_named_in_nodeloom_graphs_and_register_graph(tmp_path: Path) -> None:
    folder = tmp_path / "graphs"
    folder.mkdir()
    (folder / "caption@3.json").write_text(_caption().dumps())
    script = (
        "import nodeloom\n"
        "from nodeloom.core import Graph\n"
        "outer = Graph.loads(open('outer.json').read())\n"
        "print(nodeloom.run(outer, {}, ).outputs['caption'])\n"
        "inline = Graph('inline'); inline.output('x', inline.add('graph:caption@3', 'c', topic='b')['caption'])\n"
        "print(nodeloom.register_graph('wrapped', inline, 1))\n"
        "again = Graph('again'); again.output('x', again.add('graph:wrapped@1', 'w')['x'])\n"
        "print(nodeloom.run(again).outputs['x'])\n"
    )
    (tmp_path / "outer.json").write_text(_using("graph:caption@3", topic="tea").dumps())
    env = {**os.environ, "NODELOOM_GRAPHS": str(folder), "NODELOOM_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.splitlines() == ["tea (plain)", "graph:wrapped@1", "b (plain)"]
