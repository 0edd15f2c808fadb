"""The refine loop and `control.refine`, over real generator nodes and real critics.

Rule critics need no model; the LLM critic is the embedded SmolLM2 (two turns, short
answers); the vision critic talks to a local OpenAI-compatible server process started
here, a stand-in for a vision model that judges the brightness of the image it receives
as a data URL.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netutil import free_port, wait_for_server
from PIL import Image

from nodeloom.agents.refine import (
    Attempt,
    Critique,
    DistinctItems,
    ImageBrightness,
    ImageSize,
    MatchesSchema,
    MaxLength,
    RefineOptions,
    RequiredWords,
    combine,
    refine,
)
from nodeloom.core import EventKind, Graph, LocalArtifactStore, RunEvent
from nodeloom.core.validate import validate_graph
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry


@pytest.fixture(scope="module")
def catalog() -> NodeRegistry:
    return builtin_registry()


@pytest.fixture
def engine(catalog: NodeRegistry, tmp_path: Path) -> Iterator[LocalExecutor]:
    with LocalExecutor(catalog, artifacts=tmp_path / "artifacts") as executor:
        yield executor


def refine_graph(**inputs: Any) -> Graph:
    g = Graph()
    refined = g.add("control.refine", "r", **inputs)
    g.output("result", refined["result"])
    g.output("score", refined["score"])
    g.output("trajectory", refined["trajectory"])
    return g


def issues_of(**inputs: Any) -> list[tuple[str, str | None]]:
    return [(i.code, i.port) for i in validate_graph(refine_graph(**inputs), builtin_registry())]


# -- the loop ---------------------------------------------------------------------------


def template(text: str) -> str:
    """A real generator: the text.template node."""
    return str(builtin_registry().find("text.template").invoke("g", {"template": text})["text"])  # type: ignore[union-attr]


def exclamation_critic(attempt: Attempt) -> Critique:
    """Likes excitement, then asks for calm: its second answer scores lower than its first."""
    excited = "!" in attempt.result
    return Critique(9 if excited else 3, 9 if excited else 3, "excited" if excited else "flat",
                    attempt.instruction.replace("!", "."))


def test_keep_best_returns_the_highest_scoring_turn() -> None:
    refinement = refine(template, exclamation_critic, "Announce the launch", "Launch day!",
                        RefineOptions(threshold=10, max_turns=2, keep="best"))
    assert (refinement.result, refinement.score, refinement.turn) == ("Launch day!", 9.0, 1)
    assert [t.instruction for t in refinement.trajectory] == ["Launch day!", "Launch day."]


def test_keep_last_returns_the_final_turn_even_when_worse() -> None:
    refinement = refine(template, exclamation_critic, "Announce the launch", "Launch day!",
                        RefineOptions(threshold=10, max_turns=2, keep="last"))
    assert (refinement.result, refinement.score, refinement.turn) == ("Launch day.", 3.0, 2)
    assert refinement.stopped_by == "max_turns"


def test_the_loop_stops_once_the_threshold_is_reached() -> None:
    refinement = refine(template, exclamation_critic, "Announce", "Go!", RefineOptions(threshold=8, max_turns=5))
    assert len(refinement.trajectory) == 1 and refinement.stopped_by == "threshold"


def test_decide_by_picks_the_score_that_decides() -> None:
    critique = Critique(quality=9, alignment=4)
    assert (critique.score("quality"), critique.score("alignment"), critique.score("mean")) == (9, 4, 6.5)


@pytest.mark.parametrize("options", [{"threshold": 10.5}, {"threshold": -1}, {"max_turns": 0}])
def test_bad_loop_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RefineOptions(**options)


# -- rule critics -----------------------------------------------------------------------


def attempt(result: Any, instruction: str = "Write a tagline.", store: LocalArtifactStore | None = None) -> Attempt:
    return Attempt(result, "a tagline", instruction, store)


def test_a_failed_rule_writes_a_concrete_instruction() -> None:
    critique = RequiredWords(("launch", "today"))(attempt("Our launch is near"))
    assert critique.quality == 5.0 and not critique.stop
    assert critique.instruction == "Write a tagline. Use the words: today."


def test_max_length_scores_by_how_far_over_it_is() -> None:
    assert MaxLength(10)(attempt("x" * 20)).quality == 5.0
    assert MaxLength(10)(attempt("short")).stop


def test_json_schema_and_distinct_items_rules() -> None:
    schema = {"type": "object", "required": ["title"]}
    assert MatchesSchema(schema)(attempt('{"title": "x"}')).quality == 10
    failed = MatchesSchema(schema)(attempt('{"name": "x"}'))
    assert failed.quality < 10 and "'title' is a required property" in failed.instruction
    repeated = DistinctItems()(attempt(["Fast", "cheap", "fast"]))
    assert repeated.quality < 10 and repeated.instruction.endswith("do not repeat: fast.")


def test_image_rules_read_the_artifact(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 20, 20)).save(buffer, format="PNG")
    ref = store.put_bytes(buffer.getvalue(), "image/png")
    small = ImageSize(80, 30)(attempt(ref, store=store))
    assert small.quality == 5.0 and small.instruction.endswith("Make it at least 80x30 pixels.")
    dark = ImageBrightness(60, 200)(attempt(ref, store=store))
    assert "too dark" in dark.reasoning and dark.instruction.endswith("Make it brighter.")


def test_combined_critics_take_the_mean_or_the_minimum_and_join_the_fixes() -> None:
    rules = [RequiredWords(("launch",)), MaxLength(100)]
    mean = combine(rules, "mean")(attempt("soon"))
    assert mean.quality == 5.0 and mean.instruction == "Write a tagline. Use the words: launch."
    assert combine(rules, "min")(attempt("soon")).quality == 0.0


def test_a_critic_without_a_usable_answer_is_left_out_of_the_turn_unless_none_answers() -> None:
    from nodeloom.core.errors import NodeExecutionError

    def cut_off(attempt: Attempt) -> Critique:  # as llm.critique fails on a reply cut off mid-JSON
        raise NodeExecutionError("the critic's answer did not match the critique schema: cut off", retryable=False)

    both = combine([RequiredWords(("launch",)), cut_off])(attempt("soon"))
    alone = RequiredWords(("launch",))(attempt("soon"))
    assert (both.quality, both.alignment, both.instruction) == (alone.quality, alone.alignment, alone.instruction)
    assert "a critic gave no usable answer: the critic's answer did not match" in both.reasoning
    with pytest.raises(NodeExecutionError, match="cut off"):
        combine([cut_off, cut_off])(attempt("soon"))


# -- control.refine ---------------------------------------------------------------------


def test_rule_critic_loop_reaches_the_required_word(engine: LocalExecutor) -> None:
    events: list[RunEvent] = []
    graph = refine_graph(generator="text.template", instruction_port="template", request="Announce the launch",
                         instruction="Big news today.", threshold=10, max_turns=3,
                         critic={"rules": {"required_words": ["nodeloom"], "max_length": 80}})
    result = engine.run(graph, on_event=events.append)
    assert result.ok, result.errors()
    assert result.outputs["result"] == "Big news today. Use the words: nodeloom."
    assert result.outputs["score"] == 10.0
    trajectory = result.outputs["trajectory"]
    assert [(t["turn"], t["score"], t["result"]) for t in trajectory] == [
        (1, 5.0, "Big news today."), (2, 10.0, "Big news today. Use the words: nodeloom.")]
    assert trajectory[0]["reasoning"].startswith("missing words: nodeloom")
    progress = [e.data["done"] for e in events if e.kind is EventKind.NODE_PROGRESS]
    assert progress == [1, 2]


def test_the_embedded_llm_critic_scores_each_turn(engine: LocalExecutor) -> None:
    graph = refine_graph(generator="text.template", instruction_port="template", request="a product tagline",
                         instruction="Fast tea for busy people.", threshold=10, max_turns=2,
                         critic={"llm": {"max_tokens": 160, "seed": 7}})
    result = engine.run(graph)
    assert result.ok, result.errors()
    trajectory = result.outputs["trajectory"]
    assert 1 <= len(trajectory) <= 2 and trajectory[0]["instruction"] == "Fast tea for busy people."
    for turn in trajectory:
        assert 0 <= turn["scores"]["quality"] <= 10 and 0 <= turn["scores"]["alignment"] <= 10
        assert isinstance(turn["reasoning"], str) and turn["result"] == turn["instruction"]
    assert result.outputs["score"] == max(t["score"] for t in trajectory)


VISION_STANDIN = r'''
"""A stand-in vision model: OpenAI chat completions; judges the brightness of the data-URL image."""
import base64, io, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from PIL import Image, ImageStat

LOG = sys.argv[2]
#: with a third argument, the model overshoots: a bright picture gets 12 out of 10 for quality
OVER = len(sys.argv) > 3

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self._answer({"data": [{"id": "standin-vision"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(LOG, "a") as log:
            log.write(json.dumps(body) + "\n")
        parts = body["messages"][-1]["content"]
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        bright = ImageStat.Stat(image.convert("L")).mean[0] >= 128
        critique = {"scores": {"quality": (12 if OVER else 9) if bright else 2, "alignment": 9 if bright else 3},
                    "reasoning": "bright enough" if bright else "too dark",
                    "instruction": "white", "stop": bright}
        self._answer({"id": "c", "object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": json.dumps(critique)}}]})

    def _answer(self, data):
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


@pytest.fixture
def vision_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The stand-in vision model's base URL, and the file where it logs each request body."""
    yield from _vision_server(tmp_path)


