"""The Celery dispatch benchmark keeps working (tiny sizes; the figures themselves are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_celery_dispatch_benchmark_runs_and_reports_both_baselines(tmp_path: Path) -> None:
    report = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "celery_dispatch.py"), "--chain", "8", "--runs", "2",
         "--run-length", "3", "--repeat", "1", "--workers", "1", "--json", str(report)],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for part in ("plain celery chain", "nodeloom", "ms/node", "node tasks/s", "targets"):
        assert part in done.stdout
    figures = json.loads(report.read_text())
    (row,) = figures["rows"]
    assert row["workers"] == 1 and row["chain"] == 8
    assert row["plain_per_task_ms"] > 0 and row["node_per_task_ms"] > 0
    assert row["node_tasks_per_s"] > 0 and row["plain_tasks_per_s"] > 0
    assert "per_node_workers_1" in figures["targets"]
