"""Test nodes that keep a processor busy, for the process-isolation tests.

Imported by name (`busy_nodes`) by the test process and by the `nodeloom serve` the tests
start (`--node-module busy_nodes`, this folder on PYTHONPATH). Each node writes its process
id to `<folder>/<label>.pid` when it starts, so a test can tell which process ran it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nodeloom.core import node

MODULE = "busy_nodes"


def _note_pid(folder: str, label: str) -> None:
    Path(folder, f"{label}.pid").write_text(str(os.getpid()))


@node("busy.bigint", output="rounds")
def bigint(folder: str, label: str, seconds: float, exponent: int = 3_000_000) -> int:
    """Compute `7 ** exponent` over and over for `seconds`: each power is one C call that holds the
    GIL throughout (as a big-integer template expression would), so no other thread of this process
    runs meanwhile, not even a timeout's timer."""
    _note_pid(folder, label)
    rounds = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        _ = 7**exponent
        rounds += 1
    return rounds


@node("busy.spin", output="rounds")
def spin(folder: str, label: str, seconds: float) -> int:
    """Spin in pure Python for `seconds`, ignoring cancellation (the interpreter still switches threads)."""
    _note_pid(folder, label)
    rounds = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rounds += 1
    return rounds
