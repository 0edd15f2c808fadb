"""The benchmark runner's splits: dev, validation, heldout and edits folders, a clear error for a missing one."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from nodeloom.agents.benchmark import BenchmarkError, load_split
from nodeloom.agents.cli import bench

REFERENCE = {"format_version": 1, "name": "r", "nodes": {"card": {"type": "image.title_card",
                                                                  "inputs": {"text": "Hi"}}}}


def test_the_dev_split_holds_the_66_tuning_cases() -> None:
    cases = load_split("dev")
    assert len(cases) == 66 and {case.split for case in cases} == {"dev"}


def test_the_validation_split_holds_ten_cases_per_dev_category() -> None:
    cases = load_split("validation")
    assert len(cases) == 60 and {case.split for case in cases} == {"validation"}
    dev_categories = {case.category for case in load_split("dev")}
    assert Counter(case.category for case in cases) == Counter(dict.fromkeys(dev_categories, 10))


def test_the_fresh_split_holds_ten_cases_per_dev_category() -> None:
    cases = load_split("fresh")
    assert len(cases) == 60 and {case.split for case in cases} == {"fresh"}
    dev_categories = {case.category for case in load_split("dev")}
    assert Counter(case.category for case in cases) == Counter(dict.fromkeys(dev_categories, 10))


def test_a_missing_split_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    with pytest.raises(BenchmarkError, match="the heldout split is missing"):
        load_split("heldout", tmp_path)
    with pytest.raises(BenchmarkError, match="unknown split"):
        load_split("test", tmp_path)


def test_an_edit_case_loads_with_its_base_graph_and_all_reads_every_split_there_is(tmp_path: Path) -> None:
    (tmp_path / "edits").mkdir()
    case = {"id": "e1", "category": "edit", "base": REFERENCE, "instruction": "make it square", "reference": REFERENCE}
    (tmp_path / "edits" / "e1.json").write_text(json.dumps(case))
    (loaded,) = load_split("all", tmp_path)
    assert (loaded.split, loaded.category, loaded.request, loaded.base) == ("edits", "edit", "make it square",
                                                                            REFERENCE)


def test_cli_names_a_missing_split_without_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "bench" / "drafting" / "dev").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for split in ("edits", "validation"):
        outcome = CliRunner().invoke(bench, ["drafting", "--split", split, "--no-run"])
        assert outcome.exit_code != 0 and f"the {split} split is missing" in outcome.output
        assert outcome.exception is None or isinstance(outcome.exception, SystemExit)
