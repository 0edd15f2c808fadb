"""The recipe library and its example workflows: every recipe validates and runs on embedded defaults,
every example composes into a valid graph, and no example copies a benchmark request."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeloom.agents.analysis import read_slots, split_clauses
from nodeloom.agents.benchmark import SampleValues, run_draft, sample_server
from nodeloom.agents.compose import Step, assemble
from nodeloom.agents.recipes import Recipe, RecipeError, load_examples, load_recipes, recipe_from
from nodeloom.agents.retrieve import SentenceEncoder
from nodeloom.core.validate import validate_graph
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, default_registry

BENCH = Path(__file__).resolve().parent.parent / "bench" / "drafting"
#: small LLM budgets keep the runs cheap; a structured answer needs room for its JSON
SMALL_TOKENS = {"llm.chat": 8, "llm.structured": 120}


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return default_registry()


@pytest.fixture(scope="module")
def runner(registry: NodeRegistry) -> Iterator[tuple[LocalExecutor, SampleValues, Path]]:
    with tempfile.TemporaryDirectory(prefix="nodeloom-recipes-") as scratch, sample_server() as url, \
            LocalExecutor(registry, artifacts=Path(scratch) / "artifacts") as executor:
        yield executor, SampleValues(Path(scratch), executor, url), Path(scratch)


def _uses_llm(recipe: Recipe) -> bool:
    return bool(recipe.node_types & {"llm.chat", "llm.structured", "control.refine"}) or "llm.chat" in recipe.program


def _cheap_slots(recipe: Recipe) -> dict[str, object]:
    slots: dict[str, object] = {}
    if "max_tokens" in recipe.slots:
        slots["max_tokens"] = SMALL_TOKENS["llm.structured" if "llm.structured" in recipe.program else "llm.chat"]
    if "max_turns" in recipe.slots:
        slots["max_turns"] = 1
    return slots


def test_the_library_has_forty_recipes_with_phrasings_and_notes() -> None:
    recipes = load_recipes()
    assert len(recipes) >= 40
    for recipe in recipes.values():
        assert len(recipe.phrasings) >= 2, recipe.name
        assert recipe.use_when and recipe.not_when and recipe.cues, recipe.name


def test_every_recipe_validates_with_its_default_slots(registry: NodeRegistry) -> None:
    for recipe in load_recipes().values():
        graph = recipe.graph(registry)
        assert validate_graph(graph, registry) == [], recipe.name
        assert graph.outputs, recipe.name


def test_every_recipe_without_an_llm_runs_on_embedded_defaults(
    runner: tuple[LocalExecutor, SampleValues, Path], registry: NodeRegistry
) -> None:
    executor, samples, folder = runner
    failures = {}
    for recipe in load_recipes().values():
        if _uses_llm(recipe):
            continue
        ran, error = run_draft(recipe.graph(registry), executor, samples, folder / recipe.name, 120)
        if not ran:
            failures[recipe.name] = error
    assert failures == {}


@pytest.mark.slow
def test_every_llm_recipe_runs_on_the_embedded_model(
    runner: tuple[LocalExecutor, SampleValues, Path], registry: NodeRegistry
) -> None:
    executor, samples, folder = runner
    failures = {}
    for recipe in load_recipes().values():
        if not _uses_llm(recipe):
            continue
        ran, error = run_draft(recipe.graph(registry, _cheap_slots(recipe)), executor, samples,
                               folder / recipe.name, 240)
        if not ran:
            failures[recipe.name] = error
    assert failures == {}


def test_there_are_a_hundred_example_workflows_over_every_category() -> None:
    examples = load_examples()
    assert len(examples) >= 100
    assert {e.category for e in examples} == {"llm", "image", "video", "tool", "mixed", "multi_step"}


def test_every_example_workflow_composes_into_a_valid_graph(registry: NodeRegistry) -> None:
    recipes = load_recipes()
    for example in load_examples():
        clauses = split_clauses(example.request)
        steps = [Step(recipes[step.recipe], 0, {"__copies__": [dict(step.slots)]}) for step in example.steps]
        graph, _ = assemble(steps, clauses, registry)
        assert validate_graph(graph, registry) == [], example.request
        assert len(graph.nodes) >= len(example.steps), example.request


def _benchmark_requests() -> list[tuple[str, str]]:
    """(split/case id, request) of every benchmark case of every split there is (read to check, not to tune)."""
    found = []
    for path in sorted(BENCH.glob("*/*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        text = data.get("request") or data.get("instruction")
        if isinstance(text, str):
            found.append((f"{path.parent.name}/{path.stem}", text))
    return found


def test_no_example_copies_a_benchmark_request() -> None:
    benchmark = _benchmark_requests()
    assert len(benchmark) >= 66
    examples = [example.request for example in load_examples()]
    asked = {text.strip().lower() for _, text in benchmark}
    assert [text for text in examples if text.strip().lower() in asked] == []
    mine = SentenceEncoder.encode(examples)
    theirs = SentenceEncoder.encode([text for _, text in benchmark])
    closeness = mine @ theirs.T
    # name the library's request and the case id only: the held-out wording stays unseen
    too_close = [(examples[i], benchmark[j][0], round(float(closeness[i, j]), 3))
                 for i in range(len(examples)) for j in range(len(benchmark)) if closeness[i, j] >= 0.9]
    assert too_close == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a 15-second clip", {"seconds": 15.0}),
        ("resize it to 1920x1080", {"width": 1920, "height": 1080}),
        ("a storyboard with 3 scenes", {"count": 3}),
        ("into French and German", {"language": ["French", "German"]}),
        ("take its description field", {"field": ["description"]}),
        ("make it 9:16", {"width": 1080, "height": 1920}),
        ("four variations of the picture", {"count": 4}),
        ("a thumbnail at the 2 second mark", {"at": 2.0}),
        ("save it as notes.txt", {"filename": "notes.txt"}),
        ("cancel it with a DELETE to the booking API", {"method": "DELETE"}),
        ("delete the old booking", {"method": None}),  # a verb, not the method written in capitals
        ("add the text 'New Season' at the top of each", {"position": "top"}),
        ("write the price across the middle", {"position": "center"}),
    ],
)
def test_slots_are_read_by_rules(text: str, expected: dict[str, object]) -> None:
    slots = read_slots(text)
    assert {key: slots.get(key) for key in expected} == expected


def test_a_request_splits_into_clauses_that_refer_back() -> None:
    clauses = split_clauses("Fetch the page, summarise it and then read the summary aloud.")
    assert [c.text for c in clauses] == ["Fetch the page", "summarise it", "read the summary aloud"]
    assert [c.refers_back for c in clauses] == [False, True, False]


def test_a_piece_without_an_action_continues_its_clause() -> None:
    clauses = split_clauses("From a recipe blurb, get the dish, the cooking time and the list of spices as JSON.")
    assert [c.text for c in clauses] == ["From a recipe blurb, get the dish, the cooking time and the list of "
                                         "spices as JSON"]


def test_each_with_qualifies_the_clause_before_it_and_then_still_splits() -> None:
    clauses = split_clauses("List the open bugs, each with a reporter and a date. Then write a status note.")
    assert [c.text for c in clauses] == ["List the open bugs, each with a reporter and a date",
                                         "Then write a status note"]


def _composed(request: str, registry: NodeRegistry) -> dict[str, Any]:
    from nodeloom.agents.compose import compose

    composition = compose(request, registry)
    assert composition.graph is not None
    return composition.graph.to_json()


def test_a_step_needing_what_a_later_clause_makes_comes_after_it(registry: NodeRegistry) -> None:
    document = _composed("Build a clip from my list of quotes, with a card for every quote.", registry)
    slideshow = next(n for n in document["nodes"].values() if n["type"] == "video.slideshow")
    source = slideshow["inputs"]["images"]
    assert document["nodes"][source["node"]]["type"] == "control.map"


def test_a_template_variable_is_named_for_what_feeds_it(registry: NodeRegistry) -> None:
    document = _composed("Grab the blog page at a link and sum it up in two lines.", registry)
    template = next(n for n in document["nodes"].values() if n["type"] == "text.template")
    assert "{{ body }}" in template["inputs"]["template"]
    assert document["nodes"][template["inputs"]["body"]["node"]]["type"] == "http.request"


def _chosen(request: str) -> list[str]:
    """The recipes the clause-by-clause composition chooses (example workflows left out)."""
    from nodeloom.agents.compose import RecipeIndex, choose_steps

    index = RecipeIndex.get()
    clauses = split_clauses(request)
    similarity, _ = index.similarities([c.text for c in clauses])
    return [step.recipe.name for step in choose_steps(clauses, similarity, index.recipes, request)]


@pytest.mark.parametrize(
    "request_text",
    ["Design a logo for a tea shop", "Sketch a mascot for a chess club", "Mock up a tote bag on a stool",
     "Paint a watercolour of a canal boat", "Give me three variations of a bike shop icon",
     "Picture of a hedgehog in a teacup"],
)
def test_a_picture_asked_for_without_the_word_image_is_generated(request_text: str) -> None:
    assert _chosen(request_text) == ["generate_image"]


def test_a_thumbnail_of_a_made_video_is_a_frame_and_one_for_a_topic_is_generated() -> None:
    assert _chosen("Stitch the rehearsal clips together and give me a thumbnail of it") == [
        "concat_videos", "thumbnail"]
    assert _chosen("Generate a thumbnail for a cooking video about dumplings") == ["generate_image"]


def test_text_asked_for_with_create_or_plan_is_written_not_drawn() -> None:
    assert _chosen("Prepare a packing checklist for a sailing trip") == ["write_text"]
    assert _chosen("Create an avatar of a robot barista") == ["generate_image"]


def test_quoted_text_names_no_capability() -> None:
    assert _chosen("Paint a harbour at dawn and add the words 'Save the Date' at the top") == [
        "generate_image", "overlay_text"]


def test_turning_a_named_text_into_speech_speaks_it_and_makes_it_once() -> None:
    assert _chosen("Summarise the minutes, then turn the summary into speech") == ["summarize", "speak"]


def test_each_or_every_item_maps_over_the_list() -> None:
    assert _chosen("For every dish on the menu, write a one-line description") == ["llm_per_item"]
    assert _chosen("Resize every snapshot in the album to 640x640") == ["resize_each"]


def test_an_output_statement_asks_for_no_step_of_its_own() -> None:
    assert _chosen("Call the fleet API, save the answer to fleet.json and tell me the HTTP status") == [
        "fetch_json", "save_file"]


def test_tool_wordings_fetch_store_and_send() -> None:
    assert _chosen("Download the CSV at a link and store it as prices.csv") == ["fetch_page", "save_file"]
    assert _chosen("Send the booking details to the hotel's reservation API") == ["post_api"]
    assert _chosen("Let our Discord channel know the build is green") == ["post_webhook"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("retouch my portrait", {}),
        ("save the list to a JSON file", {"filename": "result.json"}),
        ("have the model list four tips", {"count": 4}),
    ],
)
def test_slot_rules_skip_nouns_that_look_like_slots(text: str, expected: dict[str, object]) -> None:
    slots = read_slots(text)
    assert {k: v for k, v in slots.items() if k not in ("size", "width", "height")} == expected
    assert ("width" in slots) == ("width" in expected)


def test_cues_are_matched_within_a_clause_window_so_a_long_clause_cannot_stall_drafting() -> None:
    # several cues have two open gaps (`add … title … at the top`): over a 4 000-character clause
    # such a pattern took seconds (16 s for "put on put on …"); the window bounds it
    from nodeloom.agents.recipes import CUE_WINDOW, load_recipes

    translate = load_recipes()["translate"]
    assert translate.cue_hits("translate the notes into French")
    padding = "x " * (CUE_WINDOW // 2)
    assert translate.cue_hits(padding + "translate the notes into French") == []
    overlay = load_recipes()["overlay_text"]
    assert overlay.cue_hits("put on " * 570) == []


def test_slips_in_request_words_are_put_right_and_real_words_are_left_alone() -> None:
    from nodeloom.agents.analysis import correct_typos

    assert correct_typos("Wirte a poem, Genrate a picture, narate the epsiode and sumarize it.") == (
        "Write a poem, Generate a picture, narrate the episode and summarize it.")
    assert correct_typos("Fetch teh slots, make a veritcal video and a windw sign.") == (
        "Fetch the slots, make a vertical video and a window sign.")
    # inflections and ordinary words one slip away from a known word stay as they are
    untouched = "These summaries, strings and sales figures: mailing the posts, makes, multiple-choice titles."
    assert correct_typos(untouched) == untouched


@pytest.mark.parametrize(("wire_when", "named"), [({"prompt": "sometimes"}, "condition 'sometimes' of 'prompt'"),
                                                  ({"image": "referenced"}, "'image', an input it does not wire")])
def test_a_recipe_whose_wire_when_names_no_wired_input_or_no_known_condition_is_refused(
        wire_when: dict[str, str], named: str) -> None:
    entry = {**_entry("generate_image"), "wire_when": wire_when}
    with pytest.raises(RecipeError, match="wire_when") as caught:
        recipe_from(entry)
    assert named in str(caught.value)


def _entry(name: str) -> dict[str, Any]:
    library = Path(__file__).parents[1] / "agents" / "library" / "recipes.json"
    return next(e for e in json.loads(library.read_text(encoding="utf-8")) if e["name"] == name)
