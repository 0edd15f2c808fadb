"""Celery executor dispatch cost, against a plain Celery chain of the same no-op tasks, in the same run.

Everything runs on this machine: a bench-owned `redis-server` on a free loopback port (broker
and run store), and `celery worker` processes (prefork, 1 then 2 processes) that take both
the nodeloom node task and the plain no-op task from the same queue.

Figures, per worker count:
  per-node   one run of a chain of N no-op nodes, submit to result, divided by N; the baseline
             is one plain Celery chain of N no-op tasks (`celery.chain`) whose last task
             pushes to a Redis list that the bench waits on with BLPOP
  throughput R runs of an M-node chain submitted at once: node tasks per second; the baseline
             is R plain chains of M tasks sent at once

nodeloom runs use `use_cache=False` (the baseline has no cache); `--with-cache` adds a
figure with the result cache on and fresh inputs per run (a cache look-up per node).

Targets: per-node time at most 1.5x the plain chain's per-task time; at least 300 node
tasks/s with 2 worker processes.

Usage: python bench/celery_dispatch.py [--chain 200] [--runs 20] [--run-length 20] [--repeat 3]
                                       [--workers 1,2] [--with-cache] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from nodeloom.core import Float, Graph, InputRef, Link
from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
from nodeloom.node_registry import builtin_registry
from nodeloom.testing import RedisServer, WorkerFleet

TARGET_PER_NODE_VS_CHAIN = 1.5
TARGET_TASKS_PER_SECOND_2_WORKERS = 300.0
MODULE = "nodeloom_bench_celery_nodes"
# imported by the workers (`celery worker -I`) and by this process: the node and the plain tasks
MODULE_TEXT = '''
"""No-op work for bench/celery_dispatch.py: a nodeloom node and plain Celery tasks doing the same."""

import os

import redis

from nodeloom.core import node
from nodeloom.executors.celery.app import app

_client = None


@node("bench.noop", output="value")
def noop(value: float) -> float:
    """Return the input."""
    return value


@app.task(name="bench.plain_noop")
def plain_noop(value: float) -> float:
    return value


@app.task(name="bench.plain_done")
def plain_done(value: float, key: str) -> None:
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(app.conf.broker_url))
    _client[1].rpush(key, value)
'''


def chain_graph(n: int) -> Graph:
    g = Graph(f"noop-chain-{n}")
    value: InputRef | Link = g.input("x", Float, default=0.0)
    for i in range(n):
        value = g.add("bench.noop", f"n{i}", value=value)["value"]
    assert isinstance(value, Link)
    g.output("out", value)
    return g


class Bench:
    """The timed workloads, on one running worker."""

    def __init__(self, executor: CeleryExecutor, client: redis.Redis) -> None:
        self.executor = executor
        self.client = client
        self.app = executor.app
        self._inputs = 0.0

    def _fresh(self) -> float:
        self._inputs += 1.0
        return self._inputs

    def plain_chains(self, count: int, length: int) -> float:
        """Seconds for `count` plain chains of `length` no-op tasks sent at once, until all finished."""
        from celery import chain  # type: ignore[import-untyped]

        key = f"bench:done:{uuid.uuid4().hex}"
        started = time.perf_counter()
        for _ in range(count):
            steps = [self.app.signature("bench.plain_noop", args=(1.0,))]
            steps += [self.app.signature("bench.plain_noop") for _ in range(length - 1)]
            steps.append(self.app.signature("bench.plain_done", args=(key,)))
            chain(*steps).apply_async()
        for _ in range(count):
            if self.client.blpop([key], timeout=120) is None:
                raise SystemExit("a plain chain did not finish within 120 s")
        elapsed = time.perf_counter() - started
        self.client.delete(key)
        return elapsed

    def node_runs(self, graph: Graph, count: int, use_cache: bool) -> float:
        """Seconds for `count` runs of `graph` submitted at once, until all finished."""
        started = time.perf_counter()
        handles = [self.executor.submit(graph, {"x": self._fresh()}, use_cache=use_cache) for _ in range(count)]
        for handle in handles:
            result = handle.result(timeout=300)
            if not result.ok:
                raise SystemExit(f"run {handle.run_id} ended {result.status.value}")
        return time.perf_counter() - started


def best(measure: Callable[[], float], repeat: int) -> tuple[float, float]:
    times = [measure() for _ in range(repeat)]
    return min(times), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chain", type=int, default=200, help="nodes in the per-node chain (default 200)")
    parser.add_argument("--runs", type=int, default=20, help="runs submitted at once for throughput (default 20)")
    parser.add_argument("--run-length", type=int, default=20, help="nodes per throughput run (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure; the best is kept")
    parser.add_argument("--workers", default="1,2", help="worker process counts, comma-separated (default 1,2)")
    parser.add_argument("--with-cache", action="store_true", help="also time runs with the result cache on")
    parser.add_argument("--json", type=Path, help="write the figures to this file as JSON")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.workers.split(",") if part.strip()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        folder = Path(tmp)
        (folder / f"{MODULE}.py").write_text(textwrap.dedent(MODULE_TEXT))
        sys.path.insert(0, str(folder))
        registry = builtin_registry()
        registry.register_module(MODULE)
        with RedisServer(folder / "redis") as server:
            config = CeleryConfig(broker_url=server.url, artifacts=folder / "artifacts", node_modules=(MODULE,),
                                  key_prefix="bench")
            client = redis.Redis.from_url(server.url)
            with CeleryExecutor(registry, config=config) as executor, \
                    WorkerFleet(config, folder / "logs", [folder]) as fleet:
                bench = Bench(executor, client)
                per_node = chain_graph(args.chain)
                short = chain_graph(args.run_length)
                for processes in counts:
                    process = fleet.start(f"bench{processes}", "nodeloom.cpu", processes, include=[MODULE])
                    try:
                        # warm up: every pool process imports, plans and connects once
                        bench.node_runs(short, max(4, processes * 2), use_cache=False)
                        bench.plain_chains(max(4, processes * 2), args.run_length)
                        row: dict[str, Any] = {"workers": processes, "chain": args.chain,
                                               "runs": args.runs, "run_length": args.run_length}
                        plain, plain_median = best(lambda: bench.plain_chains(1, args.chain), args.repeat)
                        ours, ours_median = best(lambda: bench.node_runs(per_node, 1, False), args.repeat)
                        row["plain_per_task_ms"] = plain / args.chain * 1e3
                        row["node_per_task_ms"] = ours / args.chain * 1e3
                        row["plain_per_task_median_ms"] = plain_median / args.chain * 1e3
                        row["node_per_task_median_ms"] = ours_median / args.chain * 1e3
                        tasks = args.runs * args.run_length
                        plain_tp, _ = best(lambda: bench.plain_chains(args.runs, args.run_length), args.repeat)
                        ours_tp, _ = best(lambda: bench.node_runs(short, args.runs, False), args.repeat)
                        row["plain_tasks_per_s"] = tasks / plain_tp
                        row["node_tasks_per_s"] = tasks / ours_tp
                        if args.with_cache:
                            cached, _ = best(lambda: bench.node_runs(per_node, 1, True), args.repeat)
                            row["node_per_task_cache_on_ms"] = cached / args.chain * 1e3
                        rows.append(row)
                        report(row)
                    finally:
                        fleet.stop(process)
            client.close()
        sys.path.remove(str(folder))
    verdicts = targets(rows)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "targets": verdicts}, indent=2))
    return 0


def report(row: dict[str, Any]) -> None:
    ratio = row["node_per_task_ms"] / row["plain_per_task_ms"]
    print(f"workers={row['workers']}  per-node (chain of {row['chain']}, best; median in brackets)")
    print(f"  plain celery chain  {row['plain_per_task_ms']:7.3f} ms/task  ({row['plain_per_task_median_ms']:.3f})")
    print(f"  nodeloom            {row['node_per_task_ms']:7.3f} ms/node  ({row['node_per_task_median_ms']:.3f})"
          f"  = {ratio:.2f}x plain")
    if "node_per_task_cache_on_ms" in row:
        cache_ratio = row["node_per_task_cache_on_ms"] / row["plain_per_task_ms"]
        print(f"  nodeloom cache on   {row['node_per_task_cache_on_ms']:7.3f} ms/node"
              f"  = {cache_ratio:.2f}x plain")
    tp_ratio = row["node_tasks_per_s"] / row["plain_tasks_per_s"]
    print(f"workers={row['workers']}  throughput ({row['runs']} chains of {row['run_length']} at once)")
    print(f"  plain celery chains {row['plain_tasks_per_s']:7.0f} tasks/s")
    print(f"  nodeloom            {row['node_tasks_per_s']:7.0f} node tasks/s  = {tp_ratio:.2f}x plain")
    sys.stdout.flush()


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    print("targets")
    for row in rows:
        ratio = row["node_per_task_ms"] / row["plain_per_task_ms"]
        met = ratio <= TARGET_PER_NODE_VS_CHAIN
        verdicts[f"per_node_workers_{row['workers']}"] = {"ratio": ratio, "met": met}
        print(f"  per-node <= {TARGET_PER_NODE_VS_CHAIN}x plain chain, workers={row['workers']}: "
              f"{ratio:.2f}x  {'met' if met else 'NOT met'}")
        if row["workers"] == 2:
            rate = row["node_tasks_per_s"]
            met = rate >= TARGET_TASKS_PER_SECOND_2_WORKERS
            verdicts["throughput_workers_2"] = {"tasks_per_s": rate, "met": met}
            print(f"  >= {TARGET_TASKS_PER_SECOND_2_WORKERS:.0f} node tasks/s with 2 workers: {rate:.0f}  "
                  f"{'met' if met else 'NOT met'}")
    return verdicts


if __name__ == "__main__":
    raise SystemExit(main())
