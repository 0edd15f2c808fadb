"""What the disk result cache saves a re-run in a new process, each run a real `nodeloom run`.

Graphs:
  hello    examples/hello (3 nodes; both inputs feed its first node)
  branches 4 text nodes: name -> greeting -> shout, excitement -> marks, (shout, marks) -> both

Runs, all against one fresh $NODELOOM_HOME:
  baseline  `nodeloom validate` of the graph: the same start-up (imports, node catalog, graph) and no run
  cold      the first run: every node executes
  rerun     the same inputs again in a new process: every node should be a cache hit
  changed   one input changed: only the nodes downstream of it should execute

Each figure is the median of --repeat runs; "beyond baseline" is the run's wall time minus
the baseline's, i.e. what the run itself cost.

Usage: python bench/cache.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODELOOM = Path(sys.executable).with_name("nodeloom")

BRANCHES = {
    "format_version": 1,
    "inputs": {"name": {"type": "Text"}, "excitement": {"type": "Int", "default": 1}},
    "nodes": {
        "greeting": {"type": "text.template",
                     "inputs": {"template": "Hello, {{ name }}", "name": {"input": "name"}}},
        "shout": {"type": "text.template",
                  "inputs": {"template": "{{ text | upper }}", "text": {"node": "greeting", "output": "text"}}},
        "marks": {"type": "text.template",
                  "inputs": {"template": "{{ '!' * n }}", "n": {"input": "excitement"}}},
        "both": {"type": "text.join", "inputs": {"first": {"node": "shout", "output": "text"},
                                                 "second": {"node": "marks", "output": "text"}}},
    },
    "outputs": {"both": {"node": "both", "output": "text"}},
}


def timed(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, str]]:
    """Wall seconds of one `nodeloom` process, and the state of each node when it ran a graph."""
    started = time.perf_counter()
    done = subprocess.run([str(NODELOOM), *args], capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"nodeloom {' '.join(args)} failed:\n{done.stderr}")
    if args[0] != "run":
        return seconds, {}
    record = json.loads(done.stdout)
    return seconds, {node_id: node["state"] for node_id, node in record["nodes"].items()}


def bench(name: str, graph: Path, first: list[str], changed: list[str], repeat: int, work: Path) -> None:
    env = dict(os.environ, NODELOOM_HOME=str(work / name / "home"), NO_COLOR="1")
    out = ["--out", str(work / name / "out"), "--json", "-q"]
    baseline = statistics.median(timed(["validate", str(graph)], env)[0] for _ in range(repeat))
    cold, cold_states = timed(["run", str(graph), *first, *out], env)
    reruns = [timed(["run", str(graph), *first, *out], env) for _ in range(repeat)]
    changes = []
    for _ in range(repeat):
        changes.append(timed(["run", str(graph), *changed, *out], env))
        # forget the change, keep the first inputs' results: the next change misses again
        subprocess.run([str(NODELOOM), "cache", "clear"], env=env, capture_output=True, check=True)
        timed(["run", str(graph), *first, *out], env)

    def executed(states: dict[str, str]) -> str:
        ran = sorted(node_id for node_id, state in states.items() if state == "done")
        return f"{len(ran)}/{len(states)} executed" + (f" ({', '.join(ran)})" if ran else "")

    print(f"{name}: baseline (validate) {baseline:.3f}s")
    print(f"  cold     {cold - baseline:+.3f}s beyond baseline, {executed(cold_states)}")
    rerun = statistics.median(seconds for seconds, _ in reruns)
    print(f"  rerun    {rerun - baseline:+.3f}s beyond baseline, {executed(reruns[-1][1])}")
    change = statistics.median(seconds for seconds, _ in changes)
    print(f"  changed  {change - baseline:+.3f}s beyond baseline, {executed(changes[-1][1])}  [{' '.join(changed)}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        hello = REPO / "examples" / "hello" / "graph.json"
        bench("hello", hello, ["--set", "name=x"], ["--set", "name=y"], options.repeat, work)
        branches = work / "branches.json"
        branches.write_text(json.dumps(BRANCHES))
        bench("branches", branches, ["--set", "name=x", "--set", "excitement=1"],
              ["--set", "name=x", "--set", "excitement=3"], options.repeat, work)


if __name__ == "__main__":
    main()
