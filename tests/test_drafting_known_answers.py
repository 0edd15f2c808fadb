"""The drafter drafts what was asked: known requests give the right graphs, end to end with the
embedded defaults (MiniLM analysis, the recipe library; no LLM call with the local provider).

These requests are known answers: they are kept out of the library's example workflows and
out of the benchmark splits.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from nodeloom.agents import draft
from nodeloom.agents.benchmark import SampleValues, run_draft, sample_server
from nodeloom.agents.cli import draft as draft_command
from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.graph import Graph
from nodeloom.core.validate import validate_graph
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, default_registry


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return default_registry()


def _types(graph: Graph) -> Counter[str]:
    return Counter(instance.type for instance in graph.nodes.values())


def _edges(graph: Graph) -> set[tuple[str, str, str]]:
    """(source type, output, target type) of every node-to-node link."""
    return {(graph.nodes[link.node].type, link.output, instance.type)
            for instance in graph.nodes.values() for _, link in instance.links() if link.node in graph.nodes}


def _runs(graph: Graph, registry: NodeRegistry, folder: Path, timeout: float) -> tuple[bool, str | None]:
    """Run a draft on embedded defaults, a local server standing in for the APIs and webhooks it calls."""
    with sample_server() as url, LocalExecutor(registry, artifacts=folder / "artifacts") as executor:
        return run_draft(graph, executor, SampleValues(folder, executor, url), folder / "run", timeout=timeout)


def _drafted(text: str, registry: NodeRegistry) -> Graph:
    result = draft(text, registry=registry)
    assert result.graph is not None and validate_graph(result.graph, registry) == []
    assert result.source == "recipes" and result.llm_replies == 0
    assert result.unserved == [], result.clauses
    return result.graph


def test_a_photo_request_gives_pipeline_and_generate(registry: NodeRegistry) -> None:
    graph = _drafted("Create a photo of a blue backpack on a wooden table.", registry)
    assert _types(graph) == Counter({"image.pipeline": 1, "image.generate": 1})
    assert ("image.pipeline", "pipe", "image.generate") in _edges(graph)


def test_two_languages_give_two_translation_chains(registry: NodeRegistry) -> None:
    graph = _drafted("Turn the release notes into Spanish and into Italian.", registry)
    assert _types(graph) == Counter({"text.template": 2, "llm.chat": 2})
    templates = [i.inputs["template"] for i in graph.nodes.values() if i.type == "text.template"]
    assert any("Spanish" in t for t in templates) and any("Italian" in t for t in templates)
    assert len(graph.inputs) == 1  # both chains translate the same text


def test_fetch_extract_rewrite_post_is_one_chain(registry: NodeRegistry) -> None:
    graph = _drafted("Get the JSON at an address, pull out its title field, rewrite it as a tweet and send it to a "
                     "webhook.", registry)
    edges = _edges(graph)
    assert {("http.request", "json", "json.extract"), ("json.extract", "value", "text.template"),
            ("text.template", "text", "llm.chat"), ("json.object", "data", "webhook.post")} <= edges
    assert ("llm.chat", "text", "json.object") in edges
    assert [i.inputs["path"] for i in graph.nodes.values() if i.type == "json.extract"] == ["title"]


@pytest.mark.parametrize(
    ("text", "types", "edges", "values"),
    [
        ("Make a 1080x1920 title card saying 'Grand Opening'.", {"image.title_card": 1}, set(),
         {"image.title_card": {"width": 1080, "height": 1920}}),
        ("Write a limerick about a penguin and save it to limerick.txt.",
         {"text.template": 1, "llm.chat": 1, "file.save": 1}, {("llm.chat", "text", "file.save")},
         {"file.save": {"filename": "limerick.txt"}}),
        ("Generate three pictures of a red fox and turn them into a slideshow.",
         {"image.pipeline": 1, "image.generate": 1, "video.slideshow": 1},
         {("image.generate", "images", "video.slideshow")}, {"image.generate": {"batch_size": 3}}),
        ("For each line of my poem, make a title card, then build a video from the cards.",
         {"control.map": 1, "video.slideshow": 1}, {("control.map", "results", "video.slideshow")},
         {"control.map": {"node": "image.title_card"}}),
        ("Fetch the forecast API and post its summary field to Slack.",
         {"http.request": 1, "json.extract": 1, "json.object": 1, "webhook.post": 1},
         {("http.request", "json", "json.extract"), ("json.extract", "value", "json.object")},
         {"json.extract": {"path": "summary"}}),
        ("Turn my photo into a pencil sketch and resize it to 800x600.",
         {"image.pipeline": 1, "image.edit": 1, "image.resize": 1}, {("image.edit", "image", "image.resize")},
         {"image.resize": {"width": 800, "height": 600}}),
        ("Take a frame at 3 seconds from my video and save it as a PNG.", {"video.thumbnail": 1, "file.save": 1},
         {("video.thumbnail", "image", "file.save")}, {"video.thumbnail": {"at": 3.0}}),
        ("Classify a customer message as praise, complaint or question.",
         {"text.template": 1, "llm.structured": 1}, {("text.template", "text", "llm.structured")}, {}),
        ("Write a product description and read it aloud.", {"text.template": 1, "llm.chat": 1, "audio.speak": 1},
         {("llm.chat", "text", "audio.speak")}, {}),
        ("Join my three clips into one video.", {"video.concat": 1}, set(), {}),
        ("Translate my bio into German, French and Japanese.", {"text.template": 3, "llm.chat": 3}, set(), {}),
        ("Summarize the article at a URL and post the summary to our Slack webhook.",
         {"http.request": 1, "text.template": 1, "llm.chat": 1, "json.object": 1, "webhook.post": 1},
         {("http.request", "text", "text.template"), ("llm.chat", "text", "json.object")}, {}),
        # the work is asked per item: a map over the items, whatever recipe is closest for one text
        ("For every support ticket in the export, classify its urgency.", {"control.map": 2},
         {("control.map", "results", "control.map")}, {}),
        # close to a library example that also reads aloud, but nothing asks for speech
        ("Translate the menu into Italian.", {"text.template": 1, "llm.chat": 1}, set(), {}),
        # "its price" names the field without saying "field"
        ("Get the product JSON from the store API, multiply its price by 1.2 and post the result to our webhook.",
         {"http.request": 1, "json.extract": 1, "math.multiply": 1, "json.object": 1, "webhook.post": 1},
         {("http.request", "json", "json.extract"), ("json.extract", "value", "math.multiply"),
          ("math.multiply", "result", "json.object")}, {"json.extract": {"path": "price"}}),
        # the edit's prompt is what the clause asks the picture to become
        ("Make the photo black and white and shrink it to 800 pixels wide.",
         {"image.pipeline": 1, "image.edit": 1, "image.resize": 1}, {("image.edit", "image", "image.resize")},
         {"image.edit": {"prompt": "Make the photo black and white"}, "image.resize": {"width": 800}}),
        ("Combine intro.mp4 and outro.mp4 into one video.", {"video.concat": 1}, set(), {}),
        # per item of a list the user gives, though no per-item verb is named
        ("I want a one-line summary for every article in my reading list.", {"control.map": 2},
         {("control.map", "results", "control.map")}, {}),
        # music goes under the video it is asked with
        ("Make a square slideshow from my bakery photos with some upbeat background music.",
         {"control.map": 1, "video.slideshow": 1, "audio.music_bed": 1},
         {("audio.music_bed", "audio", "video.slideshow")}, {"audio.music_bed": {"mood": "bright"}}),
        # slips in the words the request is read by are put right
        ("Wirte a haiku about autumn and narate it.", {"text.template": 1, "llm.chat": 1, "audio.speak": 1},
         {("llm.chat", "text", "audio.speak")}, {}),
        # the user's own picture: the diffusion model edits it, once per named look
        ("With the diffusion model, make two restyled versions of my bedroom photo: one coastal and one "
         "minimalist.", {"image.pipeline": 1, "image.edit": 2}, {("image.pipeline", "pipe", "image.edit")}, {}),
        ("Generate a picture of a lemon tart with 'Fresh today' written across the bottom.",
         {"image.pipeline": 1, "image.generate": 1, "json.extract": 1, "image.overlay_text": 1},
         {("json.extract", "value", "image.overlay_text")}, {}),
        ("Square up my market stall photos to 1080x1080 and make a slideshow of them.",
         {"control.map": 1, "video.slideshow": 1}, {("control.map", "results", "video.slideshow")},
         {"control.map": {"node": "image.resize"}}),
        ("Scrape the team page of our website and list every person's name and role as JSON.",
         {"http.request": 1, "text.template": 1, "llm.structured": 1}, {("http.request", "text", "text.template")},
         {}),
    ],
)
def test_known_requests_give_the_right_graphs(
    registry: NodeRegistry, text: str, types: dict[str, int], edges: set[tuple[str, str, str]],
    values: dict[str, dict[str, Any]],
) -> None:
    graph = _drafted(text, registry)
    assert _types(graph) == Counter(types)
    assert edges <= _edges(graph)
    for node_type, expected in values.items():
        node = next(i for i in graph.nodes.values() if i.type == node_type)
        assert {key: node.inputs.get(key) for key in expected} == expected


def test_every_draft_says_which_nodes_serve_each_clause_and_which_slots_it_read(registry: NodeRegistry) -> None:
    result = draft("Generate four variations of a sunset, then resize the first one to 1200x628.",
                   registry=registry)
    assert result.graph is not None
    answer = json.loads(json.dumps(result.to_json()))
    clauses = answer["clauses"]
    assert [c["served"] for c in clauses] == [True, True] and answer["coverage"] == 1.0
    assert clauses[0]["slots"]["count"] == 4 and "generate_image" in clauses[0]["recipes"]
    assert clauses[1]["slots"]["width"] == 1200 and "resize_image" in clauses[1]["recipes"]
    for clause in clauses:
        assert set(clause["nodes"]) <= set(answer["graph"]["nodes"]) and clause["nodes"]


def test_a_clause_that_only_names_the_input_or_the_results_is_no_step(registry: NodeRegistry) -> None:
    result = draft("Take my podcast transcript, summarise it, and read the summary aloud.", registry=registry)
    assert result.graph is not None
    assert _types(result.graph) == Counter({"text.template": 1, "llm.chat": 1, "audio.speak": 1})
    assert result.unserved == ["Take my podcast transcript"]
    result = draft("Classify the sentiment of every review in the list, then collect the results.",
                   registry=registry)
    assert result.graph is not None and _types(result.graph) == Counter({"control.map": 2})
    assert result.unserved == ["collect the results"]


def test_two_sources_are_two_requests_and_both_feed_the_comparison(registry: NodeRegistry) -> None:
    graph = _drafted("Fetch both our blog and our shop page and have the model compare them.", registry)
    assert _types(graph) == Counter({"http.request": 2, "text.template": 1, "llm.chat": 1})
    template = next(i for i in graph.nodes.values() if i.type == "text.template")
    fed = {link.node for _, link in template.links()}
    assert {n for n, i in graph.nodes.items() if i.type == "http.request"} == fed
    assert "Another source:" in template.inputs["template"]  # the model can tell the two pages apart


def test_a_field_of_every_entry_is_summed(registry: NodeRegistry) -> None:
    result = draft("The orders endpoint returns this month's orders, each with an id and an amount. Fetch it, pull "
                   "the amount out of every order, add them all up and post the total to our webhook.",
                   registry=registry)
    graph = result.graph
    assert graph is not None and validate_graph(graph, registry) == []
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1, "control.map": 1, "math.sum": 1,
                                     "json.object": 1, "webhook.post": 1})
    assert {("http.request", "json", "json.extract"), ("json.extract", "value", "control.map"),
            ("control.map", "results", "math.sum")} <= _edges(graph)
    paths = {i.inputs.get("path") for i in graph.nodes.values() if i.type == "json.extract"}
    per_item = next(i for i in graph.nodes.values() if i.type == "control.map")
    assert paths == {"orders"} and per_item.inputs["inputs"] == {"path": "amount"}
    assert result.unserved == []  # "Fetch it" is served by the fetch the first sentence asks for
    fetch = next(c for c in result.to_json()["clauses"] if c["text"] == "Fetch it")
    assert [graph.nodes[n].type for n in fetch["nodes"]] == ["http.request"]


def test_a_json_answer_fetched_for_one_thing_is_read_through_that_field(registry: NodeRegistry) -> None:
    graph = _drafted("Get the latest headline from the news API and turn it into a limerick.", registry)
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1, "text.template": 1, "llm.chat": 1})
    assert {("http.request", "json", "json.extract"), ("json.extract", "value", "text.template")} <= _edges(graph)
    extract = next(i for i in graph.nodes.values() if i.type == "json.extract")
    assert extract.inputs["path"] == "headline" and extract.inputs["missing_ok"] is True


@pytest.mark.parametrize(("request_text", "field"), [
    ("Find out the water temperature from the lake API.", "water_temperature"),
    ("What's the latest score from the league API?", "score"),
])
def test_a_thing_fetched_and_taken_by_no_step_is_the_answer(registry: NodeRegistry, request_text: str,
                                                           field: str) -> None:
    graph = _drafted(request_text, registry)
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1})
    extract = next(i for i in graph.nodes.values() if i.type == "json.extract")
    assert extract.inputs["path"] == field and extract.inputs["missing_ok"] is True
    assert list(graph.outputs) == [field] and graph.outputs[field].node in graph.nodes


def test_a_fetch_that_names_only_what_it_fetches_reads_that_field(registry: NodeRegistry) -> None:
    graph = _drafted("Download the choir's rehearsal schedule and save it to schedule.json.", registry)
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1, "file.save": 1})
    assert {("http.request", "json", "json.extract"), ("json.extract", "value", "file.save")} <= _edges(graph)
    extract = next(i for i in graph.nodes.values() if i.type == "json.extract")
    assert extract.inputs["path"] == "rehearsal_schedule"  # after its owner ("the choir's")


def test_a_step_named_by_its_verb_is_not_taken_for_the_thing_it_works_on(registry: NodeRegistry) -> None:
    result = draft("Boil the safety inspection notes down to a few lines, then translate the summary into Dutch and "
                   "Greek.", registry=registry)
    assert [clause["recipes"] for clause in result.clauses] == [["summarize"], ["translate"]]
    graph = result.graph
    assert graph is not None and _types(graph) == Counter({"text.template": 3, "llm.chat": 3})
    summary = next(n for n, i in graph.nodes.items() if i.type == "llm.chat" and "Summarize" in str(
        graph.nodes[i.links()[0][1].node].inputs["template"]))
    translations = [i for i in graph.nodes.values()
                    if i.type == "text.template" and "Translate" in i.inputs["template"]]
    assert sorted(t.inputs["template"].split(".")[0] for t in translations) == [
        "Translate the following into Dutch", "Translate the following into Greek"]
    assert all(link.node == summary for t in translations for _, link in t.links())


def test_fields_of_an_api_answer_named_for_the_model_are_read_one_by_one(registry: NodeRegistry,
                                                                          tmp_path: Path) -> None:
    graph = _drafted("Get the match report JSON from the league API and have the model write a two-line summary for "
                     "the club newsletter from the home score and the away score.", registry)
    extracts = {i.inputs["path"]: i for i in graph.nodes.values() if i.type == "json.extract"}
    assert set(extracts) == {"home_score", "away_score"}
    template = next(i for i in graph.nodes.values() if i.type == "text.template")
    assert {port: link.node for port, link in template.links()} == {
        "home_score": next(n for n, i in graph.nodes.items() if i.inputs.get("path") == "home_score"),
        "away_score": next(n for n, i in graph.nodes.items() if i.inputs.get("path") == "away_score")}
    assert "{{ home_score }}" in template.inputs["template"] and "{{ away_score }}" in template.inputs["template"]
    assert _runs(graph, registry, tmp_path, timeout=120) == (True, None)


def test_the_list_of_names_in_an_api_answer_is_one_name_per_entry_saved_one_per_line(registry: NodeRegistry) -> None:
    graph = _drafted("Call the gym's bookings API for tomorrow's classes and save the list of instructor names to "
                     "instructors.txt, one per line.", registry)
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1, "control.map": 1, "text.join": 1,
                                     "file.save": 1})
    assert {("http.request", "json", "json.extract"), ("json.extract", "value", "control.map"),
            ("control.map", "results", "text.join"), ("text.join", "text", "file.save")} <= _edges(graph)
    listed = next(i for i in graph.nodes.values() if i.type == "json.extract")
    assert listed.inputs["path"] == "classes"  # the list the API was called for


def test_a_written_text_recorded_or_timed_is_spoken_first(registry: NodeRegistry, tmp_path: Path) -> None:
    recorded = _drafted("Write a short welcome message for our bike shop's answering machine and record it as "
                        "welcome.wav.", registry)
    assert {("llm.chat", "text", "audio.speak"), ("audio.speak", "audio", "file.save")} <= _edges(recorded)
    saved = next(i for i in recorded.nodes.values() if i.type == "file.save")
    assert saved.inputs["filename"] == "welcome.wav"
    timed = _drafted("Write a 15-second promo for our bakery and time it.", registry)
    assert _types(timed) == Counter({"text.template": 1, "llm.chat": 1, "audio.speak": 1, "audio.duration": 1})
    assert {("llm.chat", "text", "audio.speak"), ("audio.speak", "audio", "audio.duration")} <= _edges(timed)
    # a sound of the user's is measured as it is
    assert "audio.speak" not in _types(_drafted("How long is my podcast episode? Then write a tweet announcing it.",
                                                registry))
    assert _runs(timed, registry, tmp_path, timeout=120) == (True, None)


def test_a_page_named_for_the_model_to_read_is_fetched_and_page_text_given_is_not(registry: NodeRegistry) -> None:
    fetched = _drafted("Translate the museum's opening hours page into Spanish.", registry)
    assert ("http.request", "text", "text.template") in _edges(fetched)
    assert "http.request" not in _types(_drafted("Turn this product page text into a tagline.", registry))


def test_asides_do_not_ask_for_steps_and_a_plural_field_of_every_entry_is_summed(registry: NodeRegistry,
                                                                                 tmp_path: Path) -> None:
    graph = _drafted("The parish API gives back a 'collections' list and each one has a sum (late entries arrive as "
                     "negative corrections). Add all the sums up and post it to the treasurer's webhook as "
                     '{"total": ...}.', registry)
    # "negative" in the aside classifies nothing; "total" in the JSON shape adds nothing
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1, "control.map": 1, "math.sum": 1,
                                     "json.object": 1, "webhook.post": 1})
    mapped = next(i for i in graph.nodes.values() if i.type == "control.map")
    assert (mapped.inputs["node"], mapped.inputs["inputs"]) == ("json.extract", {"path": "sum"})
    assert ("control.map", "results", "math.sum") in _edges(graph)
    assert _runs(graph, registry, tmp_path, timeout=60) == (True, None)


def test_a_list_asked_for_as_json_is_the_model_s_json_answer(registry: NodeRegistry) -> None:
    graph = _drafted("Come up with four names for our new bakery as JSON.", registry)
    assert _types(graph) == Counter({"text.template": 1, "llm.structured": 1})  # no list read out of it
    (output,) = graph.outputs.values()
    assert graph.nodes[output.node].type == "llm.structured" and output.output == "data"


def test_the_method_written_in_capitals_is_used_and_the_status_code_is_what_is_posted(registry: NodeRegistry,
                                                                                     tmp_path: Path) -> None:
    graph = _drafted("Send a PUT to the inventory API and tell my Slack webhook the status code.", registry)
    assert _types(graph) == Counter({"http.request": 1, "json.object": 1, "webhook.post": 1})
    request = next(i for i in graph.nodes.values() if i.type == "http.request")
    payload = next(i for i in graph.nodes.values() if i.type == "json.object")
    assert request.inputs["method"] == "PUT"
    assert {port: (graph.nodes[link.node].type, link.output) for port, link in payload.links()} == {
        "status": ("http.request", "status")}
    assert _runs(graph, registry, tmp_path, timeout=60) == (True, None)


def test_lines_spoken_one_slide_each_are_a_timed_voice_over(registry: NodeRegistry) -> None:
    graph = _drafted("Write a short poem about autumn as three lines in JSON, make a title card for each line and a "
                     "video where each card stays on screen as long as its line is spoken.", registry)
    assert _types(graph)["audio.voice_over"] == 1 and "audio.speak" not in _types(graph)
    video = next(i for i in graph.nodes.values() if i.type == "video.slideshow")
    voice = next(n for n, i in graph.nodes.items() if i.type == "audio.voice_over")
    assert video.inputs["audio"].node == voice and video.inputs["durations"].node == voice
    assert video.inputs["durations"].output == "durations"


def test_a_video_named_before_its_narration_takes_the_narration(registry: NodeRegistry) -> None:
    graph = _drafted("Make a slideshow of my garden photos narrated with my planting notes.", registry)
    assert ("audio.speak", "audio", "video.slideshow") in _edges(graph)


def test_only_if_a_number_passes_a_threshold_is_a_compare_and_a_branch(registry: NodeRegistry, tmp_path: Path) -> None:
    graph = _drafted("Read the battery level from the drone API and, only if it is below 20, send a warning to my "
                     "Slack webhook.", registry)
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1, "math.compare": 1, "control.branch": 1,
                                     "json.object": 1, "webhook.post": 1})
    assert {("json.extract", "value", "math.compare"), ("math.compare", "result", "control.branch"),
            ("control.branch", "true", "json.object")} <= _edges(graph)
    compare = next(i for i in graph.nodes.values() if i.type == "math.compare")
    assert (compare.inputs["op"], compare.inputs["b"]) == ("<", 20.0)
    assert graph.optional_outputs == frozenset(graph.outputs)  # absent when the branch is not taken
    # it runs: a local server stands in for the drone API and the webhook
    assert _runs(graph, registry, tmp_path, timeout=60) == (True, None)


def test_one_answer_per_entry_of_an_apis_list_saved_one_per_line(registry: NodeRegistry) -> None:
    result = draft("The library API lists overdue loans, each with the borrower's name and the book title. Get that "
                   "list, have the model write a friendly reminder per loan, and put all the reminders into "
                   "reminders.txt.", registry=registry)
    graph = result.graph
    assert graph is not None and validate_graph(graph, registry) == []
    assert result.unserved == ["Get that list"]  # names what the first sentence fetches: no step of its own
    assert _types(graph) == Counter({"http.request": 1, "json.extract": 1, "control.map": 2, "text.join": 1,
                                     "file.save": 1})
    assert {("json.extract", "value", "control.map"), ("control.map", "results", "control.map"),
            ("control.map", "results", "text.join"), ("text.join", "text", "file.save")} <= _edges(graph)
    extract = next(i for i in graph.nodes.values() if i.type == "json.extract")
    join = next(i for i in graph.nodes.values() if i.type == "text.join")
    assert extract.inputs["path"] == "loans" and join.inputs["separator"] == "\n"


def test_a_still_of_the_users_video_is_saved_as_a_picture(registry: NodeRegistry) -> None:
    graph = _drafted("Grab a frame from the interview video at 12 seconds and save it.", registry)
    assert _types(graph) == Counter({"video.thumbnail": 1, "file.save": 1})  # the user's video: no slideshow
    frame = next(i for i in graph.nodes.values() if i.type == "video.thumbnail")
    saved = next(i for i in graph.nodes.values() if i.type == "file.save")
    assert frame.inputs["at"] == 12.0 and saved.inputs["filename"] == "result.png"


def test_options_made_with_the_diffusion_model_are_pictures_not_a_list(registry: NodeRegistry) -> None:
    graph = _drafted("Let the language model write an image prompt for our jazz night poster, then generate three "
                     "options with the diffusion model.", registry)
    assert _types(graph) == Counter({"text.template": 1, "llm.chat": 1, "image.pipeline": 1, "image.generate": 1})
    assert ("llm.chat", "text", "image.generate") in _edges(graph)
    generate = next(i for i in graph.nodes.values() if i.type == "image.generate")
    assert generate.inputs["batch_size"] == 3


def test_a_picture_step_done_to_each_of_the_users_pictures_is_a_map_over_them(registry: NodeRegistry,
                                                                              tmp_path: Path) -> None:
    graph = _drafted("Can you scale every snapshot from the street festival to 640x480 and write the festival's "
                     "name along the bottom of each one?", registry)
    assert _types(graph) == Counter({"control.map": 2})
    resize, overlay = (graph.nodes[n] for n in graph.nodes)
    assert (resize.inputs["node"], overlay.inputs["node"]) == ("image.resize", "image.overlay_text")
    assert ("control.map", "results", "control.map") in _edges(graph)  # the captions go on the resized pictures
    (listed,) = [name for name, declared in graph.inputs.items() if str(declared.type) == "List[Image]"]
    # it runs: two pictures in, two captioned 640x480 pictures out
    text_input = next(name for name, declared in graph.inputs.items() if str(declared.type) == "Text")
    with LocalExecutor(registry, artifacts=tmp_path / "artifacts") as executor:
        pictures = []
        for width, colour in ((300, "red"), (400, "blue")):
            buffer = io.BytesIO()
            Image.new("RGB", (width, 200), colour).save(buffer, format="PNG")
            pictures.append(executor.artifacts.put_bytes(buffer.getvalue(), "image/png").to_json())
        result = executor.submit(graph, {listed: pictures, text_input: "Street Festival"}).result(60)
        assert result.status.value == "succeeded", result.errors()
        (made,) = result.outputs.values()
        sizes = [Image.open(io.BytesIO(executor.artifacts.read_bytes(_ref(ref)))).size for ref in made]
    assert sizes == [(640, 480), (640, 480)]


def _ref(value: Any) -> ArtifactRef:
    return value if isinstance(value, ArtifactRef) else ArtifactRef.from_json(value)


def test_one_picture_per_item_of_a_written_list_is_a_map_of_the_diffusion_model(registry: NodeRegistry,
                                                                                tmp_path: Path) -> None:
    graph = _drafted("Have the model come up with three dessert ideas as JSON, then generate one picture per idea "
                     "with the diffusion model.", registry)
    mapped = {graph.nodes[n].inputs["node"] for n in graph.nodes if graph.nodes[n].type == "control.map"}
    assert mapped == {"image.generate", "json.extract"}  # a picture per idea, then the first of each batch
    assert {("llm.structured", "data", "json.extract"), ("json.extract", "value", "control.map"),
            ("image.pipeline", "pipe", "control.map"), ("control.map", "results", "control.map")} <= _edges(graph)
    assert _runs(graph, registry, tmp_path, timeout=240) == (True, None)


def test_a_numbered_list_of_steps_is_one_clause_per_step(registry: NodeRegistry) -> None:
    result = draft("What I need: 1) get the menu JSON from our cafe API, 2) have the model write a cheerful daily "
                   "specials post from it, 3) send it to our Slack webhook.", registry=registry)
    assert [c["text"] for c in result.clauses] == [
        "What I need", "get the menu JSON from our cafe API", "have the model write a cheerful daily specials post "
        "from it", "send it to our Slack webhook"]
    assert result.graph is not None and _types(result.graph) == Counter(
        {"http.request": 1, "text.template": 1, "llm.chat": 1, "json.object": 1, "webhook.post": 1})
    assert result.unserved == ["What I need"]


def test_a_card_with_a_slogan_to_write_gets_the_model_s_slogan(registry: NodeRegistry) -> None:
    graph = _drafted("Make a title card with a catchy slogan about our new oat latte.", registry)
    assert _types(graph) == Counter({"text.template": 1, "llm.chat": 1, "image.title_card": 1})
    assert ("llm.chat", "text", "image.title_card") in _edges(graph)
    graph = _drafted("Have the model name my new hiking boot, then put the name on a title card.", registry)
    assert ("llm.chat", "text", "image.title_card") in _edges(graph)
    graph = _drafted("Make a banner and a short announcement that our bike repair cafe opens on Saturdays.", registry)
    assert _types(graph) == Counter({"text.template": 1, "llm.chat": 1, "image.title_card": 1})


def test_a_picture_of_the_users_is_edited_not_generated(registry: NodeRegistry) -> None:
    result = draft("Here is a photo of my bedroom. With the diffusion model, show it in coastal style.",
                   registry=registry)
    assert result.graph is not None
    assert _types(result.graph) == Counter({"image.pipeline": 1, "image.edit": 1})


@pytest.mark.parametrize(("request_text", "edits"), [
    ("Turn my pencil doodle of a fox into a glossy 3D render.", True),
    ("Take my photo of the old shop front and use the diffusion model to show it freshly painted.", True),
    ("Make a new picture inspired by my beach photo with the diffusion model.", False),
])
def test_the_users_picture_named_in_the_clause_is_edited_unless_a_new_one_is_asked_for(
        registry: NodeRegistry, request_text: str, edits: bool) -> None:
    types = _types(_drafted(request_text, registry))
    assert (types["image.edit"], types["image.generate"]) == ((1, 0) if edits else (0, 1))


def test_a_sign_with_words_underneath_is_a_card_with_an_overlay(registry: NodeRegistry) -> None:
    graph = _drafted("Make a 'Gone Fishing' door sign with the reopening date underneath.", registry)
    assert _types(graph) == Counter({"image.title_card": 1, "image.overlay_text": 1})
    assert ("image.title_card", "image", "image.overlay_text") in _edges(graph)
    card = next(i for i in graph.nodes.values() if i.type == "image.title_card")
    assert graph.inputs[card.inputs["text"].name].default == "Gone Fishing"


def test_items_worked_on_one_by_one_after_a_plan_are_a_list_the_model_writes(registry: NodeRegistry,
                                                                             tmp_path: Path) -> None:
    result = draft("Plan a four-stop walking tour of Lisbon, make a card per stop and narrate it as a video.",
                   registry=registry)
    assert [clause["recipes"] for clause in result.clauses] == [["list_items"], ["cards_per_item"],
                                                               ["speak", "slideshow"]]
    graph = result.graph
    assert graph is not None and validate_graph(graph, registry) == []
    assert {("json.extract", "value", "control.map"), ("json.extract", "value", "text.join"),
            ("text.join", "text", "audio.speak"), ("control.map", "results", "video.slideshow"),
            ("audio.speak", "audio", "video.slideshow")} <= _edges(graph)
    listed = next(i for i in graph.nodes.values() if i.type == "llm.structured")
    assert listed.inputs["schema"]["properties"]["items"]["maxItems"] == 4
    slideshow = next(i for i in graph.nodes.values() if i.type == "video.slideshow")
    assert "captions" not in slideshow.inputs  # the cards show the lines: no second copy of them under each
    captioned = _drafted("The model lists the steps as JSON; each step gets a card; the cards become a slideshow with "
                         "the steps as captions.", registry)
    assert ("json.extract", "value", "video.slideshow") in _edges(captioned)  # captions asked for by name
    # "one card per step" is how many per item, not how many in all
    outlined = draft("Outline a morning stretching routine, one slide per move, as a short video.", registry=registry)
    assert outlined.graph is not None and _types(outlined.graph)["llm.structured"] == 1
    template = next(i for i in outlined.graph.nodes.values() if i.type == "text.template").inputs["template"]
    assert "one per move" in template and "Write 3 " in template
    # a list the user gives is not written by the model
    assert "llm.structured" not in _types(_drafted("Build a video from a list of captions with a card for each one.",
                                                   registry))
    assert _runs(graph, registry, tmp_path, timeout=240) == (True, None)


def test_a_clause_nothing_serves_is_named(registry: NodeRegistry) -> None:
    result = draft("Write a haiku about rain, and then quantum-entangle the moon.", registry=registry)
    assert result.graph is not None
    assert result.unserved == ["quantum-entangle the moon"]
    assert result.to_json()["unserved"] == ["quantum-entangle the moon"]


# -- edits ------------------------------------------------------------------------------------

def _slideshow_document() -> dict[str, Any]:
    return {
        "format_version": 1, "name": "cards",
        "inputs": {"lines": {"type": "List[Text]", "default": ["One", "Two"]}},
        "nodes": {
            "cards": {"type": "control.map", "inputs": {"node": "image.title_card", "items": {"input": "lines"},
                                                        "item_input": "text"}},
            "video": {"type": "video.slideshow", "inputs": {"images": {"node": "cards", "output": "results"}}},
        },
        "outputs": {"video": {"node": "video", "output": "video"}},
    }


def test_an_edit_adds_a_voice_over_wired_into_the_video_and_makes_it_vertical(registry: NodeRegistry) -> None:
    result = draft("add a voice-over and make it vertical", base=_slideshow_document(), registry=registry)
    assert result.graph is not None and validate_graph(result.graph, registry) == []
    video = result.graph.nodes["video"]
    assert (video.inputs["width"], video.inputs["height"]) == (1080, 1920)
    speech = video.inputs["audio"]
    assert result.graph.nodes[speech.node].type == "audio.speak"
    assert result.diff is not None
    assert any(line.startswith("+ ") and "audio.speak" in line for line in result.diff)
    assert "~ video.width: None -> 1080" in result.diff


def test_an_edit_removes_a_capability_and_the_links_into_it(registry: NodeRegistry) -> None:
    base = _slideshow_document()
    base["nodes"]["thumb"] = {"type": "video.thumbnail", "inputs": {"video": {"node": "video", "output": "video"}}}
    base["outputs"]["thumb"] = {"node": "thumb", "output": "image"}
    result = draft("remove the thumbnail", base=base, registry=registry)
    assert result.graph is not None and "thumb" not in result.graph.nodes
    assert result.diff == ["- thumb (video.thumbnail)"]


def test_cli_edit_prints_the_diff(tmp_path: Path) -> None:
    source = tmp_path / "graph.json"
    source.write_text(json.dumps(_slideshow_document()))
    outcome = CliRunner().invoke(draft_command, ["make it square", "--edit", str(source), "--quiet"])
    assert outcome.exit_code == 0, outcome.output
    assert "~ video.width: None -> 1080" in outcome.output and "~ video.height: None -> 1080" in outcome.output
