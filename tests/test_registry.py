"""The registry: lookup, search, catalog export, and plugin discovery through entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from nodeloom.core import NodeDefinitionError, UnknownNodeTypeError, node
from nodeloom.node_registry import ENTRY_POINT_GROUP, NodeRegistry, builtin_registry


def test_builtin_packs_are_registered() -> None:
    registry = builtin_registry()
    for name in ("text.template", "text.join", "json.extract", "json.parse", "math.add", "math.sum"):
        assert name in registry


def test_unknown_type_error_suggests_nearest_names() -> None:
    with pytest.raises(UnknownNodeTypeError) as caught:
        builtin_registry().get("text.templat")
    assert caught.value.suggestions[0] == "text.template"
    assert caught.value.to_dict()["error"]["code"] == "unknown_node_type"


def test_duplicate_registration_is_refused() -> None:
    registry = builtin_registry()

    @node("text.template")
    def impostor(x: str) -> str:
        return x

    with pytest.raises(NodeDefinitionError, match="already registered"):
        registry.register(impostor)


def test_extended_registry_falls_back_to_its_parent_and_counts_revisions() -> None:
    base = builtin_registry()

    @node("extra.echo")
    def echo(x: str) -> str:
        return x

    child = base.extended([echo])
    assert "extra.echo" in child and "extra.echo" not in base
    assert child.find("math.add") is base.find("math.add")
    before = child.revision
    base.register(_other)
    assert child.revision > before


@node("extra.other")
def _other(x: int) -> int:
    return x


def test_search_ranks_name_matches_first() -> None:
    found = [spec.type for spec in builtin_registry().search("template")]
    assert found[0] == "text.template"
    assert next(spec.type for spec in builtin_registry().search("json path")) == "json.extract"
    assert builtin_registry().search("zzzz") == []


def test_catalog_has_a_valid_json_schema_per_node_for_inputs_and_outputs() -> None:
    catalog = builtin_registry().catalog()
    assert catalog["format_version"] == 1
    entries = {entry["type"]: entry for entry in catalog["nodes"]}
    for entry in entries.values():
        jsonschema.Draft202012Validator.check_schema(entry["inputs"])
        jsonschema.Draft202012Validator.check_schema(entry["outputs"])
    add = entries["math.add"]
    assert add["inputs"]["required"] == ["a"]
    assert add["inputs"]["properties"]["b"]["default"] == 0.0
    assert add["outputs"]["properties"]["result"]["x-nodeloom-type"] == "Float"
    jsonschema.validate({"a": 1, "b": 2.5}, add["inputs"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"a": "one"}, add["inputs"])
    template = entries["text.template"]
    assert template["inputs"]["additionalProperties"] == {"x-nodeloom-type": "Any"}


def _install_fake_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """Lay out a distribution the way pip does (a package plus its .dist-info)."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_entry_point_packs_are_discovered_and_broken_ones_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path,
        "nodeloom_pack_demo",
        f"""
        [{ENTRY_POINT_GROUP}]
        shouting = pack_shout
        broken = pack_broken
        registering = pack_register:register
        """,
        {
            "pack_shout": """
                from nodeloom.core import node

                @node("shout.upper")
                def upper(text: str) -> str:
                    '''Upper-case text.'''
                    return text.upper()
            """,
            "pack_broken": "raise RuntimeError('this pack is broken')\n",
            "pack_register": """
                from nodeloom.core import node

                def register(registry):
                    @node("shout.lower")
                    def lower(text: str) -> str:
                        return text.lower()
                    registry.register(lower)
            """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = builtin_registry()
    problems = registry.discover()
    try:
        assert registry.get("shout.upper").invoke("n", {"text": "hi"}) == {"result": "HI"}
        assert "shout.lower" in registry
        assert [(p.entry_point, "this pack is broken" in p.message) for p in problems] == [("broken", True)]
        assert registry.plugin_problems == problems
    finally:
        for module in ("pack_shout", "pack_broken", "pack_register"):
            sys.modules.pop(module, None)


def test_registering_something_that_is_not_a_node_fails() -> None:
    with pytest.raises(NodeDefinitionError, match="not a node"):
        NodeRegistry().register(len)