@pytest.fixture
def overscoring_vision_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The stand-in vision model, scoring a bright picture's quality 12 out of 10."""
    yield from _vision_server(tmp_path, "over")


def _vision_server(tmp_path: Path, *extra: str) -> Iterator[tuple[str, Path]]:
    script, log = tmp_path / "vision_standin.py", tmp_path / "requests.jsonl"
    script.write_text(VISION_STANDIN)
    port = free_port()
    process = subprocess.Popen([sys.executable, str(script), str(port), str(log), *extra])
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_server(process, f"{base_url}/models", 20, "the stand-in vision server")
        yield base_url, log
    finally:
        process.terminate()
        process.wait(10)


def _launch_card_graph(base_url: str, *, instruction: str, max_turns: int) -> Graph:
    """A title card refined by its background colour, judged by the stand-in vision model at `base_url`."""
    return refine_graph(generator="image.title_card", instruction_port="background", request="a bright launch card",
                        instruction=instruction, inputs={"text": "Launch", "width": 64, "height": 48},
                        threshold=8, max_turns=max_turns,
                        critic={"vision": {"base_url": base_url, "model": "standin-vision"}})


def test_the_vision_critic_receives_the_image_as_a_data_url(
    engine: LocalExecutor, vision_server: tuple[str, Path]
) -> None:
    base_url, log = vision_server
    result = engine.run(_launch_card_graph(base_url, instruction="#101820", max_turns=3))
    assert result.ok, result.errors()
    trajectory = result.outputs["trajectory"]
    assert [(t["instruction"], t["score"], t["reasoning"]) for t in trajectory] == [
        ("#101820", 2.5, "too dark"), ("white", 9.0, "bright enough")]
    assert result.outputs["score"] == 9.0 and result.outputs["result"].media_type == "image/png"
    assert trajectory[1]["result"]["$artifact"] == f"sha256:{result.outputs['result'].digest}"
    bodies = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(bodies) == 2 and {b["model"] for b in bodies} == {"standin-vision"}
    url = bodies[1]["messages"][-1]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (64, 48)


