"""The REST API with the Celery executor: the API only enqueues, a real `nodeloom worker` runs the nodes,
and a run that waits for approval holds no worker, survives an API restart and goes on after the decision.

Uses the Redis at 127.0.0.1:6379 (database 13, a key prefix of its own) as broker and run store.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from marker_nodes import MODULE as MARKERS
from marker_nodes import markers, review_graph
from processes import ApiServer, cli_env, create_key, spawn, stop

from nodeloom.api.client import Client
from nodeloom.api.schemas import RunState

pytestmark = pytest.mark.slow

REDIS = "redis://127.0.0.1:6379/13"


class Deployment:
    """A Celery worker and an API server sharing a broker, a key prefix and an artifact folder."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.db_url = f"sqlite:///{home / 'nodeloom.db'}"
        self.env = cli_env(home, NODELOOM_BROKER_URL=REDIS, NODELOOM_KEY_PREFIX=f"nlapi{uuid.uuid4().hex[:8]}",
                           NODELOOM_ARTIFACTS=str(home / "artifacts"),
                           NODELOOM_NODE_MODULES=f"conftest,{MARKERS}")
        self.server = ApiServer(self.db_url, home, options=["--executor", "celery", "--node-module", MARKERS],
                                env=self.env, log="api.log")
        self.worker: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start_worker(self) -> None:
        self.worker = spawn(["worker", "--queues", "cpu,io", "--concurrency", "2", "--node-module", "conftest",
                             "--node-module", MARKERS, "--loglevel", "WARNING"], self.env, self.home / "worker.log")

    def start_api(self) -> None:
        self.server.start()

    def logs(self) -> str:
        """The ends of the API's and the worker's logs, for failure messages."""
        return "\n".join(f"--- {name}\n{(self.home / name).read_text(errors='replace')[-3000:]}"
                         for name in ("api.log", "worker.log") if (self.home / name).exists())

    def kill_api(self) -> None:
        self.server.kill()

    def stop(self) -> None:
        self.server.stop()
        stop(self.worker, timeout=15)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    import redis

    try:
        redis.Redis.from_url(REDIS).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not running on 127.0.0.1:6379")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    setup = Deployment(tmp_path_factory.mktemp("api-celery"))
    try:
        setup.start_worker()
        setup.start_api()
        yield setup
    finally:
        setup.stop()
        client = redis.Redis.from_url(REDIS)
        stale = list(client.scan_iter(f"{setup.env['NODELOOM_KEY_PREFIX']}*"))
        if stale:
            client.delete(*stale)


@pytest.fixture(scope="module")
def key(deployment: Deployment) -> str:
    return create_key(deployment.db_url, deployment.env, "alpha", "run")


def _sleeper(seconds: float, label: str) -> dict[str, Any]:
    return {
        "name": "sleeper",
        "nodes": {
            "first": {"type": "test.count", "inputs": {"label": f"{label}-first", "value": 1.5}},
            "nap": {"type": "test.sleep", "inputs": {"label": label, "seconds": seconds,
                                                     "value": {"node": "first", "output": "value"}}},
        },
        "outputs": {"value": {"node": "nap", "output": "value"}},
    }


def test_runs_execute_on_the_worker_and_queues_are_measured(deployment: Deployment, key: str) -> None:
    graph = {"name": "sum", "nodes": {"add": {"type": "math.add", "inputs": {"a": 2, "b": 3.5}}},
             "outputs": {"total": {"node": "add", "output": "result"}}}
    with Client(deployment.url, api_key=key) as api:
        run = api.wait(api.submit(graph, use_cache=False).id, timeout=120)  # the worker may still be starting
        assert run.status is RunState.SUCCEEDED and run.outputs == {"total": 5.5}, deployment.logs()
        assert run.nodes["add"].state == "done" and run.nodes["add"].attempts == 1
        assert api.health().executor == "celery"
        assert 'nodeloom_queue_depth{queue="nodeloom.cpu"}' in api.metrics()


def test_a_restarted_api_follows_runs_the_workers_kept_running(deployment: Deployment, key: str) -> None:
    with Client(deployment.url, api_key=key) as api:
        run = api.submit(_sleeper(3, f"celery-restart-{uuid.uuid4().hex[:6]}"), use_cache=False)
        deadline = time.monotonic() + 120
        while api.get_run(run.id).nodes["nap"].state != "running":
            assert time.monotonic() < deadline, f"the nap node never started\n{deployment.logs()}"
            time.sleep(0.05)
    deployment.kill_api()
    deployment.start_api()
    with Client(deployment.url, api_key=key) as api:
        finished = api.wait(run.id, timeout=120)
        assert finished.status is RunState.SUCCEEDED, deployment.logs()  # followed again, not interrupted
        assert finished.outputs == {"value": 1.5} and finished.resumes == 0
        seqs = [event.seq for event in api.events(run.id)]
        assert seqs == list(range(1, len(seqs) + 1))


def test_a_run_waits_for_approval_on_the_workers_survives_an_api_restart_and_goes_on_without_rerunning(
    deployment: Deployment, key: str, tmp_path: Path,
) -> None:
    with Client(deployment.url, api_key=key) as api:
        run = api.wait(api.submit(review_graph(tmp_path, side=True)).id, timeout=120)
        assert run.status is RunState.WAITING, f"{run.errors}\n{deployment.logs()}"
        assert {node: info.state for node, info in run.nodes.items()} == {
            "count": "done", "draft": "done", "approve": "waiting", "final": "pending", "side": "done"}
        waiting = [event for event in api.events(run.id) if event.kind == "node.waiting"]
        assert [(event.node, event.data["review"]) for event in waiting] == [
            ("approve", {"kind": "text", "value": "Buy 3.0 now"})]
    deployment.kill_api()
    deployment.start_api()
    with Client(deployment.url, api_key=key) as api:
        assert api.get_run(run.id).status is RunState.WAITING
        api.approve(run.id, "approve", value="Buy three now")
        done = api.wait(run.id, timeout=120)
        assert done.status is RunState.SUCCEEDED, f"{done.errors}\n{deployment.logs()}"
        assert done.outputs == {"text": "Buy three now!", "side": 2.0}
        assert {node: info.state for node, info in done.nodes.items()} == {
            "count": "cached", "draft": "cached", "approve": "done", "final": "done", "side": "cached"}
    assert len(markers(tmp_path, "count")) == 1 and len(markers(tmp_path, "side")) == 1  # nothing ran again


def test_a_rejection_on_the_workers_fails_the_run_with_the_reason(
    deployment: Deployment, key: str, tmp_path: Path,
) -> None:
    with Client(deployment.url, api_key=key) as api:
        run = api.wait(api.submit(review_graph(tmp_path, side=True)).id, timeout=120)
        assert run.status is RunState.WAITING, f"{run.errors}\n{deployment.logs()}"
        api.reject(run.id, "approve", "too pushy")
        done = api.wait(run.id, timeout=120)
        assert done.status is RunState.FAILED
        assert [(error["node"], error["code"], error["reason"]) for error in done.errors] == [
            ("approve", "approval_rejected", "too pushy")]
        assert done.nodes["final"].state == "skipped" and done.outputs == {"side": 2.0}
    assert len(markers(tmp_path, "count")) == 1
