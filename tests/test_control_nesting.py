"""Nested control.map: all the maps of a run share one cap on items running at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeloom.core import Graph, node
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry
from nodeloom.node_registry.control.map import MAX_RUN_ITEMS


class Running:
    """How many leaf items are inside their node at once, and the most ever; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = self.entries = 0
        self.most_threads = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.entries += 1
            self.most = max(self.most, self.now)
            self.most_threads = max(self.most_threads, threading.active_count())

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


RUNNING = Running()


@node("test.nest_leaf", output="value")
def nest_leaf(value: int) -> int:
    """Twice the value, after a short sleep; counts itself as running meanwhile."""
    RUNNING.enter()
    try:
        time.sleep(0.01)
        return value * 2
    finally:
        RUNNING.leave()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[LocalExecutor]:
    registry: NodeRegistry = builtin_registry()
    registry.register_module("nodeloom.node_registry.control")
    with LocalExecutor(registry.extended([nest_leaf]), artifacts=tmp_path / "artifacts") as executor:
        yield executor


def test_three_nested_maps_never_run_more_items_than_the_run_cap(engine: LocalExecutor) -> None:
    items = [[[100 * a + 10 * b + c for c in range(8)] for b in range(8)] for a in range(8)]
    leaf = {"node": "test.nest_leaf", "item_input": "value", "concurrency": 8}
    middle = {"node": "control.map", "item_input": "items", "inputs": leaf, "concurrency": 8}
    g = Graph()
    outer = g.add("control.map", "m", node="control.map", items=items, item_input="items", inputs=middle,
                  concurrency=8)
    g.output("results", outer["results"])
    threads_before = threading.active_count()

    result = engine.run(g)

    assert result.ok, result.errors()
    assert result.outputs["results"] == [[[2 * v for v in inner] for inner in middle_] for middle_ in items]
    assert RUNNING.entries == 512
    assert RUNNING.most <= MAX_RUN_ITEMS
    # one thread per running item at most (plus idle pool threads of the maps in progress), not 8 * 8 * 8
    assert RUNNING.most_threads - threads_before <= 8 * MAX_RUN_ITEMS
