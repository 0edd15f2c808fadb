"""A real `nodeloom serve` never runs node code in the process that answers HTTP (issue 14, defect 2).

The server runs on its default executor, the worker-process pool. While a node holds a
worker's GIL for seconds (one big-integer power after another), `/healthz` keeps answering
fast; a node past its timeout has its worker process killed and the run fails with
`node_timeout`, and the pool goes on with a fresh worker. With the in-process executor
(`NODELOOM_EXECUTOR=local` in the environment of this test) the latency test fails: the
same node stalls every request.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (the server helpers, busy_nodes)

from busy_nodes import MODULE
from test_api_server import ApiServer, _create_key_cli

from nodeloom.api.client import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("isolation")
    options = ("--node-module", MODULE, "--workers", "2")
    with ApiServer(f"sqlite:///{home / 'api.db'}", home, options=options).running() as instance:
        yield instance


@pytest.fixture(scope="module")
def api(server: ApiServer) -> Iterator[Client]:
    with Client(server.url, api_key=_create_key_cli(server, "iso", "admin")) as client:
        yield client


def _graph(node_type: str, folder: Path, label: str, seconds: float, timeout: float | None = None) -> dict[str, Any]:
    busy: dict[str, Any] = {"type": node_type, "inputs": {"folder": str(folder), "label": label, "seconds": seconds}}
    if timeout is not None:
        busy["timeout"] = timeout
    return {"name": label, "nodes": {"busy": busy}, "outputs": {"rounds": {"node": "busy", "output": "rounds"}}}


def _wait_for(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path.name} did not appear within {seconds} s")


def _process_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _healthz_latencies(url: str, count: int) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(count):
            started = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
    return latencies


def _summary(latencies: list[float]) -> str:
    p99 = statistics.quantiles(latencies, n=100)[98]
    return f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


def test_healthz_stays_fast_while_a_node_holds_the_gil(api: Client, server: ApiServer, tmp_path: Path) -> None:
    idle = _healthz_latencies(server.url, 250)  # for the record: the same requests with every worker idle
    run = api.submit(_graph("busy.bigint", tmp_path, "hog", seconds=60))
    pid = int(_wait_for(tmp_path / "hog.pid", 60))
    latencies = _healthz_latencies(server.url, 250)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"/healthz, 250 sequential requests: idle {_summary(idle)}; while a node holds a worker's GIL "
          f"{_summary(latencies)}")
    assert p99 < 0.050, f"p99 {p99 * 1000:.0f} ms"
    assert api.get_run(run.id).status.value == "running"  # the node was busy for the whole measurement
    assert pid != (server.process.pid if server.process else None)  # the node runs in another process
    # the node cannot even see the cancel: its worker is killed instead, and the run ends cancelled
    api.cancel(run.id)
    assert api.wait(run.id, timeout=30).status.value == "cancelled"
    assert _process_gone(pid, 10)


@pytest.mark.parametrize("node_type", ["busy.bigint", "busy.spin"])
def test_a_node_past_its_timeout_has_its_process_killed(api: Client, node_type: str, tmp_path: Path) -> None:
    label = node_type.replace(".", "-")
    run = api.submit(_graph(node_type, tmp_path, label, seconds=60, timeout=1.5))
    pid = int(_wait_for(tmp_path / f"{label}.pid", 60))
    done = api.wait(run.id, timeout=30)
    assert done.status.value == "failed"
    busy = done.nodes["busy"]
    assert busy.state == "failed" and busy.error is not None and busy.error["code"] == "node_timeout", busy.error
    assert _process_gone(pid, 10), f"worker {pid} still alive after its node timed out"
    # the pool replaced the worker: the next run works
    again = api.wait(api.submit(_graph(node_type, tmp_path, label + "-again", seconds=0.1)).id, timeout=60)
    assert again.status.value == "succeeded"


def test_runs_beyond_the_workers_wait_in_a_queue_metrics_count(api: Client, tmp_path: Path) -> None:
    busy = [api.submit(_graph("busy.spin", tmp_path, f"hold{index}", seconds=30)) for index in range(2)]
    for index in range(2):
        _wait_for(tmp_path / f"hold{index}.pid", 60)
    waiting = api.submit(_graph("busy.spin", tmp_path, "waiting", seconds=0.1))
    assert 'nodeloom_queue_depth{queue="nodeloom.pool"} 1.0' in api.metrics()
    for run in busy:
        assert api.cancel(run.id).status.value == "cancelled"
    assert api.wait(waiting.id, timeout=60).status.value == "succeeded"
    assert 'nodeloom_queue_depth{queue="nodeloom.pool"} 0.0' in api.metrics()
