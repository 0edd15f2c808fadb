"""The drafting agent end to end: retrieval by meaning, the real LangGraph machine with the embedded
SmolLM2 model, the CLI, the benchmark runner, and the openai provider against a real
OpenAI-compatible server (llama-cpp-python's, on 127.0.0.1, serving the same GGUF file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from netutil import free_port

from nodeloom.agents import draft
from nodeloom.agents.benchmark import (
    SAMPLE_DOCUMENT,
    SampleValues,
    api_document,
    load_cases,
    run_draft,
    sample_server,
    stand_in_diffusion,
)
from nodeloom.agents.cli import bench
from nodeloom.agents.cli import draft as draft_command
from nodeloom.agents.drafter import EXAMPLES, Drafter, extract_program
from nodeloom.agents.planner import complete_graph
from nodeloom.agents.program import compile_program
from nodeloom.agents.providers import ProviderChoice
from nodeloom.agents.retrieve import CatalogIndex, retrieve
from nodeloom.core import Graph
from nodeloom.core.validate import validate_graph
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return builtin_registry()


def text_only_registry() -> NodeRegistry:
    only = NodeRegistry()
    only.register_module("nodeloom.node_registry.text")
    return only


# -- pieces that need no LLM -----------------------------------------------------------


def test_the_prompt_examples_compile_and_validate(registry: NodeRegistry) -> None:
    for _, program in EXAMPLES:
        assert validate_graph(compile_program(program, registry), registry) == []


def test_the_program_is_taken_from_a_fenced_reply_without_the_prose() -> None:
    reply = (
        "Sure! Here is the program:\n```python\nbrief = text.template(template=\"Hi\")\n"
        "This line is chatter.\noutput(\"text\", brief)\n```\nHope it helps."
    )
    assert extract_program(reply) == 'brief = text.template(template="Hi")\noutput("text", brief)'


@pytest.mark.slow
def test_retrieval_ranks_nodes_by_meaning_and_embeds_a_catalog_once(registry: NodeRegistry) -> None:
    spoken = [c.type for c in retrieve("narrate the summary with a synthetic voice", registry, 3)]
    assert {"audio.speak", "audio.voice_over"} & set(spoken)  # both speak text
    moving = [c.type for c in retrieve("turn my photos into a movie with captions", registry, 3)]
    assert "video.slideshow" in moving
    assert CatalogIndex.of(registry) is CatalogIndex.of(builtin_registry())  # same catalog, same embeddings


@pytest.mark.slow
def test_a_request_nothing_in_the_catalog_can_make_is_refused_with_a_reason() -> None:
    result = draft("Make a video of our product launch", registry=text_only_registry(), max_repairs=0)
    assert not result.ok and result.graph is None
    assert result.refusal is not None and result.refusal.unmet == ("Video",)
    answer = result.to_json()
    assert answer["refusal"]["code"] == "unreachable_output"
    assert json.loads(json.dumps(answer)) == answer


def test_an_empty_request_is_refused() -> None:
    result = draft("   ")
    assert result.refusal is not None and result.refusal.code == "empty_request"


# -- the real machine with the embedded model ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_text", "must_have"),
    [
        ("Write a haiku about autumn leaves", "llm.chat"),
        ("Write a one-line slogan for a tea shop and read it aloud", "audio.speak"),
    ],
)
def test_the_embedded_provider_drafts_from_the_recipes_without_calling_the_llm(
    registry: NodeRegistry, request_text: str, must_have: str
) -> None:
    # SmolLM2 cannot write graphs: with the local provider the recipe composition is the answer
    steps: list[str] = []
    drafter = Drafter(registry, ProviderChoice("local"), max_repairs=1,
                      on_progress=lambda step, message: steps.append(step))
    result = drafter.run(request_text)
    assert result.graph is not None
    assert validate_graph(result.graph, registry) == []
    assert must_have in {n.type for n in result.graph.nodes.values()}
    assert result.provider == "local" and result.repair_rounds == 0
    assert steps == ["compose", "finalize"]
    assert result.source == "recipes" and result.llm_replies == 0
    assert json.loads(json.dumps(result.to_json()))["graph"] == result.graph.to_json()


# -- the CLI ---------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_draft_writes_a_graph_file_and_prints_json(tmp_path: Path, registry: NodeRegistry) -> None:
    target = tmp_path / "graph.json"
    outcome = CliRunner().invoke(
        draft_command, ["Make a title card that says Hello", "--out", str(target), "--json", "--max-repairs", "0"]
    )
    assert outcome.exit_code == 0, outcome.output
    answer = json.loads(outcome.stdout)
    assert answer["ok"] and answer["provider"] == "local"
    written = Graph.loads(target.read_text())
    assert validate_graph(written, registry) == []
    assert written.to_json()["nodes"] == answer["graph"]["nodes"]


def test_cli_draft_refusal_exits_with_status_1_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = CliRunner().invoke(draft_command, ["  "])
    assert outcome.exit_code == 1
    assert "refused" in outcome.output and "empty" in outcome.output


@pytest.mark.slow
def test_cli_bench_drafting_prints_every_metric_per_category(tmp_path: Path) -> None:
    cases = load_cases()
    chosen = [next(c for c in cases if c.category == "llm"), next(c for c in cases if c.category == "image")]
    for case in chosen:
        (tmp_path / f"{case.id}.json").write_text(json.dumps(
            {"id": case.id, "category": case.category, "length": case.length, "request": case.request,
             "reference": case.reference}))
    outcome = CliRunner().invoke(bench, ["drafting", "--cases", str(tmp_path), "--max-repairs", "0", "--json",
                                         "--no-run"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    figures = report["figures"]
    assert set(figures) == {"llm", "image", "overall"}
    for row in figures.values():
        assert row["validity"] == 1.0
        assert {"node_f1", "edge_f1", "repair_rounds", "seconds_per_draft"} <= set(row)
        assert "pass_rate" not in row  # nothing was run
    assert figures["overall"]["count"] == 2.0
    assert [case["id"] for case in report["cases"]] == [c.id for c in chosen]


# -- the benchmark runner runs drafts on embedded defaults --------------------------------


@pytest.mark.slow
def test_the_benchmark_runs_a_video_draft_giving_its_model_input_a_tiny_diffusion_pipeline(
    registry: NodeRegistry, tmp_path: Path
) -> None:
    planned = complete_graph("Make a short video from generated pictures of tea", registry,
                             candidates=["video.slideshow", "image.generate", "image.pipeline"])
    graph = planned.graph
    assert [name for name, declared in graph.inputs.items() if declared.port.required] == ["model"]
    (generate,) = [node_id for node_id, i in graph.nodes.items() if i.type == "image.generate"]
    # the draft keeps image.generate's defaults (512x512, 30 steps: minutes on 2 cores with the
    # tiny pipeline); the runner scales them down for the stand-in model
    scaled = stand_in_diffusion(graph).to_json()["nodes"][generate]["inputs"]
    assert (scaled["width"], scaled["height"], scaled["steps"]) == (64, 64, 2)
    with sample_server() as url, LocalExecutor(registry, artifacts=tmp_path / "artifacts") as executor:
        samples = SampleValues(tmp_path, executor, url)
        assert run_draft(graph, executor, samples, tmp_path / "run", timeout=180) == (True, None)
        assert (tmp_path / "models" / "tiny-sd").is_dir()  # the model input was given a saved tiny pipeline


def test_stand_in_diffusion_scales_literals_and_defaults_and_keeps_links() -> None:
    document = {
        "inputs": {"size": {"type": "Int", "default": 512}, "model": {"type": "Text"}},
        "nodes": {
            "pipe": {"type": "image.pipeline", "inputs": {"model": {"input": "model"}}},
            "a": {"type": "image.generate", "inputs": {"pipe": {"node": "pipe", "output": "pipe"},
                                                       "prompt": "tea", "width": {"input": "size"}, "steps": 40}},
            "b": {"type": "image.edit", "inputs": {"pipe": {"node": "pipe", "output": "pipe"}, "prompt": "tea",
                                                   "image": {"node": "a", "output": "images"}}},
        },
        "outputs": {"picture": {"node": "b", "output": "image"}},
    }
    scaled = stand_in_diffusion(Graph.from_json(document)).to_json()["nodes"]
    assert scaled["a"]["inputs"]["width"] == {"input": "size"}  # a link stays
    assert (scaled["a"]["inputs"]["height"], scaled["a"]["inputs"]["steps"]) == (64, 2)
    assert scaled["b"]["inputs"]["steps"] == 2 and "width" not in scaled["b"]["inputs"]
    assert scaled["pipe"]["inputs"] == {"model": {"input": "model"}}


def test_stand_in_diffusion_scales_a_diffusion_node_run_per_item() -> None:
    document = {
        "inputs": {"prompts": {"type": "List[Text]"}, "model": {"type": "Text"}},
        "nodes": {
            "pipe": {"type": "image.pipeline", "inputs": {"model": {"input": "model"}}},
            "each": {"type": "control.map", "inputs": {
                "node": "image.generate", "items": {"input": "prompts"}, "item_input": "prompt",
                "pipe": {"node": "pipe", "output": "pipe"}, "inputs": {"width": 512, "seed": 3}}},
            "bare": {"type": "control.map", "inputs": {
                "node": "image.generate", "items": {"input": "prompts"}, "item_input": "prompt",
                "pipe": {"node": "pipe", "output": "pipe"}}},
        },
        "outputs": {"pictures": {"node": "each", "output": "results"}, "more": {"node": "bare", "output": "results"}},
    }
    scaled = stand_in_diffusion(Graph.from_json(document)).to_json()["nodes"]
    assert scaled["each"]["inputs"]["inputs"] == {"width": 64, "height": 64, "steps": 2, "seed": 3}
    assert scaled["bare"]["inputs"]["inputs"] == {"width": 64, "height": 64, "steps": 2}
    assert scaled["each"]["inputs"]["pipe"] == {"node": "pipe", "output": "pipe"}


def test_the_stand_in_api_answers_the_fields_a_draft_reads(tmp_path: Path, registry: NodeRegistry) -> None:
    document = {
        "inputs": {"url": {"type": "Text"}},
        "nodes": {
            "response": {"type": "http.request", "inputs": {"url": {"input": "url"}}},
            "entries": {"type": "json.extract", "inputs": {"data": {"node": "response", "output": "json"},
                                                           "path": "entries"}},
            "hours": {"type": "control.map", "inputs": {"node": "json.extract", "item_input": "data",
                                                        "items": {"node": "entries", "output": "value"},
                                                        "inputs": {"path": "hours"}}},
            "total": {"type": "math.sum", "inputs": {"values": {"node": "hours", "output": "results"}}},
        },
        "outputs": {"total": {"node": "total", "output": "result"}},
    }
    graph = Graph.from_json(document)
    answer = api_document(graph)
    assert answer["entries"] == [{"hours": 2.5}, {"hours": 4.0}] and answer["title"] == "Loom Lamp"
    with sample_server() as url, LocalExecutor(registry, artifacts=tmp_path / "artifacts") as executor:
        samples = SampleValues(tmp_path, executor, url)
        assert run_draft(graph, executor, samples, tmp_path / "run", timeout=60) == (True, None)
    assert "entries" not in SAMPLE_DOCUMENT  # the fixed fields alone would fail this graph


# -- the openai provider against a real OpenAI-compatible server ---------------------------




@pytest.mark.slow
def test_the_openai_provider_drafts_through_a_local_server(
    llama_server: str, registry: NodeRegistry, openai_key: str
) -> None:
    result = draft("Write a short poem about the sea", provider="openai", base_url=llama_server, model="smollm2",
                   registry=registry, max_repairs=0)
    assert result.graph is not None and validate_graph(result.graph, registry) == []
    assert result.provider == "openai"
    assert result.llm_replies == 1  # the server answered
    assert not [note for note in result.notes if note.startswith("the LLM failed")]


@pytest.mark.slow
def test_an_unreachable_openai_server_still_gets_a_valid_graph_from_the_recipes(
    registry: NodeRegistry, openai_key: str
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # a port nobody listens on
    drafter = Drafter(registry, ProviderChoice("openai", closed, "smollm2"), max_repairs=0)
    result = drafter.run("Write a short poem about the sea")
    assert result.graph is not None and validate_graph(result.graph, registry) == []
    assert result.source == "recipes"  # the composition is the fallback of a model that does not answer
    assert "llm.chat" in {n.type for n in result.graph.nodes.values()}
    assert any(note.startswith("the LLM failed") for note in result.notes)
