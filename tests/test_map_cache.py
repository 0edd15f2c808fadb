"""control.map caches item by item: an unchanged re-run runs no item, one changed item runs alone.

Executions are counted by the marker files `marker.mark` leaves (one per execution, whichever
process ran it), never by timing. The CLI tests run `nodeloom run` as separate processes
sharing one $NODELOOM_HOME (its disk cache); the Celery test uses a test-owned redis-server and
real worker processes (run it under the Redis lock, see HELPERS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from marker_nodes import FOLDER, MODULE, installed_pack_env, markers

from nodeloom.core import EventKind, Graph, NodeState, RunEvent
from nodeloom.core.cache import ResultCache
from nodeloom.core.context import RunConfig
from nodeloom.core.spec import node
from nodeloom.executors.local import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry

NODELOOM = Path(sys.executable).with_name("nodeloom")
ITEMS = [float(i) for i in range(10)]
CHANGED = [*ITEMS[:6], 60.0, *ITEMS[7:]]


@node("test.unrepeatable", deterministic=False, output="value")
def unrepeatable(folder: str, value: float) -> float:
    """Not deterministic and no seed: never cached."""
    Path(folder, f"loose.{os.getpid()}.{value}.{os.urandom(4).hex()}").touch()
    return value


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    found = builtin_registry()
    found.register_module(MODULE)
    found.register(unrepeatable)
    return found


def map_graph(folder: Path, target: str = "marker.mark") -> Graph:
    g = Graph("each item")
    items = g.input("items", "List[Float]")
    constants: dict[str, Any] = {"folder": str(folder)} | ({"label": "item"} if target == "marker.mark" else {})
    mapped = g.add("control.map", "each", node=target, items=items, item_input="value", inputs=constants)
    g.output("results", mapped["results"])
    return g


def progress(events: list[RunEvent]) -> list[str]:
    return [e.data["message"] for e in events if e.kind is EventKind.NODE_PROGRESS and e.node == "each"]


def test_a_rerun_takes_the_whole_map_from_the_cache(registry: NodeRegistry, tmp_path: Path) -> None:
    graph = map_graph(tmp_path)
    with LocalExecutor(registry, artifacts=tmp_path / "artifacts", cache=ResultCache()) as executor:
        first = executor.run(graph, {"items": ITEMS})
        again = executor.run(graph, {"items": ITEMS})
    assert first.outputs["results"] == again.outputs["results"] == ITEMS
    assert first.nodes["each"].state is NodeState.DONE and again.nodes["each"].state is NodeState.CACHED
    assert len(markers(tmp_path, "item")) == 10


def test_one_changed_item_runs_alone_and_progress_counts_the_cached_ones(
    registry: NodeRegistry, tmp_path: Path
) -> None:
    graph = map_graph(tmp_path)
    events: list[RunEvent] = []
    with LocalExecutor(registry, artifacts=tmp_path / "artifacts", cache=ResultCache()) as executor:
        executor.run(graph, {"items": ITEMS})
        changed = executor.run(graph, {"items": CHANGED}, on_event=events.append)
    assert changed.outputs["results"] == CHANGED and changed.nodes["each"].state is NodeState.DONE
    assert len(markers(tmp_path, "item")) == 11
    assert progress(events) == ["9 of 10 items done: 9 cached, 0 run", "10 of 10 items done: 9 cached, 1 run"]


def test_items_are_not_cached_when_the_run_is_not(registry: NodeRegistry, tmp_path: Path) -> None:
    graph = map_graph(tmp_path)
    with LocalExecutor(registry, artifacts=tmp_path / "artifacts", cache=ResultCache()) as executor:
        executor.run(graph, {"items": ITEMS[:3]})
        executor.run(graph, {"items": ITEMS[:3]}, config=RunConfig(cache=None))
    assert len(markers(tmp_path, "item")) == 6


def test_a_non_deterministic_target_is_never_cached(registry: NodeRegistry, tmp_path: Path) -> None:
    graph = map_graph(tmp_path, "test.unrepeatable")
    with LocalExecutor(registry, artifacts=tmp_path / "artifacts", cache=ResultCache()) as executor:
        first = executor.run(graph, {"items": ITEMS[:3]})
        again = executor.run(graph, {"items": ITEMS[:3]})
    assert again.nodes["each"].state is NodeState.DONE and again.outputs == first.outputs
    assert len(list(tmp_path.glob("loose.*"))) == 6


def _versioned(version: int) -> Any:
    @node("test.versioned", version=version, output="value")
    def versioned(folder: str, value: float) -> float:
        Path(folder, f"v{version}.{value}.{os.urandom(4).hex()}").touch()
        return value * version

    return versioned


def test_a_new_version_of_the_target_runs_the_map_again(tmp_path: Path) -> None:
    cache = ResultCache()
    graph = map_graph(tmp_path, "test.versioned")
    results = []
    for version in (1, 2, 2):
        registry = builtin_registry()
        registry.register(_versioned(version))
        with LocalExecutor(registry, artifacts=tmp_path / "artifacts", cache=cache) as executor:
            results.append(executor.run(graph, {"items": [1.0, 2.0]}))
    assert [r.outputs["results"] for r in results] == [[1.0, 2.0], [2.0, 4.0], [2.0, 4.0]]
    assert [r.nodes["each"].state for r in results] == [NodeState.DONE, NodeState.DONE, NodeState.CACHED]
    assert len(list(tmp_path.glob("v1.*"))) == 2 and len(list(tmp_path.glob("v2.*"))) == 2


# -- two `nodeloom run` processes --------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return installed_pack_env(tmp_path)


def cli_run(graph: Path, items: list[float], out: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([str(NODELOOM), "run", str(graph), "--set", f"items={json.dumps(items)}", "--out",
                           str(out), "--json", "-q"], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def test_two_cli_processes_run_only_the_changed_item(tmp_path: Path, cli_env: dict[str, str]) -> None:
    graph = tmp_path / "map.json"
    graph.write_text(json.dumps(map_graph(tmp_path / "marks").to_json()))
    (tmp_path / "marks").mkdir()
    first = cli_run(graph, ITEMS, tmp_path / "one", cli_env)
    assert len(markers(tmp_path / "marks", "item")) == 10
    same = cli_run(graph, ITEMS, tmp_path / "two", cli_env)
    assert same["nodes"]["each"]["state"] == "cached" and len(markers(tmp_path / "marks", "item")) == 10
    changed = cli_run(graph, CHANGED, tmp_path / "three", cli_env)
    assert changed["nodes"]["each"]["state"] == "done"
    assert len(markers(tmp_path / "marks", "item")) == 11
    assert first["outputs"]["results"] == ITEMS and changed["outputs"]["results"] == CHANGED


# -- Celery: real workers, the Redis result cache -----------------------------------------


@pytest.fixture(scope="module")
def celery_executor(registry: NodeRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
    from nodeloom.testing import RedisServer, WorkerFleet

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        config = CeleryConfig(broker_url=server.url, artifacts=tmp_path_factory.mktemp("artifacts"),
                              node_modules=(MODULE,), key_prefix="nlmapcache")
        fleet = WorkerFleet(config, tmp_path_factory.mktemp("worker-logs"), [FOLDER])
        try:
            fleet.start("main", "nodeloom.cpu,nodeloom.io,nodeloom.gpu", concurrency=2)
            with CeleryExecutor(registry, config=config) as running:
                yield running
        finally:
            fleet.stop_all()


@pytest.mark.slow
def test_on_celery_a_changed_item_runs_alone_and_a_rerun_runs_nothing(
    celery_executor: Any, tmp_path: Path
) -> None:
    graph = map_graph(tmp_path)
    first = celery_executor.run(graph, {"items": ITEMS})
    assert first.ok, first.errors()
    assert len(markers(tmp_path, "item")) == 10
    again = celery_executor.run(graph, {"items": ITEMS})
    assert again.nodes["each"].state is NodeState.CACHED and len(markers(tmp_path, "item")) == 10
    handle = celery_executor.submit(graph, {"items": CHANGED})
    changed = handle.result(timeout=120)
    assert changed.outputs["results"] == CHANGED and changed.nodes["each"].state is NodeState.DONE
    assert len(markers(tmp_path, "item")) == 11
    assert progress(list(handle.events(timeout=30)))[-1] == "10 of 10 items done: 9 cached, 1 run"