def test_a_score_above_ten_is_clamped_to_ten_not_a_failed_critique(
    engine: LocalExecutor, overscoring_vision_server: tuple[str, Path]
) -> None:
    base_url, _ = overscoring_vision_server
    result = engine.run(_launch_card_graph(base_url, instruction="white", max_turns=2))
    assert result.ok, result.errors()
    (turn,) = result.outputs["trajectory"]
    assert turn["scores"] == {"quality": 10.0, "alignment": 9.0} and turn["score"] == 9.5


# -- bad options are validation errors --------------------------------------------------

GOOD: dict[str, Any] = {"generator": "text.template", "instruction_port": "template", "request": "x",
                        "critic": {"rules": {"max_length": 10}}}


def test_good_options_validate() -> None:
    assert issues_of(**GOOD) == []


def test_a_threshold_outside_0_to_10_is_a_validation_error() -> None:
    assert issues_of(**GOOD, threshold=10.5) == [("out_of_range", "threshold")]


def test_max_turns_below_one_is_a_validation_error() -> None:
    assert issues_of(**GOOD, max_turns=0) == [("out_of_range", "max_turns")]


def test_a_generator_without_the_instruction_port_is_a_validation_error() -> None:
    assert issues_of(**{**GOOD, "generator": "image.title_card", "instruction_port": "prompt",
                        "inputs": {"text": "x"}}) == [
        ("unknown_port", "instruction_port")]


