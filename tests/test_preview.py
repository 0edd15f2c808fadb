"""The run preview (`nodeloom run --plan`): it names the nodes a real run then takes from the
cache and the ones it runs, before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Journal
from test_api_server import ApiServer, _create_key_cli, greeting_graph

from nodeloom import load
from nodeloom.api.client import ApiClientError, Client
from nodeloom.core import Graph, InputRef, NodeState, RunConfig
from nodeloom.core.cache import ResultCache
from nodeloom.core.plan import prepare_run
from nodeloom.core.preview import preview_run
from nodeloom.executors import LocalExecutor

NODELOOM = Path(sys.executable).with_name("nodeloom")
HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "graph.json"


def two_branches() -> Graph:
    """a (input x) -> b;  c (input y) -> d;  e (unseeded random) and f (seeded random)."""
    graph = Graph("branches")
    graph.input("x", "Float")
    graph.input("y", "Float")
    a = graph.add("test.count", "a", label="a", value=InputRef("x"))
    c = graph.add("test.count", "c", label="c", value=InputRef("y"))
    graph.output("b", graph.add("test.count", "b", label="b", value=a["value"])["value"])
    graph.output("d", graph.add("test.count", "d", label="d", value=c["value"])["value"])
    graph.output("e", graph.add("test.random", "e", label="e")["value"])
    graph.output("f", graph.add("test.random", "f", label="f", seed=7)["value"])
    return graph


def _actions(executor: LocalExecutor, graph: Graph, inputs: dict[str, float]) -> dict[str, str]:
    plan, values = prepare_run(graph, executor.registry, inputs)
    return {preview.node: preview.action for preview in preview_run(plan, values, executor.cache)}


def _what_ran(executor: LocalExecutor, graph: Graph, inputs: dict[str, float]) -> dict[str, str]:
    result = executor.submit(graph, inputs, config=RunConfig()).result(timeout=30)
    return {node_id: "cached" if record.state is NodeState.CACHED else "run"
            for node_id, record in result.nodes.items()}


def test_the_preview_names_what_the_run_then_does(registry, tmp_path: Path, journal: Journal) -> None:
    executor = LocalExecutor(registry, cache=ResultCache())
    graph = two_branches()
    first = {"x": 1.0, "y": 2.0}
    assert set(_actions(executor, graph, first).values()) == {"run"}
    _what_ran(executor, graph, first)
    changed = {"x": 1.0, "y": 3.0}
    preview = _actions(executor, graph, changed)
    assert preview == {"a": "cached", "b": "cached", "c": "run", "d": "run", "e": "run", "f": "cached"}
    assert _what_ran(executor, graph, changed) == preview
    executor.close()


def test_the_preview_says_why_a_node_runs(registry) -> None:
    executor = LocalExecutor(registry, cache=ResultCache())
    plan, values = prepare_run(two_branches(), registry, {"x": 1.0, "y": 2.0})
    reasons = {preview.node: preview.reason for preview in preview_run(plan, values, executor.cache)}
    assert reasons == {"a": "not_cached", "b": "not_cached", "c": "not_cached", "d": "not_cached",
                       "e": "never_cached", "f": "not_cached"}
    off = {preview.node: preview.reason for preview in preview_run(plan, values, None)}
    assert off["a"] == "cache_off" and off["e"] == "never_cached"
    executor.close()


def test_run_plan_runs_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def plan() -> list[dict[str, str]]:
        done = subprocess.run([str(NODELOOM), "run", str(HELLO), "--set", "name=tea", "--plan", "--json",
                               "--out", str(out)], capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout)

    before = plan()
    assert [(row["node"], row["action"], row["queue"]) for row in before] == [
        ("greeting", "run", "nodeloom.cpu"), ("shout", "run", "nodeloom.cpu"), ("both", "run", "nodeloom.cpu")]
    assert not out.exists()  # nothing ran, nothing was written (and the next plan finds nothing cached)
    subprocess.run([str(NODELOOM), "run", str(HELLO), "--set", "name=tea", "-q", "--out", str(out)],
                   capture_output=True, timeout=120, check=True)
    assert [row["action"] for row in plan()] == ["cached", "cached", "cached"]
    text = subprocess.run([str(NODELOOM), "run", str(HELLO), "--set", "name=coffee", "--plan"],
                          capture_output=True, text=True, timeout=120, check=True).stdout
    assert "3 of 3 nodes would run" in text and "nothing was run" in text


def test_a_dry_run_through_the_api_starts_nothing_and_names_what_would_run(tmp_path: Path) -> None:
    server = ApiServer(f"sqlite:///{tmp_path / 'nodeloom.db'}", tmp_path)
    server.start()
    try:
        key = _create_key_cli(server, "shop", "run")
        with Client(server.url, api_key=key) as api:
            saved = api.create_graph(greeting_graph("preview-me"))
            before = api.preview(graph_id=saved.id, inputs={"name": "tea"})
            assert [(node.node, node.action, node.reason) for node in before.nodes] == [("hello", "run", "not_cached")]
            assert api.list_runs(graph_id=saved.id).total == 0  # nothing was started or stored
            api.wait(api.submit(graph_id=saved.id, inputs={"name": "tea"}).id, timeout=60)
            after = api.preview(graph_id=saved.id, inputs={"name": "tea"})
            assert (after.run, after.cached) == (0, 1)
            assert api.preview(graph_id=saved.id, inputs={"name": "coffee"}).run == 1
            uncached = api.preview(graph_id=saved.id, inputs={"name": "tea"}, use_cache=False)
            assert uncached.nodes[0].reason == "cache_off"
            with pytest.raises(ApiClientError) as bad:
                api.preview(graph_id=saved.id, inputs={"nmae": "tea"})
            assert bad.value.status == 422
            assert api.list_runs(graph_id=saved.id).total == 1
    finally:
        server.stop()


def test_every_node_of_the_marketing_graph_has_a_cache_key(registry) -> None:
    """The flagship job re-run with nothing changed is served whole from the cache (issue 15): no node
    of it may be uncacheable (a non-deterministic node without a seed would re-run, and all after it)."""
    graph = load(Path(__file__).resolve().parents[1] / "examples" / "marketing_video" / "graph.json")
    plan, values = prepare_run(graph, registry, {})
    never = [preview.node for preview in preview_run(plan, values, ResultCache()) if preview.cache_key is None]
    assert never == []
