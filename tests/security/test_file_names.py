"""`file.save` file names (the review's path findings): names that climb out of the output folder,
absolute and drive paths, backslashes, empty names and symbolic links leading outside are refused,
and nothing is written outside the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from single_node import error_of, run_node

from nodeloom.core import RunConfig, RunResult
from nodeloom.executors import LocalExecutor


def save(executor: LocalExecutor, out: Path | None, data: Any, filename: str) -> RunResult:
    return run_node(executor, "file.save", ("path",), RunConfig(out_dir=out), data=data, filename=filename)


@pytest.mark.parametrize(
    ("filename", "why"),
    [
        ("../escape.txt", "'..' component"),
        ("a/../../escape.txt", "'..' component"),
        ("/etc/escape.txt", "absolute path"),
        ("C:/escape.txt", "absolute path"),
        ("a\\..\\escape.txt", "backslash"),
        ("", "empty"),
    ],
)
def test_file_save_refuses_names_that_leave_the_folder(
    executor: LocalExecutor, tmp_path: Path, filename: str, why: str
) -> None:
    result = save(executor, tmp_path / "out", "x", filename)
    assert why in error_of(result)["message"]
    assert not (tmp_path / "escape.txt").exists() and not Path("/etc/escape.txt").exists()


def test_file_save_refuses_a_folder_link_that_points_outside(executor: LocalExecutor, tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    result = save(executor, out, "x", "link/sub/file.txt")
    assert "leads outside the output folder" in error_of(result)["message"]
    assert list(elsewhere.iterdir()) == []


def test_file_save_refuses_a_file_link_that_points_outside(executor: LocalExecutor, tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("original", encoding="utf-8")
    (out / "notes.txt").symlink_to(victim)
    result = save(executor, out, "overwritten", "notes.txt")
    assert "leads outside the output folder" in error_of(result)["message"]
    assert victim.read_text(encoding="utf-8") == "original"