def test_an_unknown_generator_type_is_a_validation_error_with_suggestions() -> None:
    issues = validate_graph(refine_graph(**{**GOOD, "generator": "text.templat"}), builtin_registry())
    assert [(i.code, i.port) for i in issues] == [("unknown_node_type", "generator")]
    assert issues[0].hint == "did you mean 'text.template'?"


def test_an_unknown_critic_rule_is_a_validation_error() -> None:
    assert issues_of(**{**GOOD, "critic": {"rules": {"max_words": 3}}}) == [("invalid_format", "critic")]


# -- the storyboard critic and writer (the marketing video's loop) --------------------------------

from nodeloom.node_registry.video.storyboard import (  # noqa: E402
    Directions,
    Facts,
    StoryboardRules,
    finish,
    scene_messages,
)

LAMP = Facts("Loom Lamp", "A desk lamp that dims itself when you leave and charges your phone in its base.",
             "people who work from home", "warm", "Order yours today")


def board(*captions: str) -> dict[str, Any]:
    roles = ["hook", *["benefit"] * (len(captions) - 2), "cta"]
    abouts = ["hook", "benefit: dims itself when you leave", "benefit: charges your phone in its base",
              "call to action: Order yours today"]
    return {"product": "Loom Lamp", "call_to_action": "Order yours today",
            "scenes": [{"index": n + 1, "role": r, "about": abouts[n] if len(captions) == 4 else r, "caption": c}
                       for n, (r, c) in enumerate(zip(roles, captions, strict=True))]}


def test_storyboard_critic_keeps_good_scenes_and_names_what_to_fix() -> None:
    score, reasoning, instruction = StoryboardRules(max_caption=42).verdict(board(
        "Meet Loom Lamp", "It dims itself when you leave the room and glows warm again when you return",
        "Dims itself when you leave", "Order yours today"), "Tone: warm.")
    directions = Directions.parse(instruction)
    assert directions.text == "Tone: warm."
    assert directions.keep == {1: "Meet Loom Lamp", 4: "Order yours today"}
    assert "too long" in directions.fixes[2] and "repeats scene 2" not in directions.fixes[3]
    assert score < 10 and "scene 2" in reasoning


def test_storyboard_critic_rejects_repeats_echoes_and_a_missing_call() -> None:
    score, _, instruction = StoryboardRules().verdict(board(
        "Loom Lamp lights your desk", "Your phone charges in the base", "Phone charges in the base, yours",
        "Buy it"), "")
    fixes = Directions.parse(instruction).fixes
    assert "repeats scene 2" in fixes[3] and "lacks the call to action" in fixes[4]
    assert score < 7
    _, _, echoed = StoryboardRules().verdict(board("Loom Lamp", "Benefit: too long", "x", "Order yours today"), "")
    assert "repeats the instructions" in Directions.parse(echoed).fixes[2]


def test_storyboard_critic_rejects_captions_too_short_or_long_in_words_or_not_words() -> None:
    _, _, instruction = StoryboardRules().verdict(board(
        "Dark?", "Dims as you go, back on as you come in", "50% 24/7 #1 4-in-1 =)",
        "Loom Lamp. Order yours today"), "")
    fixes = Directions.parse(instruction).fixes
    assert "has 1 words" in fixes[1] and "has 10 words" in fixes[2] and "mostly not words" in fixes[3]
    assert 4 not in fixes


def test_a_missing_product_name_is_the_last_scenes_to_fix() -> None:
    score, reasoning, instruction = StoryboardRules().verdict(board(
        "Still working in the dark?", "Dims when you leave the room", "Your phone charges in its base",
        "Order yours today, friends"), "")
    assert "does not name the product" in Directions.parse(instruction).fixes[4] and score < 10
    assert "name the product (Loom Lamp)" in reasoning


