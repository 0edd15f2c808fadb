"""ruff and mypy pass on the whole code base."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    done = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", str(REPO)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean() -> None:
    # the repository's git-ignored .mypy_cache: a re-run re-checks only the modules that changed
    command = [sys.executable, str(REPO / "tools" / "typecheck.py"), "--cache-dir", str(REPO / ".mypy_cache")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MYPY_FORCE_COLOR": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
