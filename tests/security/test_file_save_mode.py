"""`file.save` creates files as open() would: mode 0666 less the process umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeloom.core import Graph, RunConfig
from nodeloom.executors import LocalExecutor


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_file_mode_follows_the_umask(
    executor: LocalExecutor, tmp_path: Path, umask: None, mask: int, mode: int
) -> None:
    os.umask(mask)
    g = Graph()
    g.output("path", g.add("file.save", data="hello", filename="notes/hello.txt")["path"])
    result = executor.run(g, config=RunConfig(out_dir=tmp_path / "out"))
    assert result.ok, result.errors()
    saved = tmp_path / "out" / "notes" / "hello.txt"
    assert saved.read_text() == "hello"
    assert stat.S_IMODE(saved.stat().st_mode) == mode
    assert [p.name for p in saved.parent.iterdir()] == ["hello.txt"]  # no temporary file left behind
