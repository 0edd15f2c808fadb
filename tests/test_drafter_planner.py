"""The type-directed planner: broken drafts become graphs that validate, keeping what was sound."""

from __future__ import annotations

import random

import pytest

from nodeloom.agents.planner import PlanningRefused, complete_graph, goal_types
from nodeloom.core import Graph, InputRef, Link
from nodeloom.core.types import Audio, Image, Json, Text, Video
from nodeloom.core.validate import validate_graph
from nodeloom.node_registry import NodeRegistry, builtin_registry


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return builtin_registry()


def node_types(graph: Graph) -> list[str]:
    return sorted(instance.type for instance in graph.nodes.values())


@pytest.mark.parametrize(
    ("request_text", "goals"),
    [
        ("Summarise this article in three bullet points", [Text]),
        ("Make a poster for the launch", [Image]),
        ("Read the summary aloud as speech", [Audio]),
        ("Turn the facts into a 20-second vertical video ad with a voice-over", [Video]),
        ("Extract the fields as JSON", [Json]),
    ],
)
def test_goal_types_are_read_from_the_request(request_text: str, goals: list[object]) -> None:
    assert goal_types(request_text) == goals


def test_from_nothing_a_text_request_becomes_a_templated_prompt_for_an_llm(registry: NodeRegistry) -> None:
    planned = complete_graph("Write a haiku about autumn", registry, candidates=["llm.chat", "text.template"])
    graph = planned.graph
    assert validate_graph(graph, registry) == []
    assert node_types(graph) == ["llm.chat", "text.template"]
    (chat,) = [i for i in graph.nodes.values() if i.type == "llm.chat"]
    (template,) = [i for i in graph.nodes.values() if i.type == "text.template"]
    assert chat.inputs == {"prompt": Link(template.id, "text")}
    assert template.inputs == {"template": InputRef("template")}
    assert graph.inputs["template"].default == "Write a haiku about autumn"
    assert graph.outputs == {"text": Link(chat.id, "text")}


def test_a_request_to_write_and_speak_puts_an_llm_before_the_voice(registry: NodeRegistry) -> None:
    planned = complete_graph("Write a slogan for a tea shop and read it aloud", registry,
                             candidates=["audio.speak", "llm.chat"])
    graph = planned.graph
    assert validate_graph(graph, registry) == []
    (speak,) = [i for i in graph.nodes.values() if i.type == "audio.speak"]
    source = speak.inputs["text"]
    assert isinstance(source, Link) and graph.nodes[source.node].type == "llm.chat"


def test_a_video_request_gets_the_shortest_typed_chain_and_asks_the_user_for_a_model(registry: NodeRegistry) -> None:
    planned = complete_graph("Make a short video about tea", registry,
                             candidates=["video.slideshow", "image.generate", "image.pipeline"])
    graph = planned.graph
    assert validate_graph(graph, registry) == []
    assert node_types(graph) == ["image.generate", "image.pipeline", "video.slideshow"]
    required = [name for name, declared in graph.inputs.items() if declared.port.required]
    assert required == ["model"]
    (video,) = [i for i in graph.nodes.values() if i.type == "video.slideshow"]
    assert graph.outputs["video"] == Link(video.id, "video")


def test_a_broken_draft_keeps_its_sound_nodes_and_drops_the_rest(registry: NodeRegistry) -> None:
    draft = Graph("draft")
    topic = draft.input("topic", Text, default="tea")
    brief = draft.add("text.template", "brief", template="Write about {{ t }}", t=topic)
    draft.add("llm.chat", "story", prompt=brief["text"], temperature=9.5, bogus=1)  # out of range, unknown port
    draft.add("text.sparkle", "shine", text=brief["text"])  # unknown node type
    draft.add("image.title_card", "card", text=Link("ghost", "text"))  # dangling link
    draft.add("audio.speak", "voice", text=Link("card", "image"))  # Image cannot feed Text
    draft.output("story", Link("story", "text"))
    draft.output("voice", Link("voice", "audio"))
    assert validate_graph(draft, registry) != []

    planned = complete_graph("Write a story about tea and read it aloud", registry, draft=draft)
    graph = planned.graph
    assert validate_graph(graph, registry) == []
    assert graph.nodes["brief"].inputs == {"template": "Write about {{ t }}", "t": InputRef("topic")}
    assert graph.nodes["story"].inputs == {"prompt": Link("brief", "text")}
    assert "shine" not in graph.nodes and "card" not in graph.nodes  # feeds no output after the repair
    assert isinstance(graph.nodes["voice"].inputs["text"], Link | InputRef)
    assert set(graph.outputs) == {"story", "voice"}
    assert "shine" in planned.removed
    assert {"brief", "story", "voice"} <= set(planned.kept)


