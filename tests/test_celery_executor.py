"""The Celery executor against a real Redis and real `celery worker` processes started here.

A session fixture starts a test-owned `redis-server` on a free port and a prefork worker
with two processes on the nodeloom queues; tests that kill workers start their own on a
queue of their own. Test nodes live in a module written to a temporary folder that both
this process and the workers import; they leave a marker file per execution, so tests
count executions across processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from nodeloom.core import EventKind, Float, Graph, NodeState, RunEvent, RunStatus
from nodeloom.executors import LocalExecutor
from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry

pytestmark = pytest.mark.slow

NODE_MODULE = "nodeloom_celery_test_nodes"
NODES = '''
"""Nodes for the Celery executor tests: each execution leaves a marker file in `folder`."""

import os
import signal
import time
from pathlib import Path

from nodeloom.core import NodeContext, RetryPolicy, node
from nodeloom.core.errors import NodeExecutionError


def _mark(folder: str, label: str) -> None:
    Path(folder, f"{label}.{os.getpid()}.{time.time_ns()}").touch()


@node("ctest.mark", output="value")
def mark(folder: str, label: str, value: float = 0.0, seconds: float = 0.0) -> float:
    """Sleep `seconds`, leave a marker, return `value`."""
    time.sleep(seconds)
    _mark(folder, label)
    return value


@node("ctest.fail", output="value")
def fail(message: str) -> float:
    """Always fail, for good."""
    raise NodeExecutionError(message, retryable=False)


@node("ctest.flaky", output="value", retry=RetryPolicy(max_attempts=3, initial_backoff=0.05))
def flaky(folder: str, label: str, failures: int) -> int:
    """Fail (retryably) the first `failures` times, then return the number of tries."""
    _mark(folder, label)
    tries = len(list(Path(folder).glob(label + ".*")))
    if tries <= failures:
        raise NodeExecutionError(f"try {tries} fails", retryable=True)
    return tries


@node("ctest.wait", output="value")
def wait(ctx: NodeContext, folder: str, label: str, seconds: float) -> float:
    """Report progress every 50 ms for `seconds`; markers at start and at the end."""
    _mark(folder, label + "-start")
    steps = max(1, int(seconds / 0.05))
    for step in range(steps):
        ctx.progress(step, steps, "waiting")
        time.sleep(0.05)
    _mark(folder, label + "-end")
    return seconds


@node("ctest.crash", output="value")
def crash(folder: str, label: str) -> float:
    """Kill the process running it, every time."""
    _mark(folder, label)
    os.kill(os.getpid(), signal.SIGKILL)
    return 0.0
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def markers(folder: Path, label: str) -> list[Path]:
    return sorted(folder.glob(f"{label}.*"))


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Workers:
    """`celery worker` processes started by the tests, each in its own process group."""

    def __init__(self, config: CeleryConfig, module_dir: Path, logs: Path) -> None:
        self.config = config
        self.env = {**os.environ, **config.to_env(),
                    "PYTHONPATH": os.pathsep.join([str(module_dir), os.environ.get("PYTHONPATH", "")])}
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, queues: str, concurrency: int = 2, pool: str = "prefork") -> subprocess.Popen[bytes]:
        log = self.logs / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "nodeloom.executors.celery.app", "worker",
            "-n", f"{name}@%h", "-Q", queues, "-c", str(concurrency), "-P", pool,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.started.append(process)
        wait_for(lambda: b" ready." in log.read_bytes() or process.poll() is not None, 60, f"worker {name}")
        if process.poll() is not None:
            raise AssertionError(f"worker {name} exited:\n{log.read_text()}")
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker and its pool processes at once."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(process)
        else:  # the main process is gone; its pool processes may not be
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for process in self.started:
            self.stop(process)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        wait_for(lambda: _pings(client), 10, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("nodes")
    (folder / f"{NODE_MODULE}.py").write_text(textwrap.dedent(NODES))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture(scope="session")
def config(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> CeleryConfig:
    return CeleryConfig(
        broker_url=redis_url,
        artifacts=tmp_path_factory.mktemp("artifacts"),
        node_modules=(NODE_MODULE,),
        visibility_timeout=3.0,
        restore_interval=0.5,
        max_deliveries=3,
        key_prefix="nltest",
    )


@pytest.fixture(scope="session")
def workers(config: CeleryConfig, module_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    fleet = Workers(config, module_dir, tmp_path_factory.mktemp("worker-logs"))
    try:
        fleet.start("main", "nodeloom.cpu,nodeloom.io,nodeloom.gpu", concurrency=2)
        yield fleet
    finally:
        fleet.stop_all()


@pytest.fixture(scope="session")
def registry(module_dir: Path) -> NodeRegistry:
    found = builtin_registry()
    found.register_module(NODE_MODULE)
    return found


@pytest.fixture
def executor(registry: NodeRegistry, config: CeleryConfig, workers: Workers) -> Iterator[CeleryExecutor]:
    with CeleryExecutor(registry, config=config) as running:
        yield running


def arithmetic_and_text_graph() -> Graph:
    g = Graph("sums")
    x = g.input("x", Float)
    doubled = g.add("math.multiply", "double", a=x, b=2)
    plus = g.add("math.add", "plus", a=doubled["result"], b=0.5)
    total = g.add("math.sum", "total", a=doubled["result"], b=plus["result"], c=1)
    line = g.add("text.template", "line", template="{{ a }} and {{ b }}", a=plus["result"], b=total["result"])
    g.output("total", total["result"])
    g.output("line", line["text"])
    return g


def test_builtin_graph_gives_the_same_outputs_as_the_local_executor(
    executor: CeleryExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    graph = arithmetic_and_text_graph()
    result = executor.run(graph, {"x": 4}, use_cache=False)
    with LocalExecutor(registry, artifacts=tmp_path / "a") as local:
        expected = local.run(graph, {"x": 4})
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs == expected.outputs == {"total": 17.5, "line": "8.5 and 17.5"}
    assert {n: r.state for n, r in result.nodes.items()} == {n: r.state for n, r in expected.nodes.items()}
    assert all(record.attempts == 1 and record.duration is not None for record in result.nodes.values())


def test_fan_in_node_runs_once_when_its_parents_finish_together(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    parents = {f"p{i}": g.add("ctest.mark", f"p{i}", folder=str(tmp_path), label=f"p{i}", value=i, seconds=0.2)
               for i in range(6)}
    total = g.add("math.sum", "total", **{name: handle["value"] for name, handle in parents.items()})
    child = g.add("ctest.mark", "child", folder=str(tmp_path), label="child", value=total["result"])
    g.output("value", child["value"])
    for _ in range(3):
        handle = executor.submit(g, use_cache=False)
        result = handle.result(timeout=30)
        assert result.ok and result.outputs == {"value": 15.0}
        started = [e.node for e in handle.events() if e.kind is EventKind.NODE_STARTED]
        assert sorted(started) == sorted([*parents, "total", "child"])
    assert len(markers(tmp_path, "child")) == 3
    assert all(len(markers(tmp_path, f"p{i}")) == 3 for i in range(6))


def test_failing_node_fails_the_run_and_skips_its_descendants(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    bad = g.add("ctest.fail", "bad", message="no such thing")
    after = g.add("math.add", "after", a=bad["value"], b=1)
    last = g.add("ctest.mark", "last", folder=str(tmp_path), label="last", value=after["result"])
    fine = g.add("ctest.mark", "fine", folder=str(tmp_path), label="fine", value=2)
    g.output("last", last["value"])
    g.output("fine", fine["value"])
    result = executor.run(g)
    assert result.status is RunStatus.FAILED
    states = {n: r.state for n, r in result.nodes.items()}
    assert states == {"bad": NodeState.FAILED, "after": NodeState.SKIPPED, "last": NodeState.SKIPPED,
                      "fine": NodeState.DONE}
    assert result.nodes["bad"].error == {"code": "node_failed", "message": "no such thing"}
    assert result.outputs == {"fine": 2.0}
    assert markers(tmp_path, "last") == []


def test_events_reach_the_callback_and_the_event_stream_in_order(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    first = g.add("ctest.wait", "first", folder=str(tmp_path), label="first", seconds=0.2)
    g.output("value", g.add("math.add", "second", a=first["value"], b=1)["result"])
    seen: list[RunEvent] = []
    handle = executor.submit(g, on_event=seen.append)
    streamed = list(handle.events(timeout=30))
    assert handle.result(timeout=5).ok
    wait_for(lambda: bool(seen) and seen[-1].kind is EventKind.RUN_FINISHED, 5, "the callback's last event")
    assert [e.seq for e in streamed] == list(range(1, len(streamed) + 1))
    assert seen == streamed
    kinds = [(e.kind, e.node) for e in streamed]
    assert kinds[0] == (EventKind.RUN_STARTED, None) and kinds[-1] == (EventKind.RUN_FINISHED, None)
    assert streamed[-1].data == {"status": "succeeded"}
    order = [k for k in kinds if k[0] in (EventKind.NODE_STARTED, EventKind.NODE_DONE)]
    assert order == [(EventKind.NODE_STARTED, "first"), (EventKind.NODE_DONE, "first"),
                     (EventKind.NODE_STARTED, "second"), (EventKind.NODE_DONE, "second")]
    progress = [e for e in streamed if e.kind is EventKind.NODE_PROGRESS]
    assert progress and progress[0].data == {"done": 0, "total": 4, "message": "waiting"}


def test_retry_policy_runs_a_flaky_node_again(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    g.output("tries", g.add("ctest.flaky", "flaky", folder=str(tmp_path), label="flaky", failures=2)["value"])
    handle = executor.submit(g)
    result = handle.result(timeout=30)
    assert result.ok and result.outputs == {"tries": 3}
    assert result.nodes["flaky"].attempts == 3
    retrying = [e.data["attempt"] for e in handle.events() if e.kind is EventKind.NODE_RETRYING]
    assert retrying == [1, 2]


def test_cancel_stops_the_running_node_and_its_pending_successors(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    slow = g.add("ctest.wait", "slow", folder=str(tmp_path), label="slow", seconds=5)
    after = g.add("ctest.mark", "after", folder=str(tmp_path), label="after", value=slow["value"])
    g.output("value", after["value"])
    handle = executor.submit(g)
    wait_for(lambda: bool(markers(tmp_path, "slow-start")), 20, "the slow node to start")
    assert handle.cancel() is True
    result = handle.result(timeout=10)
    assert result.status is RunStatus.CANCELLED
    assert {n: r.state for n, r in result.nodes.items()} == {"slow": NodeState.CANCELLED,
                                                              "after": NodeState.CANCELLED}
    assert handle.cancel() is False
    time.sleep(0.5)  # the node stops at its next progress check, 50 ms away
    assert markers(tmp_path, "slow-end") == [] and markers(tmp_path, "after") == []
    # the worker is free again: a new run finishes at once
    assert executor.run(arithmetic_and_text_graph(), {"x": 1}).ok


def test_run_finishes_on_another_worker_after_its_worker_is_killed(
    executor: CeleryExecutor, workers: Workers, tmp_path: Path
) -> None:
    g = Graph()
    first = g.add("ctest.mark", "first", folder=str(tmp_path), label="first", value=1)
    slow = g.add("ctest.wait", "slow", folder=str(tmp_path), label="slow", seconds=1.0)
    g.configure("slow", queue="ctest.doomed")
    g.output("sum", g.add("math.add", "sum", a=first["value"], b=slow["value"])["result"])
    doomed = workers.start("doomed", "ctest.doomed", concurrency=1, pool="solo")
    handle = executor.submit(g)
    wait_for(lambda: bool(markers(tmp_path, "slow-start")), 20, "the slow node to start")
    workers.kill(doomed)
    workers.start("rescuer", "ctest.doomed", concurrency=1, pool="solo")
    result = handle.result(timeout=30)
    assert result.ok and result.outputs == {"sum": 2.0}
    assert len(markers(tmp_path, "first")) == 1  # finished nodes are not executed again
    assert len(markers(tmp_path, "slow-start")) == 2 and len(markers(tmp_path, "slow-end")) == 1
    assert result.nodes["slow"].attempts == 1


def test_node_that_kills_its_worker_every_time_ends_in_a_dead_letter(
    executor: CeleryExecutor, config: CeleryConfig, tmp_path: Path
) -> None:
    g = Graph()
    crash = g.add("ctest.crash", "crash", folder=str(tmp_path), label="crash")
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


def test_node_past_its_timeout_fails_with_a_timeout_error(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    g.output("value", g.add("ctest.wait", "slow", folder=str(tmp_path), label="slow", seconds=3)["value"])
    g.configure("slow", timeout=0.5)
    started = time.monotonic()
    result = executor.run(g)
    assert result.status is RunStatus.FAILED and time.monotonic() - started < 2.5
    assert result.nodes["slow"].error is not None and result.nodes["slow"].error["code"] == "node_timeout"
    assert markers(tmp_path, "slow-end") == []


def test_rerun_executes_only_what_changed(executor: CeleryExecutor, tmp_path: Path) -> None:
    g = Graph()
    a = g.input("a", Float, default=1.0)
    left = g.add("ctest.mark", "left", folder=str(tmp_path), label="left", value=a)
    right = g.add("ctest.mark", "right", folder=str(tmp_path), label="right", value=2)
    g.output("sum", g.add("math.add", "sum", a=left["value"], b=right["value"])["result"])
    assert executor.run(g).outputs == {"sum": 3.0}
    again = executor.run(g, {"a": 5.0})
    assert again.outputs == {"sum": 7.0}
    assert {n: r.state for n, r in again.nodes.items()} == {"left": NodeState.DONE, "right": NodeState.CACHED,
                                                             "sum": NodeState.DONE}
    assert len(markers(tmp_path, "left")) == 2 and len(markers(tmp_path, "right")) == 1


def test_nodeloom_worker_command_starts_a_worker_for_its_queues(
    executor: CeleryExecutor, config: CeleryConfig, module_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, **config.to_env(),
           "PYTHONPATH": os.pathsep.join([str(module_dir), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "cli-worker.log"
    nodeloom = Path(sys.executable).with_name("nodeloom")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(nodeloom), "worker", "--queues", "cli-test", "--concurrency", "1", "--pool", "solo",
             "--broker", config.broker_url, "--artifacts", str(config.artifacts), "--node-module", NODE_MODULE,
             "--name", "cli@%h"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for(lambda: b" ready." in log.read_bytes() or process.poll() is not None, 60, "nodeloom worker")
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
