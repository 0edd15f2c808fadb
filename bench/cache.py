"""What the result cache saves a re-run in a new process, on the local executor and on Celery.

Every run is a new Python process (`python bench/cache.py --child ...`: import nodeloom, load
the graph, make the executor, run with `nodeloom.run`, print what each node did), so nothing
is kept in memory between runs: hits come from the disk cache ($NODELOOM_HOME/cache.sqlite)
locally, and from Redis on Celery.

Graphs:
  marketing  examples/marketing_video/graph.json as it is now (LLM storyboard, maps, slideshow)
  map10      a 10-item control.map of image.title_card (one card per item)

Runs, per graph and executor, against one fresh cache:
  start-up  the same child process without the run (imports, graph, executor, preflight)
  cold      the first run: every node executes
  rerun     the same inputs again: no node should execute
  changed   one input changed: exactly that input's descendants should execute (marketing),
            exactly one item should run (map10: one item of the list changed)

Figures are medians of --repeat runs; "beyond start-up" is a run's wall time minus the
start-up's, i.e. what the run itself cost; the ratio is run wall / start-up wall.
Each "changed" run uses a value not seen before, so it misses on the changed part only.

Usage: python bench/cache.py [--repeat 3] [--no-celery] [--no-marketing] [--marketing-input resolution]
Celery rows start their own redis-server on a free port and real worker processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MARKETING = REPO / "examples" / "marketing_video" / "graph.json"
ITEMS = [f"scene {i}" for i in range(10)]

MAP10 = {
    "format_version": 1,
    "inputs": {"items": {"type": "List[Text]"}},
    "nodes": {
        "cards": {"type": "control.map", "inputs": {"node": "image.title_card", "items": {"input": "items"},
                                                    "item_input": "text", "inputs": {"width": 320, "height": 180}}},
    },
    "outputs": {"cards": {"node": "cards", "output": "results"}},
}


# -- the child: one run in a new process --------------------------------------------------


def child(graph_path: str, executor_kind: str, inputs_json: str, run: bool) -> None:
    from nodeloom.core.graph import Graph
    from nodeloom.core.preflight import check_before_run

    graph = Graph.loads(Path(graph_path).read_text())
    inputs = json.loads(inputs_json)
    if executor_kind == "celery":
        from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
        from nodeloom.node_registry import default_registry

        executor: Any = CeleryExecutor(default_registry(), config=CeleryConfig.from_env())
    else:
        from nodeloom._run import default_executor

        executor = default_executor()
    check_before_run(graph, executor.registry, inputs)  # as nodeloom.run and `nodeloom run` do
    if not run:
        print(json.dumps({"states": {}, "maps": {}}))
        return
    messages: dict[str, str] = {}
    handle = executor.submit(graph, inputs)
    result = handle.result(timeout=1800)
    for event in handle.events(timeout=30):
        if event.kind.value == "node.progress" and "items done" in str(event.data.get("message")):
            messages[str(event.node)] = str(event.data["message"])
    if not result.ok:
        raise SystemExit(f"run failed: {result.errors()}")
    states = {node_id: record.state.value for node_id, record in result.nodes.items()}
    print(json.dumps({"states": states, "maps": messages}))
    if executor_kind == "celery":
        executor.close()


# -- the parent: timing new processes -----------------------------------------------------


def timed(graph: Path, kind: str, inputs: dict[str, Any], env: dict[str, str], run: bool = True
          ) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", str(graph), kind, json.dumps(inputs),
                           "run" if run else "startup"], capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"child run of {graph.name} on {kind} failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, report


def descendants(graph: dict[str, Any], input_name: str) -> set[str]:
    """The nodes that read `input_name`, and everything downstream of them."""
    def reads(value: Any, wanted: set[str], key: str) -> bool:
        if isinstance(value, dict):
            if value.get(key) in wanted and len(value) <= 2:
                return True
            return any(reads(v, wanted, key) for v in value.values())
        if isinstance(value, list):
            return any(reads(v, wanted, key) for v in value)
        return False

    found = {nid for nid, n in graph["nodes"].items() if reads(n.get("inputs", {}), {input_name}, "input")}
    while True:
        more = {nid for nid, n in graph["nodes"].items() if nid not in found and reads(n.get("inputs", {}), found,
                                                                                          "node")}
        if not more:
            return found
        found |= more


def executed(report: dict[str, Any]) -> list[str]:
    return sorted(node_id for node_id, state in report["states"].items() if state == "done")


def items_run(report: dict[str, Any]) -> str:
    counts = []
    for node_id, message in sorted(report["maps"].items()):
        match = re.search(r"(\d+) cached, (\d+) run", message)
        if match:
            counts.append(f"{node_id}: {match.group(2)} run, {match.group(1)} cached")
    return "; ".join(counts) or "no map ran"


def bench(name: str, graph: Path, kind: str, first: dict[str, Any], changed: Callable[[int], dict[str, Any]],
          expected: set[str], repeat: int, env: dict[str, str]) -> None:
    # start-up samples between the runs, so a machine whose load changes weighs on both alike
    startups = [timed(graph, kind, first, env, run=False)[0]]
    cold, cold_report = timed(graph, kind, first, env)
    reruns, changes = [], []
    for index in range(repeat):
        startups.append(timed(graph, kind, first, env, run=False)[0])
        reruns.append(timed(graph, kind, first, env))
        # a new value each time, so each change misses on the changed part and hits the rest
        changes.append(timed(graph, kind, changed(index), env))
    startup = statistics.median(startups)
    rerun = statistics.median(s for s, _ in reruns)
    change = statistics.median(s for s, _ in changes)
    total = len(cold_report["states"])
    print(f"{name} on {kind}: start-up {startup:.2f}s ({total} nodes)")
    print(f"  cold     {cold:7.2f}s  {cold - startup:+7.2f}s beyond start-up  x{cold / startup:5.2f}  "
          f"{len(executed(cold_report))}/{total} executed")
    worst = max((len(executed(r)) for _, r in reruns), default=0)
    print(f"  rerun    {rerun:7.2f}s  {rerun - startup:+7.2f}s beyond start-up  x{rerun / startup:5.2f}  "
          f"{worst}/{total} executed (most of {repeat} runs)")
    ran = [set(executed(r)) for _, r in changes]
    exact = all(r == expected for r in ran)
    print(f"  changed  {change:7.2f}s  {change - startup:+7.2f}s beyond start-up  x{change / startup:5.2f}  "
          f"{'/'.join(str(len(r)) for r in ran)} of {total} executed in the {repeat} runs, "
          f"{'each exactly' if exact else 'NOT exactly'} the descendants {sorted(expected)}; "
          f"{' | '.join(items_run(r) for _, r in changes)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "run")
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-celery", action="store_true", help="only the local executor")
    parser.add_argument("--no-marketing", action="store_true", help="only the 10-item map")
    parser.add_argument("--marketing-input", default="resolution",
                        help="the input changed in the marketing rows (default resolution): a number input gets "
                             "its default + 2, + 4, ...; a text one its default with ' (1)', ' (2)', ... added")
    options = parser.parse_args()
    name = options.marketing_input
    marketing = json.loads(MARKETING.read_text())
    default = marketing["inputs"][name].get("default")

    def marketing_change(index: int) -> dict[str, Any]:
        if isinstance(default, int | float) and not isinstance(default, bool):
            return {name: default + 2 * (index + 1)}
        return {name: f"{default} ({index + 1})"}

    def map_change(index: int) -> dict[str, Any]:
        return {"items": [*ITEMS[:4], f"a new scene {index}", *ITEMS[5:]]}

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        map_graph = work / "map10.json"
        map_graph.write_text(json.dumps(MAP10))
        kinds = ["local"] if options.no_celery else ["local", "celery"]
        for kind in kinds:
            env = dict(os.environ, NODELOOM_HOME=str(work / kind / "home"), NO_COLOR="1")
            env.pop("NODELOOM_CACHE_MAX_BYTES", None)
            servers = _celery(work / kind, env) if kind == "celery" else None
            try:
                if not options.no_marketing:
                    bench("marketing", MARKETING, kind, {}, marketing_change, descendants(marketing, name),
                          options.repeat, env)
                bench("map10", map_graph, kind, {"items": ITEMS}, map_change, {"cards"}, options.repeat, env)
            finally:
                if servers is not None:
                    servers[1].stop_all()
                    servers[0].stop()


def _celery(work: Path, env: dict[str, str]) -> tuple[Any, Any]:
    """A redis-server on a free port and one worker with two processes on every queue."""
    from nodeloom.executors.celery import CeleryConfig
    from nodeloom.testing import RedisServer, WorkerFleet

    (work / "redis").mkdir(parents=True)
    server = RedisServer(work / "redis").start()
    config = CeleryConfig(broker_url=server.url, artifacts=work / "artifacts", key_prefix="nlbench")
    env.update(config.to_env())
    fleet = WorkerFleet(config, work, env={"NODELOOM_HOME": env["NODELOOM_HOME"]})
    fleet.start("bench", "nodeloom.cpu,nodeloom.io,nodeloom.gpu", concurrency=2)
    return server, fleet


if __name__ == "__main__":
    main()
