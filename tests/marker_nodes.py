"""Test nodes that leave a marker file per execution, so tests count executions across processes,
and the graph the executor suites share.

Imported by name (`marker_nodes`) by the executor tests and by the Celery worker processes
they start (pytest puts this folder on `sys.path`; workers get it as an extra path).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from nodeloom.core import Float, Graph, NodeContext, RetryPolicy, node
from nodeloom.core.errors import NodeExecutionError

MODULE = "marker_nodes"
#: the folder to put on a worker's path so that it imports `MODULE`
FOLDER = Path(__file__).resolve().parent


def _mark(folder: str, label: str) -> None:
    Path(folder, f"{label}.{os.getpid()}.{time.time_ns()}").touch()


def installed_pack_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `nodeloom` process that finds this module as an installed node pack
    (an entry point of a distribution laid out as pip does), with its own $NODELOOM_HOME."""
    site = tmp_path / "site"
    info = site / "markerpack-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: markerpack\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[nodeloom.nodes]\nmarker = {MODULE}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(FOLDER)]),
               NODELOOM_HOME=str(tmp_path / "home"), NO_COLOR="1", COLUMNS="200")
    env.pop("NODELOOM_CACHE_MAX_BYTES", None)
    return env


def markers(folder: Path, label: str) -> list[Path]:
    """The markers executions labelled `label` left in `folder`, oldest name first."""
    return sorted(folder.glob(f"{label}.*"))


@node("marker.mark", output="value")
def mark(folder: str, label: str, value: float = 0.0, seconds: float = 0.0) -> float:
    """Sleep `seconds`, leave a marker, return `value`."""
    time.sleep(seconds)
    _mark(folder, label)
    return value


@node("marker.fail", output="value")
def fail(folder: str, label: str, message: str) -> float:
    """Leave a marker, then fail for good."""
    _mark(folder, label)
    raise NodeExecutionError(message, retryable=False)


@node("marker.flaky", output="value", retry=RetryPolicy(max_attempts=3, initial_backoff=0.05))
def flaky(folder: str, label: str, failures: int) -> int:
    """Fail (retryably) the first `failures` times, then return the number of tries."""
    _mark(folder, label)
    tries = len(markers(Path(folder), label))
    if tries <= failures:
        raise NodeExecutionError(f"try {tries} fails", retryable=True)
    return tries


@node("marker.slow_retry", output="value", retry=RetryPolicy(max_attempts=2, initial_backoff=4.0, jitter=0.0))
def slow_retry(folder: str, label: str) -> int:
    """Fail the first time; the retry waits 4 s (longer than the Celery tests' visibility timeout), then takes 1 s."""
    _mark(folder, label)
    tries = len(markers(Path(folder), label))
    if tries == 1:
        raise NodeExecutionError("first try fails", retryable=True)
    time.sleep(1.0)
    return tries


@node("marker.wait", output="value")
def wait(ctx: NodeContext, folder: str, label: str, seconds: float) -> float:
    """Report progress every 50 ms for `seconds`; markers at the start and at the end."""
    _mark(folder, label + "-start")
    steps = max(1, int(seconds / 0.05))
    for step in range(steps):
        ctx.progress(step, steps, "waiting")
        time.sleep(0.05)
    _mark(folder, label + "-end")
    return seconds


@node("marker.crash", output="value")
def crash(folder: str, label: str) -> float:
    """Kill the process running it, every time."""
    _mark(folder, label)
    os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


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


def review_graph(folder: Path, timeout: float = 0, on_timeout: str = "reject", side: bool = False) -> dict[str, Any]:
    """count -> draft -> approve -> final: the text a person approves, and what follows it; with
    `side`, a marker node that does not depend on the approval (it finishes while the run waits)."""
    where = str(folder)
    graph: dict[str, Any] = {
        "name": "review",
        "nodes": {
            "count": {"type": "marker.mark", "inputs": {"folder": where, "label": "count", "value": 3}},
            "draft": {"type": "text.template",
                      "inputs": {"template": "Buy {{ n }} now", "n": {"node": "count", "output": "value"}}},
            "approve": {"type": "control.approve",
                        "inputs": {"value": {"node": "draft", "output": "text"}, "message": "check the wording",
                                   "timeout": timeout, "on_timeout": on_timeout}},
            "final": {"type": "text.template",
                      "inputs": {"template": "{{ t }}!", "t": {"node": "approve", "output": "value"}}},
        },
        "outputs": {"text": {"node": "final", "output": "text"}},
    }
    if side:
        graph["nodes"]["side"] = {"type": "marker.mark", "inputs": {"folder": where, "label": "side", "value": 2}}
        graph["outputs"]["side"] = {"node": "side", "output": "value"}
    return graph