def test_the_critic_counts_the_tries_at_a_failing_scene() -> None:
    failing = board("Still working in the dark?", "Dims when you leave the room", "Your phone charges in its base",
                    "Buy it")
    _, _, second = StoryboardRules().verdict(failing, "Tone: warm.")
    assert "Scene 4 (try 2): " in second and Directions.parse(second).tries == {4: 2}
    _, _, third = StoryboardRules().verdict(failing, second)
    assert Directions.parse(third).tries == {4: 3} and Directions.parse(third).text == "Tone: warm."
    assert Directions.parse("Scene 4: too long").tries == {4: 2}  # an instruction written by hand: a second try


def test_a_failing_scene_is_asked_again_with_the_first_prompt_not_the_problem() -> None:
    first = Directions.parse("Tone: warm.")
    again = Directions.parse('Tone: warm.\nKeep scene 1: "Dark?"\nScene 2 (try 2): "Buy" is off topic: say dims')
    assert scene_messages(LAMP, "benefit", 2, again) == scene_messages(LAMP, "benefit", 2, first)
    assert "off topic" not in json.dumps(scene_messages(LAMP, "benefit", 2, again))


def test_a_storyboard_that_passes_every_rule_scores_ten() -> None:
    score, reasoning, _ = StoryboardRules().verdict(board(
        "Still working in the dark?", "Dims when you leave the room", "Your phone charges in its base",
        "Loom Lamp. Order yours today"), "")
    assert score == 10 and reasoning == "every scene is distinct, short, and on message"


def test_finish_replaces_what_still_fails_with_captions_from_the_facts() -> None:
    finished = finish(board("Meet Loom Lamp", "Meet Loom Lamp!", "", "Buy"), LAMP)
    captions = [s["caption"] for s in finished["scenes"]]
    assert captions[0] == "Meet Loom Lamp"
    assert captions[1:] == ["Dims itself when you leave", "Charges your phone in its base",
                            "Order yours today: Loom Lamp"]
    assert [s.get("source") for s in finished["scenes"]][1:] == ["template"] * 3


def test_the_writer_keeps_the_scenes_the_critic_kept(executor: LocalExecutor) -> None:
    g = Graph()
    kept = 'Keep scene 1: "One"\nKeep scene 2: "Two"\nKeep scene 3: "Three, Loom Lamp"'
    g.output("board", g.add("video.storyboard", "it", product="Loom Lamp", description="A lamp.", scenes=3,
                            instruction=kept)["storyboard"])
    result = executor.run(g)
    assert result.ok, result.errors()
    assert [s["caption"] for s in result.outputs["board"]["scenes"]] == ["One", "Two", "Three, Loom Lamp"]
    assert [s["role"] for s in result.outputs["board"]["scenes"]] == ["hook", "benefit", "cta"]


def test_the_writer_draws_a_failing_scene_afresh_and_repeatably(executor: LocalExecutor) -> None:
    g = Graph()
    redo = 'Tone: warm.\nKeep scene 1: "Still working in the dark?"\nScene 2 (try 2): "Buy" is off topic\n' \
           'Keep scene 3: "Loom Lamp. Order yours today"'
    for name in ("a", "b"):
        g.output(name, g.add("video.storyboard", name, product="Loom Lamp", description=LAMP.description, scenes=3,
                             instruction=redo, seed=3)["storyboard"])
    result = executor.run(g)
    assert result.ok, result.errors()
    scenes = result.outputs["a"]["scenes"]
    assert [s["source"] for s in scenes] == ["kept", "llm", "kept"]
    assert scenes[1]["caption"] and scenes[1]["caption"] != "Buy"
    assert result.outputs["b"]["scenes"] == scenes


def test_refine_accepts_the_storyboard_rule(registry: NodeRegistry) -> None:
    g = Graph()
    refined = g.add("control.refine", "it", generator="video.storyboard", instruction_port="instruction",
                    request="an ad", inputs={"product": "X", "description": "Y"},
                    critic={"rules": {"storyboard": {"max_caption": 40}}})
    g.output("result", refined["result"])
    assert validate_graph(g, registry) == []
