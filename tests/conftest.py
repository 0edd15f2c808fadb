"""Shared fixtures: a registry with the built-in packs plus nodes written for the tests,
and a local executor with a temporary artifact store.

The test nodes are real nodes (declared with `@node`, run by the real executor); they
record what happened (start and end times, thread, device) so tests can assert on
concurrency, retries and caching by observing executions rather than by timing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import pytest
from netutil import free_port, wait_for_server

from nodeloom.core import NodeContext, Range, RetryPolicy, node
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry

if TYPE_CHECKING:
    from nodeloom.executors.celery import CeleryConfig


class Journal:
    """A thread-safe log of node executions: (name, start, end, thread, device)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, float, float, str, str | None]] = []
        self.attempts: dict[str, int] = {}

    def record(self, name: str, start: float, end: float, device: str | None = None) -> None:
        with self.lock:
            self.entries.append((name, start, end, threading.current_thread().name, device))

    def count(self, name: str) -> int:
        with self.lock:
            return sum(1 for entry in self.entries if entry[0] == name)

    def bump(self, key: str) -> int:
        with self.lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            return self.attempts[key]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.attempts.clear()


JOURNAL = Journal()


@node("test.sleep", output="value")
def sleep_node(label: str, seconds: Annotated[float, Range(0, 30)] = 0.2, value: float = 0.0) -> float:
    """Sleep, then return `value`; records its execution interval."""
    start = time.monotonic()
    time.sleep(seconds)
    JOURNAL.record(label, start, time.monotonic())
    return value


@node("test.gpu_sleep", resources="gpu", output="value")
def gpu_sleep_node(ctx: NodeContext, label: str, seconds: float = 0.2) -> float:
    """A node on the GPU lane; records the device it ran on."""
    start = time.monotonic()
    time.sleep(seconds)
    JOURNAL.record(label, start, time.monotonic(), ctx.device)
    return seconds


@node("test.count", output="value")
def count_node(label: str, value: float) -> float:
    """Return `value`; counts executions per label."""
    JOURNAL.record(label, time.monotonic(), time.monotonic())
    return value


@node("test.flaky", retry=RetryPolicy(max_attempts=3, initial_backoff=0.05, jitter=0.0), output="value")
def flaky_node(key: str, failures: int, value: float = 1.0) -> float:
    """Fail the first `failures` tries (per key), then return `value`."""
    attempt = JOURNAL.bump(key)
    if attempt <= failures:
        raise ConnectionError(f"transient failure {attempt}")
    return value


@node("test.fail", output="value")
def fail_node(message: str = "boom") -> float:
    """Always raises."""
    raise ValueError(message)


@node("test.steps", output="value")
def steps_node(ctx: NodeContext, label: str, steps: int = 10, seconds: float = 0.05) -> int:
    """Report progress for each step, stopping early if cancelled."""
    done = 0
    for step in range(steps):
        time.sleep(seconds)
        ctx.progress(step + 1, steps, f"step {step + 1}")
        done = step + 1
    JOURNAL.record(label, 0.0, 0.0)
    return done


@node("test.stubborn", output="value")
def stubborn_node(seconds: float = 1.0) -> float:
    """Sleeps without checking for cancellation (like a blocking library call)."""
    time.sleep(seconds)
    return seconds


@node("test.async_echo", resources="io", output="text")
async def async_echo(text: str, seconds: float = 0.05) -> str:
    """An async node."""
    await asyncio.sleep(seconds)
    return text


@node("test.random", deterministic=False, output="value")
def random_node(label: str, seed: int | None = None) -> float:
    """Non-deterministic unless seeded."""
    JOURNAL.record(label, 0.0, 0.0)
    import random

    return random.Random(seed).random()


class Split(NamedTuple):
    low: float
    high: float


@node("test.split")
def split_node(value: float) -> Split:
    """Two outputs from one node."""
    return Split(low=value - 1, high=value + 1)


@node("test.bad_output", output="value")
def bad_output_node() -> float:
    """Declares Float but returns text."""
    return "not a number"  # type: ignore[return-value]


TEST_NODES = [
    sleep_node, gpu_sleep_node, count_node, flaky_node, fail_node, steps_node, stubborn_node,
    async_echo, random_node, split_node, bad_output_node,
]


@pytest.fixture
def journal() -> Iterator[Journal]:
    JOURNAL.clear()
    yield JOURNAL
    JOURNAL.clear()


@pytest.fixture(scope="session")
def registry() -> NodeRegistry:
    return builtin_registry().extended(TEST_NODES)


@pytest.fixture
def executor(registry: NodeRegistry, tmp_path: Path) -> Iterator[LocalExecutor]:
    with LocalExecutor(registry, artifacts=tmp_path / "artifacts", gpu_devices=["cpu"]) as engine:
        yield engine


@pytest.fixture(scope="session")
def celery_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryConfig]:
    """A test-owned `redis-server` and a real `celery worker` (two pool processes, every queue) that
    knows the marker nodes (marker_nodes.py); shared by the executor suites that run on Celery."""
    from marker_nodes import FOLDER, MODULE

    from nodeloom.executors.celery import CeleryConfig
    from nodeloom.testing import RedisServer, WorkerFleet

    with RedisServer(tmp_path_factory.mktemp("conformance-redis")) as server:
        config = CeleryConfig(broker_url=server.url, artifacts=tmp_path_factory.mktemp("conformance-artifacts"),
                              node_modules=(MODULE,), key_prefix="nlconf")
        with WorkerFleet(config, tmp_path_factory.mktemp("conformance-logs"), [FOLDER]) as fleet:
            fleet.start("conformance", "nodeloom.cpu,nodeloom.io,nodeloom.gpu", concurrency=2)
            yield config


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the default artifact store of code under test out of the real home folder."""
    monkeypatch.setenv("NODELOOM_HOME", str(tmp_path / "home"))


REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# -- an OpenAI-compatible server process (the stand-in for a hosted LLM API) --------------

#: the API key the test server requires, so tests also prove the key is sent
SERVER_KEY = "nl-test-key-7f3a9c2e51b84d06"


@pytest.fixture
def openai_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The `llama_server` key, set where the openai provider reads it (`NODELOOM_OPENAI_API_KEY`)."""
    monkeypatch.setenv("NODELOOM_OPENAI_API_KEY", SERVER_KEY)
    return SERVER_KEY


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the bundled GGUF, requiring SERVER_KEY; yields its base URL."""
    from nodeloom.node_registry.llm.local import bundled_model_path

    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path()),
        "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--api_key", SERVER_KEY,
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for_server(process, f"{base_url}/models", 60, "llama_cpp.server", log=log_path,
                            headers={"Authorization": f"Bearer {SERVER_KEY}"})
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
