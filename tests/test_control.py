"""control.map, run through the local executor over real nodes.

The target nodes below record when each item ran, so concurrency, order and cancellation
are asserted on observed executions.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import pytest

from nodeloom.core import (
    EventKind,
    Graph,
    LocalArtifactStore,
    NodeContext,
    NodeExecutionError,
    NodeState,
    Range,
    RetryPolicy,
    RunConfig,
    RunEvent,
    RunResult,
    RunStatus,
    node,
)
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry
from nodeloom.node_registry.control import control_map


class Spans:
    """(label, start, end) of every item execution, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, float, float]] = []
        self.tries: dict[str, int] = {}

    def record(self, label: str, start: float) -> None:
        with self.lock:
            self.entries.append((label, start, time.monotonic()))

    def bump(self, label: str) -> int:
        with self.lock:
            self.tries[label] = self.tries.get(label, 0) + 1
            return self.tries[label]

    def most_at_once(self) -> int:
        with self.lock:
            edges = sorted([(s, 1) for _, s, _ in self.entries] + [(e, -1) for _, _, e in self.entries])
        current = highest = 0
        for _, step in edges:  # an end sorts before a start at the same instant
            current += step
            highest = max(highest, current)
        return highest


SPANS = Spans()


@node("test.map_sleep", output="value")
def map_sleep(value: Annotated[int, Range(0, 1000)], seconds: float = 0.15) -> int:
    """Sleep, then return twice the value; records the interval."""
    start = time.monotonic()
    time.sleep(seconds)
    SPANS.record(f"item{value}", start)
    return value * 2


@node("test.map_delay", output="value")
def map_delay(delay: float) -> float:
    """Return `delay` after sleeping that long: later items can finish first."""
    time.sleep(delay)
    return delay


@node("test.map_fail", output="value")
def map_fail(value: int, bad: int) -> int:
    """Fail for one value."""
    if value == bad:
        raise ValueError(f"item {value} is bad")
    return value


@node("test.map_context", output="value")
def map_context(ctx: NodeContext, value: int) -> str:
    """What the item's context says: node id, run id, attempt, a run setting."""
    ctx.progress(1, 1, "inner progress")
    return f"{ctx.node_id}|{ctx.run_id}|{ctx.attempt}|{ctx.config.settings.get('tone')}"


@node("test.map_flaky", retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, jitter=0.0), output="value")
def map_flaky(key: str) -> str:
    """Fail the first try of each key, then succeed."""
    if SPANS.bump(key) == 1:
        raise ConnectionError(f"{key}: transient")
    return key.upper()


@node("test.map_steps", output="value")
def map_steps(ctx: NodeContext, value: int, steps: int = 20) -> int:
    """Work in small steps, stopping at the first step after a cancellation."""
    start = time.monotonic()
    for step in range(steps):
        time.sleep(0.05)
        ctx.progress(step + 1, steps)
    SPANS.record(f"steps{value}", start)
    return value


@node("test.map_async", resources="io", output="text")
async def map_async(text: str) -> str:
    """An async target."""
    await asyncio.sleep(0.01)
    return text[::-1]


@node("test.map_gpu", resources="gpu", output="value")
def map_gpu(value: int) -> int:
    """A GPU target: must never share the device with another item."""
    start = time.monotonic()
    time.sleep(0.08)
    SPANS.record(f"gpu{value}", start)
    return value


class Halves(NamedTuple):
    low: int
    high: int


