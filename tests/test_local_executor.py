"""The local executor, observed through real node executions and the run's events."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from nodeloom import run as run_graph
from nodeloom.core import (
    EventKind,
    Float,
    Graph,
    GraphValidationError,
    NodeState,
    RunEvent,
    RunFailedError,
    RunNotFoundError,
    RunStatus,
    RunTimeoutError,
    Text,
    node,
)
from nodeloom.executors import LocalExecutor


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def intervals(journal, labels):  # type: ignore[no-untyped-def]
    return {entry[0]: (entry[1], entry[2]) for entry in journal.entries if entry[0] in labels}


def test_independent_branches_run_concurrently(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    left = g.add("test.sleep", label="left", seconds=0.4)
    right = g.add("test.sleep", label="right", seconds=0.4)
    g.output("total", g.add("math.sum", a=left["value"], b=right["value"])["result"])
    assert executor.run(g).ok
    spans = intervals(journal, {"left", "right"})
    assert overlaps(spans["left"], spans["right"])


def test_gpu_nodes_run_one_at_a_time_per_device(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    terms = {f"t{i}": g.add("test.gpu_sleep", label=f"g{i}", seconds=0.15)["value"] for i in range(3)}
    g.output("sum", g.add("math.sum", **terms)["result"])
    assert executor.run(g).ok
    spans = sorted((e[1], e[2]) for e in journal.entries)
    assert len(spans) == 3
    assert all(not overlaps(a, b) for a, b in itertools.pairwise(spans))
    assert {e[4] for e in journal.entries} == {"cpu"}


def test_rerun_executes_only_what_changed(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    a = g.input("a", Float, default=1.0)
    b = g.input("b", Float, default=2.0)
    left = g.add("test.count", "left", label="left", value=a)
    right = g.add("test.count", "right", label="right", value=b)
    below = g.add("test.count", "below", label="below", value=right["value"])
    joined = g.add("math.sum", "joined", x=left["value"], y=below["value"])
    g.output("sum", joined["result"])

    first = executor.run(g)
    assert first.outputs["sum"] == 3.0
    assert [journal.count(n) for n in ("left", "right", "below")] == [1, 1, 1]

    again = executor.run(g)
    assert all(r.state is NodeState.CACHED for r in again.nodes.values())
    assert [journal.count(n) for n in ("left", "right", "below")] == [1, 1, 1]

    changed = executor.run(g, {"b": 5.0})
    assert changed.outputs["sum"] == 6.0
    assert [journal.count(n) for n in ("left", "right", "below")] == [1, 2, 2]
    assert changed.nodes["left"].state is NodeState.CACHED
    assert changed.nodes["joined"].state is NodeState.DONE


def test_use_cache_false_runs_everything(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    g.output("v", g.add("test.count", label="c", value=1.0)["value"])
    executor.run(g)
    executor.run(g, use_cache=False)
    assert journal.count("c") == 2


def test_non_deterministic_nodes_are_cached_only_with_a_seed(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    g.output("free", g.add("test.random", label="free")["value"])
    g.output("seeded", g.add("test.random", label="seeded", seed=7)["value"])
    first, second = executor.run(g), executor.run(g)
    assert journal.count("free") == 2 and journal.count("seeded") == 1
    assert first.outputs["seeded"] == second.outputs["seeded"]


def test_timeout_fails_the_node_and_keeps_independent_outputs(executor: LocalExecutor) -> None:
    g = Graph()
    slow = g.add("test.stubborn", "slow", seconds=2.0).configure(timeout=0.2)
    after = g.add("math.add", "after", a=slow["value"])
    fine = g.add("math.add", "fine", a=1, b=1)
    g.output("after", after["result"])
    g.output("fine", fine["result"])
    started = time.monotonic()
    result = executor.run(g)
    assert time.monotonic() - started < 1.5  # the run did not wait for the stuck node
    assert result.status is RunStatus.FAILED
    assert result.nodes["slow"].state is NodeState.FAILED
    assert result.nodes["slow"].error is not None and result.nodes["slow"].error["code"] == "node_timeout"
    assert result.nodes["after"].state is NodeState.SKIPPED
    assert result.outputs == {"fine": 2.0}


def test_retries_with_growing_backoff_then_succeeds(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    g.output("v", g.add("test.flaky", "flaky", key="k1", failures=2, value=7.0)["value"])
    events: list[RunEvent] = []
    result = executor.run(g, on_event=events.append)
    assert result.outputs == {"v": 7.0} and result.nodes["flaky"].attempts == 3
    retries = [e for e in events if e.kind is EventKind.NODE_RETRYING]
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert retries[0].data["delay"] == pytest.approx(0.05) and retries[1].data["delay"] == pytest.approx(0.1)
    assert "transient failure 1" in retries[0].data["error"]["message"]
    starts = [e.time for e in events if e.kind is EventKind.NODE_STARTED]
    assert starts[1] - starts[0] >= 0.05 and starts[2] - starts[1] >= 0.1


def test_retries_are_bounded(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    g.output("v", g.add("test.flaky", "flaky", key="k2", failures=10)["value"])
    result = executor.run(g)
    record = result.nodes["flaky"]
    assert record.state is NodeState.FAILED and record.attempts == 3
    assert record.error == {"code": "node_error", "message": "ConnectionError: transient failure 3",
                            "exception": "ConnectionError"}


def test_graph_can_override_the_retry_policy(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    flaky = g.add("test.flaky", "f", key="k3", failures=3).configure(
        retry={"max_attempts": 4, "initial_backoff": 0.01}
    )
    g.output("v", flaky["value"])
    assert executor.run(g).nodes["f"].attempts == 4


def test_failed_node_skips_descendants_and_keeps_independent_outputs(executor: LocalExecutor) -> None:
    g = Graph()
    bad = g.add("test.fail", "bad", message="exploded")
    child = g.add("math.add", "child", a=bad["value"])
    grandchild = g.add("math.add", "grandchild", a=child["result"])
    ok = g.add("math.add", "ok", a=1, b=2)
    g.output("ok", ok["result"])
    g.output("bad", grandchild["result"])
    result = executor.run(g)
    assert result.status is RunStatus.FAILED
    assert result.nodes["bad"].state is NodeState.FAILED
    assert result.nodes["child"].state is NodeState.SKIPPED
    assert result.nodes["grandchild"].state is NodeState.SKIPPED
    assert result.outputs == {"ok": 3.0}
    assert result.errors() == [{"node": "bad", "code": "node_error", "message": "ValueError: exploded",
                                "exception": "ValueError"}]
    with pytest.raises(RunFailedError, match="node 'bad': ValueError: exploded") as caught:
        run_graph(g, executor=executor)
    assert caught.value.result.outputs == {"ok": 3.0}


def test_cancel_stops_a_running_run(executor: LocalExecutor, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    steps = g.add("test.steps", "steps", label="steps", steps=40, seconds=0.05)
    later = g.add("math.add", "later", a=steps["value"])
    g.output("v", later["result"])
    first_progress = threading.Event()
    handle = executor.submit(
        g, on_event=lambda e: first_progress.set() if e.kind is EventKind.NODE_PROGRESS else None
    )
    assert first_progress.wait(5)
    assert handle.cancel() is True
    result = handle.result(timeout=5)
    assert result.status is RunStatus.CANCELLED
    assert result.nodes["steps"].state is NodeState.CANCELLED
    assert result.nodes["later"].state is NodeState.CANCELLED
    time.sleep(0.2)  # the node sees the cancellation at its next progress call and stops
    assert journal.count("steps") == 0
    assert handle.cancel() is False


def test_events_come_through_callback_and_iterator_alike(executor: LocalExecutor) -> None:
    g = Graph()
    steps = g.add("test.steps", "steps", label="s", steps=3, seconds=0.01)
    g.output("v", steps["value"])
    seen: list[RunEvent] = []
    handle = executor.submit(g, on_event=seen.append)
    streamed = list(handle.events())
    assert streamed == seen
    kinds = [e.kind for e in streamed]
    assert kinds[0] is EventKind.RUN_STARTED and kinds[-1] is EventKind.RUN_FINISHED
    assert kinds.count(EventKind.NODE_PROGRESS) == 3
    assert [e.data["done"] for e in streamed if e.kind is EventKind.NODE_PROGRESS] == [1, 2, 3]
    assert [e.seq for e in streamed] == list(range(1, len(streamed) + 1))
    assert list(handle.events(after=len(streamed) - 1)) == streamed[-1:]
    assert streamed[-1].data == {"status": "succeeded"}


def test_cached_nodes_emit_node_cached(executor: LocalExecutor) -> None:
    g = Graph()
    g.output("v", g.add("math.add", a=1, b=1)["result"])
    executor.run(g)
    kinds = [e.kind for e in executor.submit(g).events()]
    assert kinds == [EventKind.RUN_STARTED, EventKind.NODE_CACHED, EventKind.RUN_FINISHED]


def test_async_nodes_run(executor: LocalExecutor) -> None:
    g = Graph()
    a = g.add("test.async_echo", text="one")
    b = g.add("test.async_echo", text="two")
    g.output("joined", g.add("text.join", separator="+", x=a["text"], y=b["text"])["text"])
    assert executor.run(g).outputs == {"joined": "one+two"}


def test_async_node_timeout_cancels_the_coroutine(executor: LocalExecutor) -> None:
    g = Graph()
    g.output("t", g.add("test.async_echo", "slow", text="x", seconds=5).configure(timeout=0.1)["text"])
    result = executor.run(g)
    assert result.nodes["slow"].error is not None and result.nodes["slow"].error["code"] == "node_timeout"


def test_values_arriving_over_links_are_checked_at_run_time(executor: LocalExecutor) -> None:
    g = Graph()
    parsed = g.add("json.parse", text='"not a number"')
    g.output("sum", g.add("math.add", "add", a=parsed["data"])["result"])
    result = executor.run(g)
    error = result.nodes["add"].error
    assert error is not None and error["code"] == "node_failed"
    assert "input 'a': expected Float, received a string" in error["message"]
    assert result.nodes["add"].attempts == 1


def test_a_node_returning_the_wrong_type_fails_clearly(executor: LocalExecutor) -> None:
    g = Graph()
    g.output("v", g.add("test.bad_output", "bad")["value"])
    error = executor.run(g).nodes["bad"].error
    assert error is not None and "bad value for output 'value': expected Float, received a string" in error["message"]


def test_several_outputs_of_one_node(executor: LocalExecutor) -> None:
    g = Graph()
    split = g.add("test.split", value=10)
    g.output("low", split["low"])
    g.output("high", split["high"])
    assert executor.run(g).outputs == {"low": 9.0, "high": 11.0}


def test_invalid_graph_or_inputs_are_refused_before_running(executor: LocalExecutor) -> None:
    g = Graph()
    x = g.input("x", Float)
    g.output("y", g.add("math.add", a=x)["result"])
    with pytest.raises(GraphValidationError) as caught:
        executor.submit(g, {"x": "seven"})
    assert [i.code for i in caught.value.issues] == ["type_mismatch"]
    with pytest.raises(GraphValidationError) as caught:
        executor.submit(g, {})
    assert [i.code for i in caught.value.issues] == ["missing_input"]
    bad = Graph()
    bad.output("y", bad.add("math.ad", a=1)["result"])
    with pytest.raises(GraphValidationError, match=r"unknown node type 'math\.ad'"):
        executor.submit(bad)


def test_graphs_can_use_their_own_node_functions(executor: LocalExecutor) -> None:
    @node("mine.reverse")
    def reverse(text: str) -> str:
        return text[::-1]

    g = Graph()
    word = g.input("word", Text)
    g.output("reversed", g.add(reverse, text=word)["result"])
    assert executor.run(g, {"word": "loom"}).outputs == {"reversed": "mool"}


def test_result_wait_can_time_out_and_unknown_runs_are_errors(executor: LocalExecutor) -> None:
    g = Graph()
    g.output("v", g.add("test.sleep", label="w", seconds=0.5)["value"])
    handle = executor.submit(g)
    with pytest.raises(TimeoutError) as caught:
        handle.result(timeout=0.05)
    assert isinstance(caught.value, RunTimeoutError) and caught.value.to_dict()["error"]["code"] == "run_timeout"
    with pytest.raises(RunTimeoutError, match="no event of run"):  # waiting for the next event, too
        list(handle.events(timeout=0.05))
    assert handle.result(timeout=5).ok
    with pytest.raises(RunNotFoundError):
        executor.result("nope")


def test_many_concurrent_runs_each_finish_once(executor: LocalExecutor) -> None:
    g = Graph()
    x = g.input("x", Float)
    value = x
    for i in range(10):
        value = g.add("math.add", f"n{i}", a=value, b=1)["result"]
    g.output("y", value)
    handles: list = []
    lock = threading.Lock()

    def submit(start: int) -> None:
        for i in range(start, start + 25):
            h = executor.submit(g, {"x": float(i)})
            with lock:
                handles.append((i, h))

    threads = [threading.Thread(target=submit, args=(k * 25,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = {i: h.result(timeout=30) for i, h in handles}
    assert len(results) == 100
    assert all(r.ok and r.outputs["y"] == i + 10 for i, r in results.items())


def test_gpu_nodes_spread_over_devices_one_at_a_time_each(registry, tmp_path, journal) -> None:  # type: ignore[no-untyped-def]
    g = Graph()
    terms = {f"t{i}": g.add("test.gpu_sleep", label=f"g{i}", seconds=0.1)["value"] for i in range(6)}
    g.output("sum", g.add("math.sum", **terms)["result"])
    with LocalExecutor(registry, artifacts=tmp_path / "a", gpu_devices=["cuda:0", "cuda:1"]) as engine:
        assert engine.run(g).ok
    by_device: dict[str, list[tuple[float, float]]] = {}
    for _, start, end, _, device in journal.entries:
        by_device.setdefault(device, []).append((start, end))
    assert sorted(by_device) == ["cuda:0", "cuda:1"] and all(len(v) == 3 for v in by_device.values())
    for spans in by_device.values():
        spans.sort()
        assert all(not overlaps(a, b) for a, b in itertools.pairwise(spans))


def test_run_executes_cpu_nodes_on_the_calling_thread_unless_a_node_has_a_timeout(
    executor: LocalExecutor, journal  # type: ignore[no-untyped-def]
) -> None:
    g = Graph()
    g.output("v", g.add("test.sleep", "nap", label="nap", seconds=0.01)["value"])
    executor.run(g, use_cache=False)
    executor.submit(g, use_cache=False).result()
    g.configure("nap", timeout=5)
    executor.run(g, use_cache=False)
    threads = [entry[3] for entry in journal.entries]
    assert threads[0] == threading.current_thread().name  # run(): the caller ran it
    assert threads[1].startswith("nodeloom-cpu")  # submit(): a lane worker ran it
    assert threads[2].startswith("nodeloom-cpu")  # a timeout: never on the caller's thread


def test_cache_key_shortcuts_agree_with_the_general_form() -> None:
    """The chain shortcuts (one link; one scalar literal) hash exactly what the general form hashes,
    so a graph's keys do not depend on which path computed them."""
    from nodeloom.core.cache import cache_key, linked_cache_key, static_part

    assert linked_cache_key("math.add\x001", "a", "f" * 32, "result") == cache_key(
        ["math.add\x001", "a", "f" * 32, "result"])
    for value in (1, 1.0, "1", True, None):
        one = static_part("math.add", 1, {"b": value})
        general = static_part("math.add", 1, {"b": value, "z": [value]}).rsplit("\x00", 1)[0]
        assert one == general
    assert len({static_part("math.add", 1, {"b": v}) for v in (1, 1.0, "1", True)}) == 4
