"""The drafting benchmark's held-out split and edit cases: their schema, and every graph in them valid.

The held-out cases (`bench/drafting/heldout/`) and the edit cases (`bench/drafting/edits/`)
are fixed data written before the drafter was tuned; these tests keep them loadable and their
reference graphs buildable with the builtin node types, so a low score is the drafter's, never
the case's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from drafting_graphs import RESERVED_REQUESTS, graph_problems, normalized

from nodeloom.core.validate import validate_graph
from nodeloom.node_registry import NodeRegistry, builtin_registry

ROOT = Path(__file__).resolve().parent.parent
DRAFTING = ROOT / "bench" / "drafting"
DEV_FILES = sorted((DRAFTING / "dev").glob("*.json"))
HELDOUT_FILES = sorted((DRAFTING / "heldout").glob("*.json"))
EDIT_FILES = sorted((DRAFTING / "edits").glob("*.json"))

HELDOUT_KEYS = {"id", "category", "length", "request", "reference"}
EDIT_KEYS = {"id", "category", "edits", "instruction", "base", "reference"}
EDIT_KINDS = {"add", "replace", "remove", "set", "rewire"}
LENGTHS = {"short", "long"}


def read(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: a case is a JSON object"
    return data


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return builtin_registry()


# -- the held-out split ---------------------------------------------------------------


def test_heldout_split_has_sixty_or_more_cases_in_every_dev_category() -> None:
    cases = [read(path) for path in HELDOUT_FILES]
    dev_categories = {read(path)["category"] for path in DEV_FILES}
    assert len(cases) >= 60
    assert {case["category"] for case in cases} == dev_categories
    for category in dev_categories:
        lengths = {case["length"] for case in cases if case["category"] == category}
        assert lengths == LENGTHS, f"{category}: held-out cases of both lengths, got {sorted(lengths)}"


@pytest.mark.parametrize("path", HELDOUT_FILES, ids=lambda p: p.stem)
def test_heldout_case_has_the_dev_case_format(path: Path) -> None:
    case = read(path)
    assert set(case) == HELDOUT_KEYS
    assert case["id"] == f"h{path.stem}", "the id is 'h' and the file name"
    assert case["length"] in LENGTHS
    assert isinstance(case["request"], str) and case["request"].strip()


def test_ids_are_unique_across_dev_heldout_and_edits() -> None:
    ids = [read(path)["id"] for path in DEV_FILES + HELDOUT_FILES + EDIT_FILES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_no_heldout_request_repeats_a_dev_or_reserved_request() -> None:
    dev = {normalized(read(path)["request"]) for path in DEV_FILES}
    reserved = {normalized(request) for request in RESERVED_REQUESTS}
    for path in HELDOUT_FILES:
        request = normalized(read(path)["request"])
        assert request not in dev, f"{path.name} repeats a dev request"
        assert request not in reserved, f"{path.name} is a request reserved for the end-to-end tests"


@pytest.mark.parametrize("path", HELDOUT_FILES, ids=lambda p: p.stem)
def test_heldout_reference_validates_against_the_builtin_registry(path: Path, registry: NodeRegistry) -> None:
    problems = graph_problems(read(path)["reference"], registry)
    assert problems == [], f"{path.name}: reference has problems:\n{json.dumps(problems, indent=2, default=str)}"


# -- the edit cases -------------------------------------------------------------------


def test_there_are_twenty_or_more_edit_cases_covering_every_kind_of_edit() -> None:
    cases = [read(path) for path in EDIT_FILES]
    assert len(cases) >= 20
    assert set().union(*(case["edits"] for case in cases)) == EDIT_KINDS


@pytest.mark.parametrize("path", EDIT_FILES, ids=lambda p: p.stem)
def test_edit_case_names_its_instruction_and_changes_the_base(path: Path) -> None:
    case = read(path)
    assert set(case) == EDIT_KEYS
    assert case["id"] == path.stem and case["category"] == "edit"
    assert case["edits"] and set(case["edits"]) <= EDIT_KINDS
    assert isinstance(case["instruction"], str) and case["instruction"].strip()
    assert case["base"] != case["reference"], "the reference is the base after the edit"


@pytest.mark.parametrize("path", EDIT_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("graph", ["base", "reference"])
def test_edit_graph_validates_against_the_builtin_registry(path: Path, graph: str, registry: NodeRegistry) -> None:
    problems = graph_problems(read(path)[graph], registry)
    assert problems == [], f"{path.name}: {graph} has problems:\n{json.dumps(problems, indent=2, default=str)}"


def test_a_map_input_its_node_type_lacks_is_reported(registry: NodeRegistry) -> None:
    # validation alone accepts this graph; the split tests must not
    document = {
        "format_version": 1,
        "inputs": {"photos": {"type": "List[Image]"}},
        "nodes": {
            "squares": {
                "type": "control.map",
                "inputs": {
                    "node": "image.resize",
                    "items": {"input": "photos"},
                    "item_input": "image",
                    "inputs": {"width": 64, "height": 64, "mode": "crop"},
                },
            }
        },
        "outputs": {"photos": {"node": "squares", "output": "results"}},
    }
    assert [issue.to_dict() for issue in validate_graph(document, registry)] == []
    problems = graph_problems(document, registry)
    assert [problem["node"] for problem in problems] == ["squares"]
    assert "'crop' is not one of" in problems[0]["message"]
