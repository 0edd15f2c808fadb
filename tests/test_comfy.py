"""Importing ComfyUI workflows (API and UI formats, PNG metadata) and exporting graphs back.

The workflow files under tests/comfy_workflows/ were written for these tests: each runnable
workflow in both formats (the UI files with reroutes, a primitive node, a group, a note, a
muted and a bypassed node, and a subgraph), and one with custom nodes that must be refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from nodeloom import comfy, validate
from nodeloom.cli import main
from nodeloom.comfy import ComfyImportError
from nodeloom.core.graph import Graph, InputRef, Link
from nodeloom.node_registry import default_registry
from nodeloom.node_registry.comfy import CLASSES
from tests.comfy_fixtures import RUNNABLE, WORKFLOWS


def graph_of(name: str, form: str) -> Graph:
    return comfy.load(WORKFLOWS / f"{name}.{form}.json", name=name)


@pytest.mark.parametrize("name", RUNNABLE)
def test_the_ui_and_api_formats_of_a_workflow_give_the_same_valid_graph(name: str) -> None:
    from_api, from_ui = graph_of(name, "api"), graph_of(name, "ui")
    assert from_ui.to_json() == from_api.to_json()
    assert validate(from_api) == []
    assert all(node.type.startswith("comfy.") for node in from_api.nodes.values())


@pytest.mark.parametrize("name", RUNNABLE)
def test_api_import_export_import_is_a_fixed_point(name: str) -> None:
    imported = graph_of(name, "api")
    exported = comfy.export(imported)
    assert comfy.load(exported, name=name).to_json() == imported.to_json()
    original = json.loads((WORKFLOWS / f"{name}.api.json").read_text())
    assert {key: entry["class_type"] for key, entry in exported.items()} == \
        {key: entry["class_type"] for key, entry in original.items()}


def test_prompts_seeds_sizes_and_steps_become_named_graph_inputs() -> None:
    graph = graph_of("txt2img", "api")
    assert {name: spec.default for name, spec in graph.inputs.items()} == {
        "seed": 42, "steps": 2, "width": 64, "height": 64, "positive": "a red fox in the snow", "negative": "blurry",
    }
    assert graph.nodes["6"].inputs["text"] == InputRef("positive")
    assert graph.nodes["3"].inputs["positive"] == Link("6", "conditioning")
    assert dict(graph.outputs) == {"images": Link("9", "images")}


def test_several_samplers_name_their_inputs_by_node_and_combined_prompts_stay_positive() -> None:
    graph = graph_of("hires_fix", "api")
    assert set(graph.inputs) == {"positive_2", "positive_3", "negative", "width", "height", "seed_7", "steps_7",
                                 "seed_12_9", "steps_12_9"}
    # the subgraph's nodes keep ComfyUI's "outer:inner" ids as "outer.inner"
    assert graph.nodes["12.9"].type == "comfy.ksampler"


def test_the_ui_reader_resolves_reroutes_primitives_and_leaves_out_muted_bypassed_and_notes() -> None:
    prompt = comfy.ui_to_api(json.loads((WORKFLOWS / "txt2img.ui.json").read_text()))
    assert set(prompt) == {"3", "4", "5", "6", "7", "8", "9"}  # no reroute, primitive, note, muted preview
    assert prompt["7"]["inputs"]["clip"] == ["4", 1]  # through the reroute
    assert prompt["3"]["inputs"]["latent_image"] == ["5", 0]  # through the bypassed custom node
    assert prompt["3"]["inputs"]["seed"] == 42  # from the primitive; "randomize" is UI state, not steps
    assert prompt["3"]["inputs"]["steps"] == 2


def test_custom_nodes_are_refused_all_at_once_in_both_formats() -> None:
    for form, ids in (("api", {"10", "11"}), ("ui", {"30", "32"})):
        with pytest.raises(ComfyImportError) as raised:
            graph_of("custom_node", form)
        issues = raised.value.issues
        assert {issue.node for issue in issues} == ids
        assert {issue.code for issue in issues} == {"comfy_unsupported_node"}
        assert {issue.received for issue in issues} == {"WildcardPromptMaker", "FancyUpscaler4x"}
        assert all("supported are: CLIPSetLastLayer" in issue.message for issue in issues)


def test_lenient_import_keeps_what_can_run_and_lists_the_rest() -> None:
    imported = comfy.import_workflow(WORKFLOWS / "custom_node.api.json", lenient=True)
    assert set(imported.graph.nodes) == {"3", "4", "5", "6", "7", "8", "9"}
    assert {(issue.node, issue.code) for issue in imported.skipped} == {
        ("10", "comfy_unsupported_node"), ("11", "comfy_unsupported_node"), ("12", "comfy_node_left_out"),
    }
    assert validate(imported.graph) == []


def test_a_png_with_workflow_metadata_imports(tmp_path: Path) -> None:
    metadata = PngImagePlugin.PngInfo()
    metadata.add_text("workflow", (WORKFLOWS / "txt2img.ui.json").read_text())
    picture = tmp_path / "ComfyUI_00001_.png"
    Image.new("RGB", (8, 8)).save(picture, pnginfo=metadata)
    imported = comfy.import_workflow(picture, name="txt2img")
    assert imported.format == "ui"
    assert imported.graph.to_json() == graph_of("txt2img", "api").to_json()


def test_an_unknown_sampler_or_scheduler_is_a_validation_error_naming_the_supported_ones() -> None:
    prompt = json.loads((WORKFLOWS / "txt2img.api.json").read_text())
    prompt["3"]["inputs"].update(sampler_name="euler_magic", scheduler="wobbly")
    issues = validate(comfy.load(prompt))
    assert {(issue.node, issue.port, issue.code) for issue in issues} == {
        ("3", "sampler_name", "not_in_choices"), ("3", "scheduler", "not_in_choices"),
    }
    messages = " ".join(issue.message for issue in issues)
    assert "dpmpp_2m" in messages and "karras" in messages


def test_export_refuses_nodes_without_a_comfyui_class() -> None:
    graph = graph_of("txt2img", "api")
    graph.add("text.template", "note", template="hello")
    with pytest.raises(ComfyImportError) as raised:
        comfy.export(graph)
    assert [(issue.node, issue.code) for issue in raised.value.issues] == [("note", "comfy_no_class")]


def test_validate_and_run_recognise_a_comfyui_file() -> None:
    runner = CliRunner()
    for form, label in (("api", "API"), ("ui", "UI")):
        path = str(WORKFLOWS / f"txt2img.{form}.json")
        for command in (["validate", path], ["run", path, "-q"]):
            result = runner.invoke(main, command)
            assert result.exit_code == 1, result.output
            assert f"this is a ComfyUI workflow ({label} format)" in result.output
            assert "nodeloom import-comfy" in result.output


def test_import_comfy_and_export_comfy_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    graph_file = tmp_path / "graph.json"
    result = runner.invoke(main, ["import-comfy", str(WORKFLOWS / "lora.ui.json"), "-o", str(graph_file)])
    assert result.exit_code == 0, result.output
    assert Graph.loads(graph_file.read_text()).to_json() == {**graph_of("lora", "api").to_json(), "name": "lora"}
    exported = runner.invoke(main, ["export-comfy", str(graph_file)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["7"]["class_type"] == "KSampler"
    refused = runner.invoke(main, ["import-comfy", str(WORKFLOWS / "custom_node.api.json")])
    assert refused.exit_code == 1
    assert "WildcardPromptMaker" in refused.output and "FancyUpscaler4x" in refused.output
    lenient = runner.invoke(main, ["import-comfy", str(WORKFLOWS / "custom_node.api.json"), "--lenient"])
    assert lenient.exit_code == 0 and "left out 3 node(s)" in lenient.output


def test_nodes_comfy_lists_every_supported_class() -> None:
    result = CliRunner().invoke(main, ["nodes", "comfy", "--json"])
    assert result.exit_code == 0, result.output
    listed = {entry["type"] for entry in json.loads(result.stdout)["nodes"]}
    assert {entry.node_type for entry in CLASSES.values()} <= listed
    registry = default_registry()
    for entry in CLASSES.values():
        assert registry.get(entry.node_type).spec.description.startswith(entry.class_type + ":")