@node("test.map_split")
def map_split(value: int) -> Halves:
    """Two outputs."""
    return Halves(value // 2, value - value // 2)


TARGETS = [map_sleep, map_delay, map_fail, map_context, map_flaky, map_steps, map_async, map_gpu, map_split]


@pytest.fixture(scope="module")
def control_registry() -> NodeRegistry:
    registry = builtin_registry()
    registry.register_module("nodeloom.node_registry.control")
    return registry.extended(TARGETS)


@pytest.fixture
def engine(control_registry: NodeRegistry, tmp_path: Path) -> Iterator[LocalExecutor]:
    with LocalExecutor(control_registry, artifacts=tmp_path / "artifacts") as executor:
        yield executor


@pytest.fixture
def spans() -> Spans:
    with SPANS.lock:
        SPANS.entries.clear()
        SPANS.tries.clear()
    return SPANS


def map_graph(**inputs: Any) -> Graph:
    g = Graph()
    g.output("results", g.add("control.map", "m", **inputs)["results"])
    return g


def run_map(engine: LocalExecutor, **inputs: Any) -> RunResult:
    return engine.run(map_graph(**inputs))


def failure(result: RunResult) -> dict[str, Any]:
    record = result.nodes["m"]
    assert record.state is NodeState.FAILED and record.error is not None
    return dict(record.error)


def test_items_run_concurrently_up_to_the_limit(engine: LocalExecutor, spans: Spans) -> None:
    result = run_map(engine, node="test.map_sleep", items=list(range(6)), item_input="value", concurrency=3,
                     inputs={"seconds": 0.25})
    assert result.ok, result.errors()
    assert result.outputs["results"] == [0, 2, 4, 6, 8, 10]
    assert spans.most_at_once() == 3


def test_concurrency_one_runs_items_one_after_another(engine: LocalExecutor, spans: Spans) -> None:
    assert run_map(engine, node="test.map_sleep", items=[1, 2, 3], item_input="value", concurrency=1,
                   inputs={"seconds": 0.05}).ok
    assert len(spans.entries) == 3 and spans.most_at_once() == 1


def test_results_keep_the_order_of_the_items(engine: LocalExecutor) -> None:
    delays = [0.25, 0.15, 0.05, 0.0]  # the last item finishes first
    result = run_map(engine, node="test.map_delay", items=delays, item_input="delay", concurrency=4)
    assert result.outputs["results"] == delays


def test_a_failing_item_fails_the_map_naming_its_index(engine: LocalExecutor) -> None:
    result = run_map(engine, node="test.map_fail", items=[1, 2, 3, 4], item_input="value", inputs={"bad": 3})
    error = failure(result)
    assert error["message"] == "control.map: item 2 (test.map_fail) failed: ValueError: item 3 is bad"
    assert error["item"] == 2 and error["inner"]["message"] == "ValueError: item 3 is bad"


def test_the_map_works_inside_a_graph_over_text_template(engine: LocalExecutor) -> None:
    g = Graph()
    names = g.input("names", "List[Text]")
    greetings = g.add("control.map", "greet", node="text.template", items=names, item_input="name",
                      inputs={"template": "Hello {{ name }}, from {{ team }}!", "values": {"team": "nodeloom"}})
    joined = g.add("text.join", "join", items=greetings["results"], separator=" / ")
    g.output("text", joined["text"])
    result = engine.run(g, {"names": ["Ada", "Grace", "Alan"]})
    assert result.ok, result.errors()
    assert result.outputs["text"] == (
        "Hello Ada, from nodeloom! / Hello Grace, from nodeloom! / Hello Alan, from nodeloom!"
    )


def test_an_unknown_node_type_is_refused_with_suggestions(engine: LocalExecutor) -> None:
    error = failure(run_map(engine, node="text.templat", items=["a"], item_input="name"))
    assert error["message"].startswith("control.map: unknown node type 'text.templat'; did you mean 'text.template'")


def test_an_unknown_item_input_lists_the_inputs(engine: LocalExecutor, spans: Spans) -> None:
    error = failure(run_map(engine, node="test.map_sleep", items=[1], item_input="valeu"))
    assert "test.map_sleep has no input 'valeu' to receive the items; its inputs: seconds, value" in error["message"]
    assert spans.entries == []


def test_an_unknown_constant_input_is_refused(engine: LocalExecutor, spans: Spans) -> None:
    error = failure(run_map(engine, node="test.map_sleep", items=[1], item_input="value", inputs={"secs": 1}))
    assert "test.map_sleep has no input 'secs'" in error["message"] and spans.entries == []


def test_an_item_of_the_wrong_type_is_refused_before_anything_runs(engine: LocalExecutor, spans: Spans) -> None:
    error = failure(run_map(engine, node="test.map_sleep", items=[1, "two", 3], item_input="value"))
    assert "item 1 does not fit input 'value' of test.map_sleep: expected Int, received a string" in error["message"]
    assert spans.entries == []


def test_an_item_out_of_range_is_refused(engine: LocalExecutor) -> None:
    error = failure(run_map(engine, node="test.map_sleep", items=[1, 5000], item_input="value"))
    assert "item 1 does not fit input 'value'" in error["message"] and "above the maximum 1000" in error["message"]


def test_a_constant_of_the_wrong_type_is_refused(engine: LocalExecutor) -> None:
    error = failure(run_map(engine, node="test.map_sleep", items=[1], item_input="value",
                            inputs={"seconds": "slow"}))
    assert "`inputs` value 'seconds' does not fit input 'seconds' of test.map_sleep: expected Float" in error["message"]


def test_a_missing_required_input_is_named(engine: LocalExecutor) -> None:
    error = failure(run_map(engine, node="test.map_fail", items=[1], item_input="value"))
    assert "test.map_fail needs inputs ['bad']" in error["message"]


def test_a_node_with_several_outputs_needs_the_output_chosen(engine: LocalExecutor) -> None:
    error = failure(run_map(engine, node="test.map_split", items=[5], item_input="value"))
    assert "test.map_split has outputs high, low; choose one with `output`" in error["message"]
    chosen = run_map(engine, node="test.map_split", items=[5, 8], item_input="value", output="high")
    assert chosen.outputs["results"] == [3, 4]


def test_progress_is_reported_per_finished_item(engine: LocalExecutor) -> None:
    events: list[RunEvent] = []
    graph = map_graph(node="test.map_sleep", items=[1, 2, 3, 4], item_input="value", concurrency=1,
                      inputs={"seconds": 0.01})
    assert engine.run(graph, on_event=events.append).ok
    progress = [(e.data["done"], e.data["total"]) for e in events if e.kind is EventKind.NODE_PROGRESS]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_each_item_gets_a_context_of_its_own(engine: LocalExecutor) -> None:
    result = engine.run(map_graph(node="test.map_context", items=[7, 8], item_input="value"),
                        config=RunConfig(settings={"tone": "warm"}))
    assert result.outputs["results"] == [f"m[0]|{result.run_id}|1|warm", f"m[1]|{result.run_id}|1|warm"]


def test_items_are_retried_by_the_policy_of_the_target(engine: LocalExecutor, spans: Spans) -> None:
    result = run_map(engine, node="test.map_flaky", items=["a", "b"], item_input="key")
    assert result.outputs["results"] == ["A", "B"]
    assert spans.tries == {"a": 2, "b": 2}


def test_async_targets_run_too(engine: LocalExecutor) -> None:
    result = run_map(engine, node="test.map_async", items=["abc", "xyz"], item_input="text")
    assert result.outputs["results"] == ["cba", "zyx"]


def test_gpu_targets_run_one_item_at_a_time(engine: LocalExecutor, spans: Spans) -> None:
    assert run_map(engine, node="test.map_gpu", items=[1, 2, 3], item_input="value", concurrency=3).ok
    assert len(spans.entries) == 3 and spans.most_at_once() == 1


def test_an_empty_list_gives_an_empty_result(engine: LocalExecutor, spans: Spans) -> None:
    assert run_map(engine, node="test.map_sleep", items=[], item_input="value").outputs["results"] == []
    assert spans.entries == []


def test_cancelling_the_run_stops_the_map(engine: LocalExecutor, spans: Spans) -> None:
    graph = map_graph(node="test.map_steps", items=list(range(8)), item_input="value", concurrency=2)
    first_step = threading.Event()
    handle = engine.submit(graph, on_event=lambda e: first_step.set() if e.kind is EventKind.NODE_STARTED else None)
    assert first_step.wait(5)
    time.sleep(0.1)
    assert handle.cancel()
    result = handle.result(timeout=5)
    assert result.status is RunStatus.CANCELLED
    time.sleep(0.2)  # running items stop at their next step
    assert spans.entries == []  # no item ran to its end


def test_the_map_needs_a_catalog(tmp_path: Path) -> None:
    ctx = NodeContext(run_id="r", node_id="m", artifacts=LocalArtifactStore(tmp_path))
    with pytest.raises(NodeExecutionError, match="needs the run's node catalog"):
        control_map.invoke("m", {"node": "text.template", "items": [], "item_input": "name"}, ctx)


def test_map_passes_extra_inputs_to_every_item_including_links(tmp_path: Path) -> None:
    from nodeloom.core import Graph
    from nodeloom.executors import LocalExecutor
    from nodeloom.node_registry import builtin_registry

    g = Graph()
    greeting = g.add("text.template", template="Hi")
    mapped = g.add("control.map", node="text.template", items=["a", "b"], item_input="name",
                   template="{{ greeting }} {{ name }}", greeting=greeting["text"])
    g.output("lines", mapped["results"])
    with LocalExecutor(builtin_registry(), artifacts=tmp_path / "a") as executor:
        result = executor.run(g)
    assert result.outputs == {"lines": ["Hi a", "Hi b"]}


def test_map_refuses_an_input_given_twice(tmp_path: Path) -> None:
    from nodeloom.core import Graph
    from nodeloom.executors import LocalExecutor
    from nodeloom.node_registry import builtin_registry

    g = Graph()
    mapped = g.add("control.map", node="text.template", items=["a"], item_input="name",
                   inputs={"template": "x"}, template="y")
    g.output("lines", mapped["results"])
    with LocalExecutor(builtin_registry(), artifacts=tmp_path / "a") as executor:
        result = executor.run(g)
    error = next(iter(result.errors()))
    assert "given both in `inputs` and as inputs of the map" in error["message"]
