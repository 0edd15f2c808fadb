"""Run one node in a graph of its own and read its error: shared by the tools tests and the
security suite (tests/security/)."""

from __future__ import annotations

from typing import Any

from nodeloom.core import Graph, NodeState, RunConfig, RunResult
from nodeloom.executors import LocalExecutor


def run_node(
    executor: LocalExecutor,
    type_name: str,
    outputs: tuple[str, ...],
    config: RunConfig | None = None,
    retry: dict[str, Any] | None = None,
    **inputs: Any,
) -> RunResult:
    """Run a graph holding one node `n` of `type_name` with literal `inputs`, its `outputs` exposed."""
    g = Graph()
    handle = g.add(type_name, "n", **inputs)
    if retry is not None:
        g.configure("n", retry=retry)
    for name in outputs:
        g.output(name, handle[name])
    return executor.run(g, config=config)


def error_of(result: RunResult) -> dict[str, Any]:
    """The error of node `n`, which must have failed."""
    record = result.nodes["n"]
    assert record.state is NodeState.FAILED and record.error is not None
    return dict(record.error)
