"""The dev, validation and fresh drafting cases: each loads, its reference validates, the set is spread as declared."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from drafting_graphs import RESERVED_REQUESTS, graph_problems, normalized

from nodeloom.core.graph import Graph
from nodeloom.core.validate import validate_graph
from nodeloom.node_registry import NodeRegistry, builtin_registry

DRAFTING = Path(__file__).resolve().parent.parent / "bench" / "drafting"
CASES_DIR = DRAFTING / "dev"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))
VALIDATION_FILES = sorted((DRAFTING / "validation").glob("*.json"))
FRESH_FILES = sorted((DRAFTING / "fresh").glob("*.json"))
CATEGORIES = {"llm", "image", "video", "tool", "mixed", "multi_step"}
LENGTHS = {"short", "long"}
FILE_NAME = re.compile(r"^(\d{3})-[a-z0-9-]+\.json$")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def catalog() -> NodeRegistry:
    return builtin_registry()


@pytest.fixture(scope="module")
def cases() -> list[dict[str, Any]]:
    return [load(path) for path in CASE_FILES]


@pytest.fixture(scope="module")
def validation_cases() -> list[dict[str, Any]]:
    return [load(path) for path in VALIDATION_FILES]


@pytest.fixture(scope="module")
def fresh_cases() -> list[dict[str, Any]]:
    return [load(path) for path in FRESH_FILES]


def test_there_are_at_least_sixty_cases_with_unique_ids(cases: list[dict[str, Any]]) -> None:
    ids = [case["id"] for case in cases]
    assert len(cases) >= 60
    assert len(set(ids)) == len(ids)
    numbers = [FILE_NAME.match(path.name).group(1) for path in CASE_FILES if FILE_NAME.match(path.name)]
    assert len(numbers) == len(CASE_FILES), "case files are named NNN-<slug>.json"
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda path: path.stem)
def test_each_case_is_complete_and_named_after_its_file(path: Path) -> None:
    case = load(path)
    assert set(case) == {"id", "category", "length", "request", "reference"}
    assert case["id"] == path.stem
    assert case["category"] in CATEGORIES
    assert case["length"] in LENGTHS
    assert isinstance(case["request"], str) and case["request"].strip()


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda path: path.stem)
def test_each_reference_graph_validates_with_built_in_nodes(path: Path, catalog: NodeRegistry) -> None:
    reference = load(path)["reference"]
    assert validate_graph(reference, catalog) == []
    graph = Graph.from_json(reference)
    assert 2 <= len(graph.nodes) <= 12
    assert all(catalog.find(node.type) is not None for node in graph.nodes.values())


def test_every_category_has_short_and_long_requests_in_even_shares(cases: list[dict[str, Any]]) -> None:
    spread = Counter((case["category"], case["length"]) for case in cases)
    for category in CATEGORIES:
        assert spread[(category, "short")] >= 3, category
        assert spread[(category, "long")] >= 3, category
    per_category = Counter(case["category"] for case in cases)
    assert max(per_category.values()) - min(per_category.values()) <= 2


def test_long_requests_are_longer_than_short_ones(cases: list[dict[str, Any]],
                                                 validation_cases: list[dict[str, Any]],
                                                 fresh_cases: list[dict[str, Any]]) -> None:
    # "long" means several sentences of detail; "short" a one-line ask
    for case in cases + validation_cases + fresh_cases:
        words = len(case["request"].split())
        if case["length"] == "short":
            assert words <= 25, case["id"]
        else:
            assert words >= 30, case["id"]


def test_diffusion_models_and_addresses_are_graph_inputs(cases: list[dict[str, Any]],
                                                        validation_cases: list[dict[str, Any]],
                                                        fresh_cases: list[dict[str, Any]]) -> None:
    # a model path or an address is what a user fills in per run, never a literal in the reference
    for case in cases + validation_cases + fresh_cases:
        nodes = case["reference"]["nodes"]
        for node_id, node in nodes.items():
            inputs = node["inputs"]
            if node["type"] == "image.pipeline":
                assert inputs["model"] == {"input": "model"}, (case["id"], node_id)
            if node["type"] in {"http.request", "webhook.post"}:
                assert set(inputs["url"]) == {"input"}, (case["id"], node_id)


# -- the validation split: fresh requests in other domains, written after tuning on dev began ------------


#: the splits written after dev, in dev's case format: (split, id letter, case files)
LATER_SPLITS = [("validation", "v", VALIDATION_FILES), ("fresh", "f", FRESH_FILES)]
LATER_FILES = [(letter, path) for _, letter, files in LATER_SPLITS for path in files]


@pytest.mark.parametrize("files", [files for _, _, files in LATER_SPLITS], ids=[name for name, _, _ in LATER_SPLITS])
def test_later_split_has_ten_cases_of_both_lengths_in_every_category(files: list[Path]) -> None:
    later = [load(path) for path in files]
    assert Counter(case["category"] for case in later) == Counter(dict.fromkeys(CATEGORIES, 10))
    for category in CATEGORIES:
        lengths = {case["length"] for case in later if case["category"] == category}
        assert lengths == LENGTHS, category


@pytest.mark.parametrize(("letter", "path"), LATER_FILES, ids=lambda value: getattr(value, "stem", ""))
def test_later_case_has_the_dev_format_and_a_numbered_id_of_its_split(letter: str, path: Path) -> None:
    case = load(path)
    assert set(case) == {"id", "category", "length", "request", "reference"}
    assert case["id"] == path.stem
    assert re.fullmatch(rf"{letter}\d{{2}}-{case['category'].replace('_', '-')}-[a-z0-9-]+", case["id"])
    assert case["length"] in LENGTHS
    assert isinstance(case["request"], str) and case["request"].strip()


@pytest.mark.parametrize("path", VALIDATION_FILES + FRESH_FILES, ids=lambda path: path.stem)
def test_later_reference_validates_and_its_maps_fit_their_node_types(path: Path, catalog: NodeRegistry) -> None:
    reference = load(path)["reference"]
    assert graph_problems(reference, catalog) == []
    assert 2 <= len(Graph.from_json(reference).nodes) <= 12


def test_no_validation_request_repeats_a_dev_paraphrase_or_reserved_request(
        validation_cases: list[dict[str, Any]]) -> None:
    paraphrases = sorted((DRAFTING / "paraphrase").glob("*.json"))
    taken = {normalized(load(path)["request"]) for path in CASE_FILES + paraphrases}
    taken |= {normalized(request) for request in RESERVED_REQUESTS}
    assert [case["id"] for case in validation_cases if normalized(case["request"]) in taken] == []


# -- the fresh split: requests written blind to the drafter's code, library and the held-out split ------


def test_fresh_ids_are_numbered_one_to_sixty_and_unique_across_splits(fresh_cases: list[dict[str, Any]]) -> None:
    assert sorted(case["id"][:3] for case in fresh_cases) == [f"f{number:02d}" for number in range(1, 61)]
    others = [DRAFTING / name for name in ("dev", "validation", "paraphrase", "edits")]
    ids = [case["id"] for case in fresh_cases] + [load(path)["id"] for folder in others
                                                   for path in sorted(folder.glob("*.json"))]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_no_fresh_request_repeats_a_dev_validation_paraphrase_or_reserved_request(
        fresh_cases: list[dict[str, Any]]) -> None:
    paraphrases = sorted((DRAFTING / "paraphrase").glob("*.json"))
    taken = {normalized(load(path)["request"]) for path in CASE_FILES + VALIDATION_FILES + paraphrases}
    taken |= {normalized(request) for request in RESERVED_REQUESTS}
    requests = [normalized(case["request"]) for case in fresh_cases]
    assert len(set(requests)) == len(requests)
    assert [case["id"] for case in fresh_cases if normalized(case["request"]) in taken] == []