def test_a_loop_in_the_draft_is_cut_and_the_inputs_refilled(registry: NodeRegistry) -> None:
    draft = Graph("loop")
    draft.add("text.join", "a", first=Link("b", "text"), second="x")
    draft.add("text.join", "b", first=Link("a", "text"), second="y")
    draft.output("text", Link("b", "text"))
    planned = complete_graph("Join two texts", registry, draft=draft)
    assert validate_graph(planned.graph, registry) == []
    assert planned.graph.outputs == {"text": Link("b", "text")}
    assert any("closed a loop" in note for note in planned.notes)


def test_missing_required_inputs_become_graph_inputs_and_handles_get_a_producer(registry: NodeRegistry) -> None:
    draft = Graph("gen")
    draft.add("image.generate", "picture")  # needs a pipeline handle and a prompt
    draft.output("images", Link("picture", "images"))
    planned = complete_graph("Generate a picture of a lamp", registry, draft=draft)
    graph = planned.graph
    assert validate_graph(graph, registry) == []
    pipe = graph.nodes["picture"].inputs["pipe"]
    assert isinstance(pipe, Link) and graph.nodes[pipe.node].type == "image.pipeline"
    assert graph.nodes["picture"].inputs["prompt"] == InputRef("prompt")
    assert graph.inputs["prompt"].default == "Generate a picture of a lamp"


def test_a_valid_draft_is_kept_as_it_is(registry: NodeRegistry) -> None:
    draft = Graph("ok")
    text = draft.input("text", Text, default="hello")
    loud = draft.add("text.template", "loud", template="{{ t | upper }}", t=text)
    draft.output("text", loud["text"])
    planned = complete_graph("Shout a text", registry, draft=draft)
    assert planned.graph.to_json()["nodes"] == draft.to_json()["nodes"]
    assert planned.added == [] and planned.removed == []


def test_a_request_the_catalog_cannot_serve_is_refused_naming_what_is_missing() -> None:
    text_only = NodeRegistry()
    text_only.register_module("nodeloom.node_registry.text")
    with pytest.raises(PlanningRefused) as refused:
        complete_graph("Make a video of the product", text_only)
    assert refused.value.refusal.code == "unreachable_output"
    assert refused.value.refusal.unmet == ("Video",)
    error = refused.value.to_dict()["error"]
    assert error["code"] == "planning_refused"
    assert error["details"] == {"code": "unreachable_output", "message": error["message"], "unmet": ["Video"]}


def random_draft(rng: random.Random, registry: NodeRegistry) -> Graph:
    """A draft such as a weak model writes: wrong ports, dangling links, bad literals, unknown types."""
    names = [*registry.types(), "text.sparkle"]
    graph = Graph("random")
    if rng.random() < 0.5:
        graph.input("x", Text, default="hi")
    ids: list[str] = []
    for index in range(rng.randint(0, 6)):
        definition = registry.find(rng.choice(names))
        ports = [p.name for p in definition.spec.inputs] if definition else ["a"]
        inputs: dict[str, object] = {}
        for port in [*rng.sample(ports, k=min(len(ports), rng.randint(0, 3))), "junk"][: rng.randint(0, 4)]:
            roll = rng.random()
            if roll < 0.4 and ids:
                inputs[port] = Link(rng.choice([*ids, "ghost"]), rng.choice(["text", "image", "data", "nope"]))
            elif roll < 0.5:
                inputs[port] = InputRef(rng.choice(["x", "y"]))
            else:
                inputs[port] = rng.choice(["s", 3, -1, 2.5, True, None, [1], {"a": 1}, []])
        graph.add(definition.spec.type if definition else "text.sparkle", f"n{index}", **inputs)
        ids.append(f"n{index}")
    if ids and rng.random() < 0.7:
        graph.output("o", Link(rng.choice([*ids, "ghost"]), "text"))
    return graph


def test_every_random_broken_draft_becomes_a_graph_that_validates(registry: NodeRegistry) -> None:
    rng = random.Random(20261122)
    requests = ["make a video", "write a poem", "a poster", "read it aloud", "extract the fields", "fetch a page"]
    for _ in range(150):
        draft = random_draft(rng, registry)
        planned = complete_graph(rng.choice(requests), registry, draft=draft)
        assert validate_graph(planned.graph, registry) == [], draft.dumps()
