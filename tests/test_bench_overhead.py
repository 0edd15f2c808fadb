"""The overhead benchmark keeps working (tiny sizes; the figures themselves are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_overhead_benchmark_runs_and_prints_every_baseline(tmp_path: Path) -> None:
    report = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "overhead.py"), "--sizes", "20,40", "--repeat", "1",
         "--exact-repeat", "--json", str(report)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for part in ("chain N=20", "wide  N=40", "plain", "kahn", "nodeloom cold", "cached", "changed", "langgraph"):
        assert part in done.stdout
    import json

    figures = json.loads(report.read_text())
    rows = {(row["shape"], row["n"]): row for row in figures["rows"]}
    assert rows[("chain", 20)]["changed_reran"] == 10  # the second half of the chain
    assert rows[("wide", 40)]["changed_reran"] == 2  # one branch and the sink
