"""One set of behaviour tests that every executor passes: the executor protocol, as a specification.

Each test runs against `LocalExecutor` (threads in this process), `PoolExecutor` (one worker
process) and `CeleryExecutor`
(a test-owned `redis-server` and a real `celery worker` with two pool processes: conftest's
`celery_config`). The
nodes are in marker_nodes.py, which this process and the workers import; each execution
leaves a marker file, so tests count executions across processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from marker_nodes import MODULE, arithmetic_and_text_graph, markers

from nodeloom.core import EventKind, Float, Graph, NodeState, RunEvent, RunStatus
from nodeloom.core.errors import RunNotFoundError
from nodeloom.executors import Executor, LocalExecutor, RunHandle
from nodeloom.executors.celery import CeleryExecutor
from nodeloom.executors.pool import PoolExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry
from nodeloom.testing import wait_until


@pytest.fixture(scope="session")
def conformance_registry() -> NodeRegistry:
    found = builtin_registry()
    found.register_module(MODULE)
    return found


@pytest.fixture(params=["local", "pool", pytest.param("celery", marks=pytest.mark.slow)])
def executor(request: pytest.FixtureRequest, conformance_registry: NodeRegistry, tmp_path: Path) -> Iterator[Executor]:
    running: Executor
    if request.param == "local":
        running = LocalExecutor(conformance_registry, artifacts=tmp_path / "artifacts")
    elif request.param == "pool":
        running = PoolExecutor(conformance_registry, node_modules=(MODULE,), workers=1,
                               artifacts=tmp_path / "artifacts")
    else:
        running = CeleryExecutor(conformance_registry, config=request.getfixturevalue("celery_config"))
    with running:
        yield running


def test_outputs_states_and_timings(executor: Executor) -> None:
    g = arithmetic_and_text_graph()
    result = executor.run(g, {"x": 4}, use_cache=False)
    assert result.status is RunStatus.SUCCEEDED and result.ok
    assert result.outputs == {"total": 17.5, "line": "8.5 and 17.5"}
    assert {n: r.state for n, r in result.nodes.items()} == dict.fromkeys(("double", "plus", "total", "line"),
                                                                         NodeState.DONE)
    assert all(r.attempts == 1 and r.duration is not None and r.duration >= 0 for r in result.nodes.values())
    assert result.finished_at is not None and result.finished_at >= result.started_at
    assert result.to_json()["outputs"] == {"total": 17.5, "line": "8.5 and 17.5"}


def test_failure_skips_descendants_and_keeps_other_branches(executor: Executor, tmp_path: Path) -> None:
    g = Graph()
    bad = g.add("marker.fail", "bad", folder=str(tmp_path), label="bad", message="no such thing")
    after = g.add("math.add", "after", a=bad["value"], b=1)
    last = g.add("marker.mark", "last", folder=str(tmp_path), label="last", value=after["result"])
    fine = g.add("marker.mark", "fine", folder=str(tmp_path), label="fine", value=2)
    g.output("last", last["value"])
    g.output("fine", fine["value"])
    result = executor.run(g, use_cache=False)
    assert result.status is RunStatus.FAILED
    assert {n: r.state for n, r in result.nodes.items()} == {
        "bad": NodeState.FAILED, "after": NodeState.SKIPPED, "last": NodeState.SKIPPED, "fine": NodeState.DONE}
    assert result.nodes["bad"].error == {"code": "node_failed", "message": "no such thing"}
    assert result.outputs == {"fine": 2.0}
    assert len(markers(tmp_path, "bad")) == 1 and markers(tmp_path, "last") == []


def test_events_arrive_in_order_through_callback_and_stream(executor: Executor, tmp_path: Path) -> None:
    g = Graph()
    first = g.add("marker.wait", "first", folder=str(tmp_path), label="first", seconds=0.2)
    g.output("value", g.add("math.add", "second", a=first["value"], b=1)["result"])
    seen: list[RunEvent] = []
    handle = executor.submit(g, on_event=seen.append, use_cache=False)
    streamed = list(handle.events(timeout=30))
    assert handle.result(timeout=10).ok
    wait_until(lambda: bool(seen) and seen[-1].kind is EventKind.RUN_FINISHED, 5, "the callback's last event")
    assert [e.seq for e in streamed] == list(range(1, len(streamed) + 1))
    assert [(e.seq, e.kind, e.node) for e in seen] == [(e.seq, e.kind, e.node) for e in streamed]
    kinds = [(e.kind, e.node) for e in streamed]
    assert kinds[0] == (EventKind.RUN_STARTED, None) and kinds[-1] == (EventKind.RUN_FINISHED, None)
    assert streamed[-1].data["status"] == "succeeded"
    order = [k for k in kinds if k[0] in (EventKind.NODE_STARTED, EventKind.NODE_DONE)]
    assert order == [(EventKind.NODE_STARTED, "first"), (EventKind.NODE_DONE, "first"),
                     (EventKind.NODE_STARTED, "second"), (EventKind.NODE_DONE, "second")]
    progress = [e for e in streamed if e.kind is EventKind.NODE_PROGRESS]
    assert progress and all(e.node == "first" for e in progress)
    # resuming after a sequence number gives the rest, nothing twice
    assert [e.seq for e in handle.events(after=3)] == [e.seq for e in streamed[3:]]


def start_slow_run(executor: Executor, tmp_path: Path, seconds: float) -> RunHandle:
    """A run of `slow` (a node waiting `seconds`) then `after`, once `slow` has started."""
    g = Graph()
    slow = g.add("marker.wait", "slow", folder=str(tmp_path), label="slow", seconds=seconds)
    after = g.add("marker.mark", "after", folder=str(tmp_path), label="after", value=slow["value"])
    g.output("value", after["value"])
    handle = executor.submit(g, use_cache=False)
    wait_until(lambda: bool(markers(tmp_path, "slow-start")), 30, "the slow node to start")
    return handle


def test_cancel_stops_the_running_node_and_its_successors(executor: Executor, tmp_path: Path) -> None:
    handle = start_slow_run(executor, tmp_path, seconds=5)
    assert handle.cancel() is True
    result = handle.result(timeout=10)
    assert result.status is RunStatus.CANCELLED
    assert result.nodes["slow"].state is NodeState.CANCELLED and result.nodes["after"].state is not NodeState.DONE
    assert handle.cancel() is False
    time.sleep(0.3)  # the node stops at its next progress check, 50 ms away
    assert markers(tmp_path, "slow-end") == [] and markers(tmp_path, "after") == []


def test_node_past_its_timeout_fails_with_a_timeout_error(executor: Executor, tmp_path: Path) -> None:
    g = Graph()
    slow = g.add("marker.wait", "slow", folder=str(tmp_path), label="slow", seconds=3)
    g.configure("slow", timeout=0.5)
    fine = g.add("marker.mark", "fine", folder=str(tmp_path), label="fine", value=1)
    g.output("slow", slow["value"])
    g.output("fine", fine["value"])
    started = time.monotonic()
    result = executor.run(g, use_cache=False)
    assert time.monotonic() - started < 2.5
    assert result.status is RunStatus.FAILED and result.outputs == {"fine": 1.0}
    assert result.nodes["slow"].error is not None and result.nodes["slow"].error["code"] == "node_timeout"


def test_retry_policy_runs_a_flaky_node_again(executor: Executor, tmp_path: Path) -> None:
    g = Graph()
    g.output("tries", g.add("marker.flaky", "flaky", folder=str(tmp_path), label="flaky", failures=2)["value"])
    handle = executor.submit(g, use_cache=False)
    result = handle.result(timeout=30)
    assert result.ok and result.outputs == {"tries": 3}
    assert result.nodes["flaky"].attempts == 3 and len(markers(tmp_path, "flaky")) == 3
    assert [e.data["attempt"] for e in handle.events() if e.kind is EventKind.NODE_RETRYING] == [1, 2]


def test_retries_are_bounded_by_the_policy(executor: Executor, tmp_path: Path) -> None:
    g = Graph()
    g.output("tries", g.add("marker.flaky", "flaky", folder=str(tmp_path), label="flaky", failures=10)["value"])
    result = executor.run(g, use_cache=False)
    assert result.status is RunStatus.FAILED
    assert result.nodes["flaky"].attempts == 3 and len(markers(tmp_path, "flaky")) == 3


def test_rerun_executes_only_what_changed(executor: Executor, tmp_path: Path) -> None:
    g = Graph()
    a = g.input("a", Float, default=1.0)
    left = g.add("marker.mark", "left", folder=str(tmp_path), label="left", value=a)
    right = g.add("marker.mark", "right", folder=str(tmp_path), label="right", value=2)
    g.output("sum", g.add("math.add", "sum", a=left["value"], b=right["value"])["result"])
    first = executor.run(g)
    assert first.outputs == {"sum": 3.0}
    again = executor.run(g, {"a": 5.0})
    assert again.outputs == {"sum": 7.0}
    assert {n: r.state for n, r in again.nodes.items()} == {
        "left": NodeState.DONE, "right": NodeState.CACHED, "sum": NodeState.DONE}
    same = executor.submit(g, {"a": 5.0})
    assert all(r.state is NodeState.CACHED for r in same.result(timeout=30).nodes.values())
    assert [e.node for e in same.events() if e.kind is EventKind.NODE_CACHED] != []
    assert len(markers(tmp_path, "left")) == 2 and len(markers(tmp_path, "right")) == 1


def test_unknown_runs_are_clear_errors(executor: Executor) -> None:
    with pytest.raises(RunNotFoundError):
        executor.result("no-such-run", timeout=1)
    with pytest.raises(RunNotFoundError):
        executor.status("no-such-run")
    with pytest.raises(RunNotFoundError):
        executor.cancel("no-such-run")
    with pytest.raises(RunNotFoundError):
        next(iter(executor.events("no-such-run")))


def test_status_is_a_snapshot_while_running_and_the_result_once_finished(executor: Executor, tmp_path: Path) -> None:
    handle = start_slow_run(executor, tmp_path, seconds=0.6)
    now = executor.status(handle.run_id)
    assert now.status is RunStatus.RUNNING and now.finished_at is None and now.outputs == {}
    assert (now.nodes["slow"].state, now.nodes["after"].state) == (NodeState.RUNNING, NodeState.PENDING)
    finished = handle.result(timeout=30)
    assert executor.status(handle.run_id) == finished and finished.outputs == {"value": 0.6}


def test_outputs_travel_as_values_of_every_json_kind(executor: Executor) -> None:
    g = Graph()
    payload = g.add("json.object", "payload", n=1, list=[1, "two", None], nested={"ok": True})
    g.output("payload", payload["data"])
    result = executor.run(g, use_cache=False)
    assert result.ok and result.outputs["payload"] == {"n": 1, "list": [1, "two", None], "nested": {"ok": True}}



# -- branches ---------------------------------------------------------------------------


def _branched(tmp_path: Path) -> Graph:
    """x > 0 goes through `pos` and `pos_more`, else through `neg`; `join` takes whichever came."""
    g = Graph("branched")
    x = g.input("x", Float)
    positive = g.add("math.compare", "positive", a=x, b=0, op=">")
    branch = g.add("control.branch", "branch", condition=positive["result"], value=x)
    pos = g.add("marker.mark", "pos", folder=str(tmp_path), label="pos", value=branch["true"])
    pos_more = g.add("math.add", "pos_more", a=pos["value"], b=100)
    neg = g.add("marker.mark", "neg", folder=str(tmp_path), label="neg", value=branch["false"])
    join = g.add("control.first", "join", pos=pos_more["result"], neg=neg["value"])
    g.output("value", join["value"])
    g.output("came_from", join["port"])
    g.output("positive_only", pos_more["result"], optional=True)
    return g


def test_branch_not_taken_is_skipped_for_a_reason_and_the_run_succeeds(executor: Executor, tmp_path: Path) -> None:
    handle = executor.submit(_branched(tmp_path), {"x": -3.0}, use_cache=False)
    result = handle.result(timeout=60)
    assert result.status is RunStatus.SUCCEEDED
    # the optional output hangs on the branch not taken: absent, not an error
    assert result.outputs == {"value": -3.0, "came_from": "neg"}
    states = {n: r.state for n, r in result.nodes.items()}
    assert states == {"positive": NodeState.DONE, "branch": NodeState.DONE, "pos": NodeState.SKIPPED,
                      "pos_more": NodeState.SKIPPED, "neg": NodeState.DONE, "join": NodeState.DONE}
    skipped = {e.node: e.data for e in handle.events() if e.kind is EventKind.NODE_SKIPPED}
    assert skipped == {"pos": {"because": "branch", "reason": "branch"},
                       "pos_more": {"because": "pos", "reason": "branch"}}
    assert markers(tmp_path, "pos") == [] and len(markers(tmp_path, "neg")) == 1


def test_the_other_branch_and_a_cached_rerun(executor: Executor, tmp_path: Path) -> None:
    g = _branched(tmp_path)
    result = executor.run(g, {"x": 2.0})
    assert result.ok and result.outputs == {"value": 102.0, "came_from": "pos", "positive_only": 102.0}
    assert result.nodes["neg"].state is NodeState.SKIPPED and markers(tmp_path, "neg") == []
    again = executor.run(g, {"x": 2.0})
    assert again.outputs == result.outputs
    assert {n: r.state for n, r in again.nodes.items() if n != "neg"} == dict.fromkeys(
        ("positive", "branch", "pos", "pos_more", "join"), NodeState.CACHED)
    assert again.nodes["neg"].state is NodeState.SKIPPED and len(markers(tmp_path, "pos")) == 1


def test_switch_takes_one_case_and_a_join_with_nothing_arrived_is_skipped(executor: Executor) -> None:
    g = Graph("switched")
    kind = g.input("kind", "Text")
    switch = g.add("control.switch", "switch", key=kind, value=kind, cases=["video", "image"])
    video = g.add("text.template", "video", template="video: {{ k }}", k=switch["case_0"])
    image = g.add("text.template", "image", template="image: {{ k }}", k=switch["case_1"])
    other = g.add("text.template", "other", template="other: {{ k }}", k=switch["default"])
    media = g.add("control.first", "media", video=video["text"], image=image["text"])
    g.output("media", media["value"], optional=True)
    g.output("any", g.add("control.first", "any", media=media["value"], other=other["text"])["value"])
    picked = executor.run(g, {"kind": "image"}, use_cache=False)
    assert picked.ok and picked.outputs == {"media": "image: image", "any": "image: image"}
    assert picked.nodes["video"].state is NodeState.SKIPPED and picked.nodes["other"].state is NodeState.SKIPPED
    fallback = executor.run(g, {"kind": "audio"}, use_cache=False)
    assert fallback.status is RunStatus.SUCCEEDED and fallback.outputs == {"any": "other: audio"}
    assert {n for n, r in fallback.nodes.items() if r.state is NodeState.SKIPPED} == {"video", "image", "media"}


# -- graphs as nodes --------------------------------------------------------------------


def test_a_saved_graph_runs_as_a_node_whose_inner_nodes_cache_on_their_own(
    executor: Executor, conformance_registry: NodeRegistry, tmp_path: Path,
) -> None:
    inner = Graph("double_mark")
    value = inner.input("v", Float)
    offset = inner.input("offset", Float, default=0.0)
    marked = inner.add("marker.mark", "mark", folder=str(tmp_path), label="inner", value=value)
    doubled = inner.add("math.multiply", "double", a=marked["value"], b=2)
    inner.output("doubled", inner.add("math.add", "shift", a=doubled["result"], b=offset)["result"])
    name = f"double_mark_{tmp_path.name}"
    node_type = conformance_registry.add_graph(name, inner, 3)
    g = Graph("outer")
    x = g.input("x", Float)
    first = g.add(node_type, "first", v=x)
    second = g.add(node_type, "second", v=first["doubled"], offset=1)
    g.output("result", second["doubled"])
    handle = executor.submit(g, {"x": 1.5})
    result = handle.result(timeout=60)
    assert result.ok and result.outputs == {"result": 7.0}
    paths = {f"{outer}/{node}" for outer in ("first", "second") for node in ("mark", "double", "shift")}
    assert set(result.nodes) == paths
    assert {e.node for e in handle.events() if e.kind is EventKind.NODE_DONE} == paths
    again = executor.run(g, {"x": 1.5})
    assert again.outputs == {"result": 7.0} and all(r.state is NodeState.CACHED for r in again.nodes.values())
    assert len(markers(tmp_path, "inner")) == 2
