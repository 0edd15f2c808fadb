"""What the pool executor does beyond the executor protocol (tests/test_executor_conformance.py):
worker processes that die, a cache every worker shares, a queue of runs waiting for a worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from marker_nodes import MODULE, markers

from nodeloom.core import EventKind, Graph, NodeState, RunStatus
from nodeloom.executors.pool import PoolExecutor, WorkerStartError
from nodeloom.node_registry import NodeRegistry, builtin_registry
from nodeloom.testing import wait_until


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    found = builtin_registry()
    found.register_module(MODULE)
    return found


@pytest.fixture(scope="module")
def pool(registry: NodeRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolExecutor]:
    with PoolExecutor(registry, node_modules=(MODULE,), workers=2,
                      artifacts=tmp_path_factory.mktemp("pool-artifacts")) as executor:
        yield executor


def test_nodes_run_in_worker_processes(pool: PoolExecutor, tmp_path: Path) -> None:
    g = Graph()
    g.output("value", g.add("marker.mark", "mark", folder=str(tmp_path), label="mark", value=1)["value"])
    assert pool.run(g, use_cache=False).ok
    (marker,) = markers(tmp_path, "mark")
    pid = int(marker.name.split(".")[1])
    assert pid != os.getpid() and pid in pool.worker_pids()


def test_a_worker_that_dies_fails_its_run_and_is_replaced(pool: PoolExecutor, tmp_path: Path) -> None:
    before = set(pool.worker_pids())
    g = Graph()
    crash = g.add("marker.crash", "crash", folder=str(tmp_path), label="crash")
    g.output("after", g.add("math.add", "after", a=crash["value"], b=1)["result"])
    handle = pool.submit(g, use_cache=False)
    result = handle.result(timeout=30)
    assert result.status is RunStatus.FAILED
    assert result.nodes["crash"].state is NodeState.FAILED and result.nodes["after"].state is NodeState.SKIPPED
    assert result.nodes["crash"].error is not None and result.nodes["crash"].error["code"] == "worker_lost"
    assert [e.kind for e in handle.events()][-1] is EventKind.RUN_FINISHED
    (marker,) = markers(tmp_path, "crash")
    dead = int(marker.name.split(".")[1])
    wait_until(lambda: len(pool.worker_pids()) == 2 and dead not in pool.worker_pids(), 60, "a new worker")
    assert len(set(pool.worker_pids()) - before) == 1
    fine = Graph()
    fine.output("value", fine.add("math.add", "plus", a=1, b=2)["result"])
    assert pool.run(fine, use_cache=False).outputs == {"value": 3.0}


def test_a_result_from_one_worker_is_a_cache_hit_on_another(pool: PoolExecutor, tmp_path: Path) -> None:
    g = Graph()
    g.output("value", g.add("marker.mark", "left", folder=str(tmp_path), label="left", value=4)["value"])
    assert pool.run(g).ok
    # hold one worker with a slow run, so the same graph goes to the other one
    slow = Graph()
    slow.output("value", slow.add("marker.wait", "slow", folder=str(tmp_path), label="slow", seconds=1)["value"])
    busy = pool.submit(slow, use_cache=False)
    wait_until(lambda: bool(markers(tmp_path, "slow-start")), 30, "the slow node to start")
    again = pool.run(g)
    assert again.nodes["left"].state is NodeState.CACHED and again.outputs == {"value": 4.0}
    assert len(markers(tmp_path, "left")) == 1
    assert busy.result(timeout=30).ok


def test_a_queued_run_can_be_cancelled_before_any_worker_takes_it(pool: PoolExecutor, tmp_path: Path) -> None:
    holds = []
    for index in range(2):
        g = Graph()
        g.output("value", g.add("marker.wait", "slow", folder=str(tmp_path), label=f"hold{index}", seconds=1)["value"])
        holds.append(pool.submit(g, use_cache=False))
    queued = Graph()
    queued.output("value", queued.add("marker.mark", "never", folder=str(tmp_path), label="never")["value"])
    handle = pool.submit(queued, use_cache=False)
    assert handle.cancel() is True
    result = handle.result(timeout=5)
    assert result.status is RunStatus.CANCELLED and result.nodes["never"].state is NodeState.CANCELLED
    assert all(h.result(timeout=30).ok for h in holds)
    assert markers(tmp_path, "never") == []


def test_a_worker_that_cannot_load_its_nodes_is_a_clear_error(registry: NodeRegistry, tmp_path: Path) -> None:
    with pytest.raises(WorkerStartError, match="could not start"):
        PoolExecutor(registry, node_modules=("no_such_module_here",), workers=1, artifacts=tmp_path)
