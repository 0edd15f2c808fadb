"""The Celery executor against a real Redis and real `celery worker` processes started here.

Behaviours every executor shares (outputs, failures, events, retries, cancellation, timeouts,
caching) are in test_executor_conformance.py; these are the faults and load only a distributed
executor meets. A session fixture starts a test-owned `redis-server` on a free port and a prefork worker
with two processes on the nodeloom queues; tests that kill workers start their own on a
queue of their own. The test nodes are in marker_nodes.py, which this process and the
workers import; they leave a marker file per execution, so tests count executions across
processes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from marker_nodes import FOLDER, MODULE, arithmetic_and_text_graph, markers

from nodeloom.core import EventKind, Float, Graph, NodeState, RunStatus
from nodeloom.core.errors import RunNotFoundError
from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry
from nodeloom.testing import RedisServer, WorkerFleet, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def config(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> CeleryConfig:
    return CeleryConfig(
        broker_url=redis_url,
        artifacts=tmp_path_factory.mktemp("artifacts"),
        node_modules=(MODULE,),
        visibility_timeout=3.0,
        restore_interval=0.5,
        max_deliveries=3,
        key_prefix="nltest",
    )


@pytest.fixture(scope="session")
def workers(config: CeleryConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(config, tmp_path_factory.mktemp("worker-logs"), [FOLDER])
    try:
        fleet.start("main", "nodeloom.cpu,nodeloom.io,nodeloom.gpu", concurrency=2)
        yield fleet
    finally:
        fleet.stop_all()


@pytest.fixture(scope="session")
def registry() -> NodeRegistry:
    found = builtin_registry()
    found.register_module(MODULE)
    return found


@pytest.fixture
def executor(registry: NodeRegistry, config: CeleryConfig, workers: WorkerFleet) -> Iterator[CeleryExecutor]:
    with CeleryExecutor(registry, config=config) as running:
        yield running


def test_fan_in_node_runs_once_when_its_parents_finish_together(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    parents = {f"p{i}": g.add("marker.mark", f"p{i}", folder=str(tmp_path), label=f"p{i}", value=i, seconds=0.2)
               for i in range(6)}
    total = g.add("math.sum", "total", **{name: handle["value"] for name, handle in parents.items()})
    child = g.add("marker.mark", "child", folder=str(tmp_path), label="child", value=total["result"])
    g.output("value", child["value"])
    for _ in range(3):
        handle = executor.submit(g, use_cache=False)
        result = handle.result(timeout=30)
        assert result.ok and result.outputs == {"value": 15.0}
        started = [e.node for e in handle.events() if e.kind is EventKind.NODE_STARTED]
        assert sorted(started) == sorted([*parents, "total", "child"])
    assert len(markers(tmp_path, "child")) == 3
    assert all(len(markers(tmp_path, f"p{i}")) == 3 for i in range(6))


def test_run_finishes_on_another_worker_after_its_worker_is_killed(
    executor: CeleryExecutor, workers: WorkerFleet, tmp_path: Path
) -> None:
    g = Graph()
    first = g.add("marker.mark", "first", folder=str(tmp_path), label="first", value=1)
    slow = g.add("marker.wait", "slow", folder=str(tmp_path), label="slow", seconds=1.0)
    g.configure("slow", queue="marker.doomed")
    g.output("sum", g.add("math.add", "sum", a=first["value"], b=slow["value"])["result"])
    doomed = workers.start("doomed", "marker.doomed", concurrency=1, pool="solo")
    handle = executor.submit(g)
    wait_until(lambda: bool(markers(tmp_path, "slow-start")), 20, "the slow node to start")
    workers.kill(doomed)
    workers.start("rescuer", "marker.doomed", concurrency=1, pool="solo")
    result = handle.result(timeout=30)
    assert result.ok and result.outputs == {"sum": 2.0}
    assert len(markers(tmp_path, "first")) == 1  # finished nodes are not executed again
    assert len(markers(tmp_path, "slow-start")) == 2 and len(markers(tmp_path, "slow-end")) == 1
    assert result.nodes["slow"].attempts == 1


def test_node_that_kills_its_worker_every_time_ends_in_a_dead_letter(
    executor: CeleryExecutor, config: CeleryConfig, tmp_path: Path
) -> None:
    g = Graph()
    crash = g.add("marker.crash", "crash", folder=str(tmp_path), label="crash")
    g.output("value", g.add("math.add", "after", a=crash["value"], b=1)["result"])
    handle = executor.submit(g)
    result = handle.result(timeout=40)
    assert result.status is RunStatus.FAILED
    assert result.nodes["crash"].error is not None and result.nodes["crash"].error["code"] == "node_lost"
    assert result.nodes["after"].state is NodeState.SKIPPED
    assert len(markers(tmp_path, "crash")) == config.max_deliveries
    letters = [d for d in executor.deadletters() if d["run_id"] == handle.run_id]
    assert [(d["node"], d["error"]["deliveries"]) for d in letters] == [("crash", config.max_deliveries)]
    # the fleet still runs other graphs
    assert executor.run(arithmetic_and_text_graph(), {"x": 2}).ok


def test_nodeloom_worker_command_starts_a_worker_for_its_queues(
    executor: CeleryExecutor, config: CeleryConfig, tmp_path: Path
) -> None:
    env = {**os.environ, **config.to_env(),
           "PYTHONPATH": os.pathsep.join([str(FOLDER), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "cli-worker.log"
    nodeloom = Path(sys.executable).with_name("nodeloom")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(nodeloom), "worker", "--queues", "cli-test", "--concurrency", "1", "--pool", "solo",
             "--broker", config.broker_url, "--artifacts", str(config.artifacts), "--node-module", MODULE,
             "--name", "cli@%h"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_until(lambda: b" ready." in log.read_bytes() or process.poll() is not None, 60, "nodeloom worker")
        assert process.poll() is None, log.read_text()
        assert "nodeloom.cli-test" in log.read_text()
        g = Graph()
        # only the worker started by the command takes this queue: the run ends only if it works
        added = g.add("math.add", "on_cli_queue", a=2, b=3).configure(queue="nodeloom.cli-test")
        g.output("sum", added["result"])
        result = executor.submit(g, use_cache=False).result(timeout=60)
        assert result.ok and result.outputs == {"sum": 5.0}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def test_many_runs_from_several_threads_each_finish_once_with_the_right_outputs(executor: CeleryExecutor) -> None:
    g = Graph()
    value: Any = g.input("x", Float)
    for index in range(10):
        value = g.add("math.add", f"n{index}", a=value, b=1)["result"]
    g.output("y", value)
    handles: dict[int, Any] = {}
    lock = threading.Lock()

    def submit(first: int) -> None:
        for x in range(first, first + 50):
            handle = executor.submit(g, {"x": float(x)}, use_cache=False)
            with lock:
                handles[x] = handle

    threads = [threading.Thread(target=submit, args=(k * 50,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = {x: handle.result(timeout=300) for x, handle in handles.items()}
    assert len({handle.run_id for handle in handles.values()}) == 200
    assert all(result.ok and result.outputs == {"y": x + 10.0} for x, result in results.items())
    assert all(record.attempts == 1 for result in results.values() for record in result.nodes.values())


def test_run_resumes_and_finishes_after_redis_restarts_mid_run(
    registry: NodeRegistry, tmp_path: Path
) -> None:
    # a Redis of its own, append-only with fsync on every write, killed and started again mid-run
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    config = CeleryConfig(broker_url=server.url, artifacts=tmp_path / "artifacts", node_modules=(MODULE,),
                          visibility_timeout=3.0, restore_interval=0.5, key_prefix="nlrestart")
    fleet = WorkerFleet(config, tmp_path / "logs", [FOLDER])
    try:
        fleet.start("restart", "nodeloom.cpu,nodeloom.io", concurrency=2)
        g = Graph()
        value: Any = g.input("x", Float)
        for index in range(6):
            marked = g.add("marker.mark", f"m{index}", folder=str(tmp_path), label=f"m{index}", value=value,
                           seconds=0.3)
            value = g.add("math.add", f"a{index}", a=marked["value"], b=1)["result"]
        g.output("y", value)
        with CeleryExecutor(registry, config=config) as executor:
            handle = executor.submit(g, {"x": 10.0}, use_cache=False)
            wait_until(lambda: bool(markers(tmp_path, "m2")), 30, "the third node to finish")
            server.kill()
            time.sleep(1.0)
            server.start()
            result = handle.result(timeout=40)
            assert result.ok and result.outputs == {"y": 16.0}
            assert all(record.state is NodeState.DONE for record in result.nodes.values())
            # nodes that finished before the restart were not executed again
            assert len(markers(tmp_path, "m0")) == 1 and len(markers(tmp_path, "m1")) == 1
            events = list(handle.events(timeout=10))
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            done = sorted(e.node for e in events if e.kind is EventKind.NODE_DONE if e.node is not None)
            assert done == sorted(result.nodes)
            # the fleet keeps working on the restarted server
            assert executor.run(arithmetic_and_text_graph(), {"x": 4}, use_cache=False).outputs["total"] == 17.5
    finally:
        fleet.stop_all()
        server.stop()


def test_a_second_message_for_a_running_node_does_not_run_it_again(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    slow = g.add("marker.wait", "slow", folder=str(tmp_path), label="slow", seconds=1.0)
    g.output("value", g.add("math.add", "after", a=slow["value"], b=1)["result"])
    handle = executor.submit(g, use_cache=False)
    wait_until(lambda: bool(markers(tmp_path, "slow-start")), 20, "the slow node to start")
    # what a re-sent outbox entry looks like to a worker: the same task, not a broker redelivery
    executor.app.send_task("nodeloom.execute_node", args=[handle.run_id, "slow", 1, None], queue="nodeloom.cpu")
    result = handle.result(timeout=30)
    assert result.ok and result.outputs == {"value": 2.0}
    assert len(markers(tmp_path, "slow-start")) == 1 and result.nodes["slow"].attempts == 1
    started = [e.node for e in handle.events() if e.kind is EventKind.NODE_STARTED]
    assert started == ["slow", "after"]


def test_a_retry_delay_longer_than_the_visibility_timeout_runs_the_retry_once(
    executor: CeleryExecutor, config: CeleryConfig, workers: WorkerFleet, tmp_path: Path
) -> None:
    assert config.visibility_timeout < 4.0  # the node's retry waits 4 s
    g = Graph()
    g.output("tries", g.add("marker.slow_retry", "node", folder=str(tmp_path), label="node")["value"])
    started = time.monotonic()
    handle = executor.submit(g, use_cache=False)
    result = handle.result(timeout=30)
    assert result.ok and result.outputs == {"tries": 2} and time.monotonic() - started >= 4.0
    assert result.nodes["node"].attempts == 2
    time.sleep(config.visibility_timeout)  # a copy delivered again would have arrived by now
    assert len(markers(tmp_path, "node")) == 2
    # the delay was waited out in hops shorter than the visibility timeout: the broker never had
    # to deliver the retry's message a second time (a second copy would end as 'skip')
    log = (workers.logs / "main.log").read_text()
    outcomes = re.findall(rf"{handle.run_id}\.node\.2\] succeeded in [0-9.e-]+s: '(\w+)'", log)
    assert outcomes[-1] == "done" and set(outcomes[:-1]) <= {"deferred"} and len(outcomes) >= 2


def test_finished_runs_expire_from_redis(registry: NodeRegistry, config: CeleryConfig, workers: WorkerFleet) -> None:
    with CeleryExecutor(registry, config=replace(config, run_ttl=1.0)) as short_lived:
        handle = short_lived.submit(arithmetic_and_text_graph(), {"x": 1}, use_cache=False)
        assert handle.result(timeout=30).ok
        keys = short_lived.store.client.keys(f"{short_lived.store.run_key(handle.run_id)}*")
        assert len(keys) > 5 and all(0 < short_lived.store.client.ttl(key) <= 1 for key in keys)
        wait_until(lambda: not short_lived.store.client.keys(f"{short_lived.store.run_key(handle.run_id)}*"), 5,
                 "the run's keys to expire")
        with pytest.raises(RunNotFoundError):
            handle.result(timeout=1)
