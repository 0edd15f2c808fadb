"""REST API load: submit-and-complete throughput, and read latency at 100 concurrent clients.

Starts `nodeloom serve` (local executor, SQLite in a temporary folder) on 127.0.0.1 and measures:

1. throughput: `--submitters` clients each submit a small graph (2 text nodes, cache off) through
   the SDK client and wait for it to finish, for `--submit-seconds`; baseline: the same graph run
   in this process by `LocalExecutor.run` (so the ratio is what the API, database and polling cost);
2. read latency: `--clients` concurrent connections do `GET /v1/runs/{id}` of a finished run for
   `--seconds` (with `wrk` when installed, else an asyncio httpx load generator); baseline: the
   same load on `GET /healthz`, which touches no database and no key. The same read with
   `?wait=0` is measured too: it bypasses the finished-run fast path (`nodeloom.api.fastpath`)
   and goes through FastAPI's routing and dependencies.

Usage: python bench/api_load.py [--clients 100] [--seconds 10] [--submit-seconds 8] [--submitters 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

GRAPH: dict[str, Any] = {
    "name": "bench",
    "inputs": {"name": {"type": "Text"}},
    "nodes": {
        "hello": {"type": "text.template", "inputs": {"template": "Hello {{ name }}!", "name": {"input": "name"}}},
        "both": {"type": "text.join", "inputs": {"first": {"node": "hello", "output": "text"}, "second": "bye"}},
    },
    "outputs": {"text": {"node": "both", "output": "text"}},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(home: Path, db_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "NODELOOM_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "nodeloom.cli", "serve", "--port", str(port), "--db-url", db_url,
         "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=(home / "server.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start within 120 s")


def direct_runs_per_second(seconds: float) -> float:
    """The baseline: the same graph run in this process, one run after another."""
    from nodeloom import Graph
    from nodeloom.executors import LocalExecutor

    graph = Graph.from_json(GRAPH)
    with tempfile.TemporaryDirectory() as artifacts, LocalExecutor(artifacts=artifacts) as executor:
        executor.run(graph, {"name": "warm-up"}, use_cache=False)
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            executor.run(graph, {"name": str(done)}, use_cache=False).raise_for_status()
            done += 1
        return done / (time.perf_counter() - start)


async def api_runs_per_second(url: str, key: str, submitters: int, seconds: float) -> tuple[float, int]:
    from nodeloom.api.client import AsyncClient

    finished = 0
    failed = 0
    stop_at = time.perf_counter() + seconds

    async def submitter(index: int) -> None:
        nonlocal finished, failed
        async with AsyncClient(url, api_key=key) as client:
            count = 0
            while time.perf_counter() < stop_at:
                run = await client.submit(GRAPH, {"name": f"{index}-{count}"}, use_cache=False)
                result = await client.wait(run.id, timeout=60)
                count += 1
                if result.status.value == "succeeded":
                    finished += 1
                else:
                    failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(submitter(index) for index in range(submitters)))
    return finished / (time.perf_counter() - start), failed


_WRK_LATENCY = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_load(url: str, headers: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = {match[0]: float(match[1]) * _UNIT[match[2]] for match in _WRK_LATENCY.findall(output)}
    rate = _WRK_RATE.search(output)
    errors = _WRK_ERRORS.search(output)
    return {"p50_ms": latency["50"], "p99_ms": latency["99"], "rps": float(rate[1]) if rate else 0.0,
            "errors": float(errors[1]) if errors else 0.0}


async def httpx_load(url: str, headers: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    """The fallback load generator: `clients` connections, each sending its next request when answered."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - sent) * 1000)
                errors += response.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {"p50_ms": statistics.median(latencies), "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
            "rps": len(latencies) / elapsed, "errors": float(errors)}


def read_load(url: str, headers: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    if shutil.which("wrk"):
        return wrk_load(url, headers, clients, seconds)
    return asyncio.run(httpx_load(url, headers, clients, seconds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100, help="concurrent connections for the read test")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each read test")
    parser.add_argument("--submit-seconds", type=float, default=8.0, help="length of the throughput test")
    parser.add_argument("--submitters", type=int, default=8, help="clients submitting runs at once")
    args = parser.parse_args()

    from nodeloom.api.auth import create_key
    from nodeloom.api.client import Client
    from nodeloom.api.db import make_engine, upgrade_database
    from nodeloom.api.schemas import Scope

    with tempfile.TemporaryDirectory(prefix="nodeloom-api-bench-") as folder:
        home = Path(folder)
        db_url = f"sqlite:///{home / 'nodeloom.db'}"
        engine = make_engine(db_url)
        upgrade_database(engine)
        key, _ = create_key(engine, "bench", [Scope.RUN])
        engine.dispose()
        process, url = start_server(home, db_url)
        try:
            print(f"server: {url} (local executor, SQLite), load tool: {'wrk' if shutil.which('wrk') else 'httpx'}")
            baseline = direct_runs_per_second(min(args.submit_seconds, 5.0))
            rate, failed = asyncio.run(api_runs_per_second(url, key, args.submitters, args.submit_seconds))
            print(f"submit-and-complete, {args.submitters} clients: {rate:8.1f} runs/s "
                  f"({failed} not succeeded)")
            print(f"baseline, LocalExecutor.run in-process:   {baseline:8.1f} runs/s   "
                  f"ratio API/direct = {rate / baseline:.3f}")
            with Client(url, api_key=key) as client:
                run_id = client.run(GRAPH, {"name": "read me"}, timeout=60).id
            headers = {"Authorization": f"Bearer {key}"}
            health = read_load(f"{url}/healthz", {}, args.clients, args.seconds)
            reads = read_load(f"{url}/v1/runs/{run_id}", headers, args.clients, args.seconds)
            # `?wait=0` answers the same, through FastAPI's route instead of the finished-run fast path
            routed = read_load(f"{url}/v1/runs/{run_id}?wait=0", headers, args.clients, args.seconds)
            for label, figures in (("GET /healthz (baseline)", health), ("GET /v1/runs/{id}", reads),
                                   ("  same, ?wait=0 (route)", routed)):
                print(f"{label:24} {args.clients} clients: p50 {figures['p50_ms']:7.2f} ms  "
                      f"p99 {figures['p99_ms']:7.2f} ms  {figures['rps']:8.0f} req/s  "
                      f"errors {figures['errors']:.0f}")
            print(f"ratio runs/healthz: p50 x{reads['p50_ms'] / health['p50_ms']:.2f}  "
                  f"p99 x{reads['p99_ms'] / health['p99_ms']:.2f}  throughput x{reads['rps'] / health['rps']:.2f}")
            verdict = "meets" if reads["p99_ms"] < 50 else "misses"
            print(f"target p99 < 50 ms for GET /v1/runs/{{id}} at {args.clients} clients: {verdict} it "
                  f"({reads['p99_ms']:.1f} ms)")
        finally:
            process.terminate()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
