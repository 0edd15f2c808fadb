"""The result cache on disk: shared by separate processes, bounded, and never a reason for a run to fail."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nodeloom.core.artifacts import LocalArtifactStore
from nodeloom.core.cache import ResultCache
from nodeloom.core.context import RunConfig
from nodeloom.core.disk_cache import DiskResultCache, default_max_bytes
from nodeloom.core.errors import UsageError
from nodeloom.core.graph import Graph
from nodeloom.executors.local import LocalExecutor
from nodeloom.node_registry import default_registry

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "hello" / "graph.json"
NODELOOM = Path(sys.executable).with_name("nodeloom")

#: an SDK process that runs a graph of 40 independent nodes once `start_at` (a wall-clock time) has come
WRITER = textwrap.dedent('''
    import sys, time
    import nodeloom
    start_at = float(sys.argv[1])
    nodes = {f"n{i}": {"type": "text.template", "inputs": {"template": f"item {i}: {{{{ word }}}}",
                                                           "word": {"input": "word"}}} for i in range(40)}
    graph = {"format_version": 1, "inputs": {"word": {"type": "Text"}}, "nodes": nodes,
             "outputs": {f"o{i}": {"node": f"n{i}", "output": "text"} for i in range(40)}}
    time.sleep(max(0.0, start_at - time.time()))
    result = nodeloom.run(graph, {"word": "same"})
    print(result.outputs["o7"])
''')


def environment(home: Path) -> dict[str, str]:
    env = dict(os.environ, NODELOOM_HOME=str(home), NO_COLOR="1")
    env.pop("NODELOOM_CACHE_MAX_BYTES", None)
    return env


def cli_run(home: Path, out: Path) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([str(NODELOOM), "run", str(HELLO), "--set", "name=x", "--out", str(out), "--json", "-q"],
                          capture_output=True, text=True, env=environment(home), timeout=120)
    assert done.returncode == 0, done.stderr
    record: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return record


def states(record: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {node_id: node["state"] for node_id, node in record["nodes"].items()}


def test_a_second_cli_process_finds_every_node_cached(tmp_path: Path) -> None:
    first = cli_run(tmp_path / "home", tmp_path / "one")
    second = cli_run(tmp_path / "home", tmp_path / "two")
    assert set(states(first).values()) == {"done"}
    assert states(second) == {"greeting": "cached", "shout": "cached", "both": "cached"}
    assert second["outputs"] == first["outputs"]
    assert (tmp_path / "two" / "both.txt").read_text() == "Hello, x! / HELLO, X!"


def test_cli_no_cache_runs_every_node_and_cache_info_counts_hits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli_run(home, tmp_path / "one")
    cli_run(home, tmp_path / "two")
    env = environment(home)
    done = subprocess.run([str(NODELOOM), "run", str(HELLO), "--set", "name=x", "--no-cache", "--json", "-q",
                           "--out", str(tmp_path / "three")], capture_output=True, text=True, env=env, timeout=120)
    assert set(states(json.loads(done.stdout)).values()) == {"done"}
    info = json.loads(subprocess.run([str(NODELOOM), "cache", "info", "--json"], capture_output=True, text=True,
                                     env=env, timeout=60, check=True).stdout)
    assert info["entries"] == 3 and info["hits"] == 3 and info["misses"] == 3 and info["hit_rate"] == 0.5
    cleared = subprocess.run([str(NODELOOM), "cache", "clear"], capture_output=True, text=True, env=env, timeout=60)
    assert cleared.returncode == 0 and "cleared 3" in cleared.stdout
    assert set(states(cli_run(home, tmp_path / "four")).values()) == {"done"}


def test_two_sdk_processes_writing_the_same_keys_at_once_both_succeed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    start_at = time.time() + 3.0  # both import nodeloom first, then start together
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(start_at)], env=environment(home),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
        assert stdout.strip() == "item 7: same"
    cache = DiskResultCache(LocalArtifactStore(home / "artifacts"), home / "cache.sqlite")
    try:
        assert cache.info()["entries"] == 40
        with sqlite3.connect(home / "cache.sqlite") as db:
            rows = db.execute("SELECT outputs FROM results").fetchall()
        assert sorted(json.loads(text)["text"] for (text,) in rows) == sorted(f"item {i}: same" for i in range(40))
    finally:
        cache.close()


def test_a_corrupt_cache_file_is_a_miss_and_is_set_aside(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache.sqlite").write_bytes(os.urandom(8192))
    first = cli_run(home, tmp_path / "one")
    assert set(states(first).values()) == {"done"}
    assert len(list(home.glob("cache.sqlite.corrupt-*"))) == 1
    assert set(states(cli_run(home, tmp_path / "two")).values()) == {"cached"}


def test_a_damaged_row_is_a_miss(tmp_path: Path) -> None:
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    cache = DiskResultCache(artifacts, tmp_path / "cache.sqlite")
    cache.put("k", {"text": "hello"})
    cache.close()
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        db.execute("UPDATE results SET outputs = 'not json{' WHERE key = 'k'")
    reopened = DiskResultCache(artifacts, tmp_path / "cache.sqlite")
    try:
        assert reopened.get("k") is None
        assert reopened.info()["entries"] == 0
    finally:
        reopened.close()


def test_the_least_recently_used_results_are_evicted_at_the_size_bound(tmp_path: Path) -> None:
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    row = len(json.dumps({"text": "x" * 100}))
    cache = DiskResultCache(artifacts, tmp_path / "cache.sqlite", max_bytes=3 * row)
    for key in ("a", "b", "c"):
        cache.put(key, {"text": "x" * 100})
        time.sleep(0.01)
    cache.close()
    # a new process-like instance: its memory is empty, so reads come from the file
    cache = DiskResultCache(artifacts, tmp_path / "cache.sqlite", max_bytes=3 * row)
    try:
        assert cache.get("a") is not None  # "a" is now the most recently used, "b" the oldest
        cache.put("d", {"text": "x" * 100})
        cache.flush()
        with sqlite3.connect(tmp_path / "cache.sqlite") as db:
            kept = {key for (key,) in db.execute("SELECT key FROM results")}
        assert kept == {"a", "c", "d"}
        assert cache.info()["bytes"] <= 3 * row
    finally:
        cache.close()


def test_large_outputs_are_spilled_to_the_artifact_store_and_read_back(tmp_path: Path) -> None:
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    big = {"text": "y" * 200_000}
    cache = DiskResultCache(artifacts, tmp_path / "cache.sqlite", inline_limit=1024)
    cache.put("big", big)
    cache.close()
    reopened = DiskResultCache(artifacts, tmp_path / "cache.sqlite")
    try:
        assert reopened.get("big") == big
        assert reopened.info()["bytes"] > 200_000
    finally:
        reopened.close()


def test_run_config_chooses_the_cache_of_a_run(tmp_path: Path) -> None:
    graph = Graph.loads(HELLO.read_text())
    with LocalExecutor(default_registry(), artifacts=tmp_path / "artifacts") as executor:
        executor.run(graph, {"name": "y"})
        uncached = executor.run(graph, {"name": "y"}, config=RunConfig(cache=None))
        assert {record.state.value for record in uncached.nodes.values()} == {"done"}
        own = ResultCache()
        executor.run(graph, {"name": "y"}, config=RunConfig(cache=own))
        assert len(own) == 3
        again = executor.run(graph, {"name": "y"}, config=RunConfig(cache=own))
        assert {record.state.value for record in again.nodes.values()} == {"cached"}


def test_a_cache_size_that_is_not_a_number_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODELOOM_CACHE_MAX_BYTES", "lots")
    with pytest.raises(UsageError, match="NODELOOM_CACHE_MAX_BYTES must be a whole number of bytes, not 'lots'"):
        default_max_bytes()
