"""`control.approve` on the executors (local, pool, and Celery with a real worker process): with no
decision the node waits, the run settles as `waiting` and holds nothing; with a decision in
`RunConfig.approvals` the node passes on the approved or edited value, or fails with the
rejection's reason.
(Through the API, with restarts and timeouts: api_runs/test_approve.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from marker_nodes import MODULE, markers

from nodeloom.core import EventKind, Graph, NodeState, RunStatus
from nodeloom.core.approvals import review_of
from nodeloom.core.artifacts import LocalArtifactStore
from nodeloom.core.context import RunConfig
from nodeloom.executors import Executor, LocalExecutor
from nodeloom.executors.celery import CeleryExecutor
from nodeloom.executors.pool import PoolExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry


@pytest.fixture(scope="module")
def marker_registry() -> NodeRegistry:
    found = builtin_registry()
    found.register_module(MODULE)
    return found


@pytest.fixture(params=["local", "pool", pytest.param("celery", marks=pytest.mark.slow)])
def executor(request: pytest.FixtureRequest, marker_registry: NodeRegistry, tmp_path: Path) -> Iterator[Executor]:
    running: Executor
    if request.param == "local":
        running = LocalExecutor(marker_registry, artifacts=tmp_path / "artifacts")
    elif request.param == "pool":
        running = PoolExecutor(marker_registry, node_modules=(MODULE,), workers=1, artifacts=tmp_path / "artifacts")
    else:  # conftest's worker fleet: a redis-server and a celery worker process
        running = CeleryExecutor(marker_registry, config=request.getfixturevalue("celery_config"))
    with running:
        yield running


def review_graph(folder: Path) -> Graph:
    """draft -> approve -> publish, and `side`, which does not depend on the approval."""
    g = Graph("review")
    draft = g.add("text.template", "draft", template="Buy {{ n }} now", n=g.add(
        "marker.mark", "count", folder=str(folder), label="count", value=3)["value"])
    approve = g.add("control.approve", "approve", value=draft["text"], message="check the wording", timeout=60)
    publish = g.add("marker.mark", "publish", folder=str(folder), label="publish", value=1)
    g.output("text", g.add("text.template", "final", template="{{ t }}!", t=approve["value"],
                           after=publish["value"])["text"])
    g.output("side", g.add("marker.mark", "side", folder=str(folder), label="side", value=2)["value"])
    return g


def test_a_run_without_a_decision_waits_at_the_approval_and_runs_what_does_not_depend_on_it(
    executor: Executor, tmp_path: Path,
) -> None:
    handle = executor.submit(review_graph(tmp_path), use_cache=False)
    result = handle.result(timeout=60)
    assert result.status is RunStatus.WAITING and not result.ok
    states = {node: record.state for node, record in result.nodes.items()}
    assert states == {"count": NodeState.DONE, "draft": NodeState.DONE, "approve": NodeState.WAITING,
                      "publish": NodeState.DONE, "final": NodeState.PENDING, "side": NodeState.DONE}
    assert result.outputs == {"side": 2.0}
    (waiting,) = [event for event in handle.events() if event.kind is EventKind.NODE_WAITING]
    assert waiting.node == "approve"
    assert waiting.data == {"review": {"kind": "text", "value": "Buy 3.0 now"}, "message": "check the wording",
                            "timeout": 60.0, "on_timeout": "reject"}
    assert list(handle.events())[-1].data == {"status": "waiting"}


@pytest.mark.parametrize(("decision", "expected"), [
    ({"action": "approve"}, "Buy 3.0 now!"),
    ({"action": "approve", "value": "Buy three now"}, "Buy three now!"),
])
def test_an_approved_node_passes_on_the_value_or_the_edited_one(
    executor: Executor, tmp_path: Path, decision: dict[str, str], expected: str,
) -> None:
    config = RunConfig(approvals={"approve": decision})
    result = executor.run(review_graph(tmp_path), config=config, use_cache=False)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs == {"text": expected, "side": 2.0}
    assert result.nodes["approve"].state is NodeState.DONE


def test_a_rejected_node_fails_with_the_reason_and_skips_what_follows(executor: Executor, tmp_path: Path) -> None:
    config = RunConfig(approvals={"approve": {"action": "reject", "reason": "too pushy"}})
    result = executor.run(review_graph(tmp_path), config=config, use_cache=False)
    assert result.status is RunStatus.FAILED
    assert result.errors() == [{"node": "approve", "code": "approval_rejected", "message": "rejected: too pushy",
                                "reason": "too pushy"}]
    assert result.nodes["final"].state is NodeState.SKIPPED
    assert len(markers(tmp_path, "publish")) == 1


def test_a_cancelled_waiting_run_is_left_as_it_is(executor: Executor, tmp_path: Path) -> None:
    handle = executor.submit(review_graph(tmp_path), use_cache=False)
    assert handle.result(timeout=60).status is RunStatus.WAITING
    assert executor.cancel(handle.run_id) is False


def test_a_node_that_fails_after_a_waiting_one_settles_the_nodes_it_shares_once(
    executor: Executor, tmp_path: Path,
) -> None:
    g = Graph("wait-and-fail")
    approve = g.add("control.approve", "approve", value={"plan": [1, 2]})
    bad = g.add("marker.fail", "bad", folder=str(tmp_path), label="bad", message="broken")
    g.output("both", g.add("math.add", "both", a=approve["value"], b=bad["value"])["result"])
    result = executor.run(g, use_cache=False)
    assert result.status is RunStatus.FAILED
    states = {node: record.state for node, record in result.nodes.items()}
    assert states == {"approve": NodeState.WAITING, "bad": NodeState.FAILED, "both": NodeState.SKIPPED}


def test_the_review_says_what_kind_of_value_waits(tmp_path: Path) -> None:
    image = LocalArtifactStore(tmp_path).put_bytes(b"\x89PNG\r\n\x1a\n", "image/png")
    assert review_of("a text") == {"kind": "text", "value": "a text"}
    assert review_of({"scenes": [1, 2]}) == {"kind": "json", "value": {"scenes": [1, 2]}}
    assert review_of(image) == {"kind": "artifact", "value": image.to_json()}


def test_a_node_held_after_a_waiting_one_and_skipped_by_a_branch_is_settled_once(
    executor: Executor, tmp_path: Path,
) -> None:
    g = Graph("wait-and-branch")
    approve = g.add("control.approve", "approve", value={"plan": [1, 2]})
    late = g.add("marker.mark", "late", folder=str(tmp_path), label="late", value=-1, seconds=0.5)
    positive = g.add("math.compare", "positive", a=late["value"], b=0, op=">")
    branch = g.add("control.branch", "branch", condition=positive["result"], value=late["value"])
    g.output("both", g.add("math.add", "both", a=approve["value"], b=branch["true"])["result"], optional=True)
    g.output("neg", g.add("marker.mark", "neg", folder=str(tmp_path), label="neg", value=branch["false"])["value"],
             optional=True)
    result = executor.run(g, use_cache=False)
    assert result.status is RunStatus.WAITING
    states = {node: record.state for node, record in result.nodes.items()}
    assert states == {"approve": NodeState.WAITING, "late": NodeState.DONE, "positive": NodeState.DONE,
                      "branch": NodeState.DONE, "both": NodeState.SKIPPED, "neg": NodeState.DONE}
    assert result.outputs == {"neg": -1.0}


def test_a_held_join_freed_by_a_branch_runs_and_the_run_settles_after_everything_running(
    executor: Executor, tmp_path: Path,
) -> None:
    # `join` is held behind the waiting approval through `both`; the branch skips `both`, so the join
    # runs on `other` after all: it must count as unfinished again, or the run settles while `slow` runs
    where = str(tmp_path)
    g = Graph("held-join")
    approve = g.add("control.approve", "approve", value=1.0)
    late = g.add("marker.mark", "late", folder=where, label="late", value=-1, seconds=0.3)
    positive = g.add("math.compare", "positive", a=late["value"], b=0, op=">")
    branch = g.add("control.branch", "branch", condition=positive["result"], value=late["value"])
    both = g.add("math.add", "both", a=approve["value"], b=branch["true"])
    other = g.add("marker.mark", "other", folder=where, label="other", value=5)
    join = g.add("control.first", "join", x=both["result"], y=other["value"])
    slow = g.add("marker.mark", "slow", folder=where, label="slow", value=7, seconds=1.5)
    g.output("join", join["value"], optional=True)
    g.output("slow", slow["value"], optional=True)
    result = executor.run(g, use_cache=False)
    assert result.status is RunStatus.WAITING
    states = {node: record.state for node, record in result.nodes.items()}
    assert states == {"approve": NodeState.WAITING, "late": NodeState.DONE, "positive": NodeState.DONE,
                      "branch": NodeState.DONE, "both": NodeState.SKIPPED, "other": NodeState.DONE,
                      "join": NodeState.DONE, "slow": NodeState.DONE}
    assert result.outputs == {"join": 5.0, "slow": 7.0}
