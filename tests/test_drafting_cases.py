"""The drafting benchmark's cases: each loads, its reference validates, and the set is spread as declared."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nodeloom.core.graph import Graph
from nodeloom.core.validate import validate_graph
from nodeloom.node_registry import NodeRegistry, builtin_registry

CASES_DIR = Path(__file__).resolve().parent.parent / "bench" / "drafting" / "dev"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))
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


def test_long_requests_are_longer_than_short_ones(cases: list[dict[str, Any]]) -> None:
    # "long" means several sentences of detail; "short" a one-line ask
    for case in cases:
        words = len(case["request"].split())
        if case["length"] == "short":
            assert words <= 25, case["id"]
        else:
            assert words >= 30, case["id"]


def test_diffusion_models_and_addresses_are_graph_inputs(cases: list[dict[str, Any]]) -> None:
    # a model path or an address is what a user fills in per run, never a literal in the reference
    for case in cases:
        nodes = case["reference"]["nodes"]
        for node_id, node in nodes.items():
            inputs = node["inputs"]
            if node["type"] == "image.pipeline":
                assert inputs["model"] == {"input": "model"}, (case["id"], node_id)
            if node["type"] in {"http.request", "webhook.post"}:
                assert set(inputs["url"]) == {"input"}, (case["id"], node_id)
