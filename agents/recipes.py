"""The recipe library: small typed sub-graphs, each one capability a request asks for.

Recipes ship with the package as `agents/library/recipes.json` (the guide to the format and to
adding one is docs/drafting-recipes.md). A recipe is a short program (`agents.program`) with
placeholders for its slots: `$name` becomes the slot's value as a literal, `@name@` the value
spliced into a string literal. Its *wired* inputs (`wire`) are graph inputs that the composer
replaces with the output of an earlier step of a fitting kind; `node.port` keys name an
optional input of a node that is linked only when such an output exists.

Whole example workflows (`agents/library/examples.json`) are requests with the recipe steps
that serve them; the composer adapts a near-identical one directly.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from nodeloom.agents.program import compile_program
from nodeloom.core.errors import NodeloomError
from nodeloom.core.graph import Graph
from nodeloom.core.validate import NodeCatalog

#: kinds a recipe produces or accepts on a wired input ("?" after a kind: optional)
#: the conditions a recipe's `wire_when` may put on a wired input
WIRE_CONDITIONS = ("referenced",)
KINDS = ("text", "json", "number", "any", "texts", "image", "images", "audio", "video", "videos", "all")
_LITERAL_SLOT = re.compile(r"\$([a-z_]+)")
_TEXT_SLOT = re.compile(r"@([a-z_]+)@")
_NODE_TYPE = re.compile(r"\b([a-z]+\.[a-z_]+)\(")
_FIELD_AFTER = re.compile(r"\s+(field|key|property|attribute)\b", re.I)
_MAP_NODE = re.compile(r'node="([a-z]+\.[a-z_]+)"')
#: quoted text ("a card that says 'Save More'") is what to show, not what to do
#: the most characters of a clause its cues are matched in (a request may be 4 000 characters long)
CUE_WINDOW = 400
_ASIDE = re.compile(r"\([^()]{0,160}\)|\{[^{}]{0,160}\}")
_QUOTED_SPAN = re.compile(r"(?:^|(?<=[\s(:]))(['\"“‘])[^'\"”’]{2,80}['\"”’]")


class RecipeError(NodeloomError):
    """A recipe or example of the library is malformed."""


@dataclass(frozen=True)
class Recipe:
    """One capability as a typed sub-graph with slots, cues and example phrasings."""

    name: str
    capability: str
    group: str
    produces: str
    wire: Mapping[str, str]
    slots: Mapping[str, Any]
    cues: tuple[re.Pattern[str], ...]
    phrasings: tuple[str, ...]
    use_when: str
    not_when: str
    program: str
    fan_out: str | None = None
    avoid: tuple[re.Pattern[str], ...] = ()
    cue_all: bool = False
    #: where its cues match, the recipe comes before those of its group that rank higher by meaning
    #: ("read the captions aloud, each slide as long as its line": a voice-over, not one speech)
    precedence: int = 0
    #: wired inputs linked only under a condition: "referenced" -- the clause refers back ("generate it", "from
    #: the prompt") or the request had the model write an image prompt; otherwise the input stays the user's
    wire_when: Mapping[str, str] = field(default_factory=dict)
    #: other outputs of the node that makes the recipe's output, each linked to the input of that name on the
    #: node that takes the output (a voice-over's `durations` time the slideshow it narrates)
    also: Mapping[str, str] = field(default_factory=dict)
    #: a fetched JSON answer is read through the field the clause fetched it for ("the top story from the API")
    read_for_thing: bool = False

    @property
    def node_types(self) -> set[str]:
        """The node types the recipe uses (control.map's mapped node included)."""
        return set(_NODE_TYPE.findall(self.program)) | set(_MAP_NODE.findall(self.program))

    def available_in(self, catalog: NodeCatalog) -> bool:
        return all(catalog.find(node_type) is not None for node_type in self.node_types)

    def cue_hits(self, text: str) -> list[int]:
        """Where the recipe's cues match `text` (start offsets); empty when they do not (or an avoid cue does)."""
        # cues are matched within a clause's first CUE_WINDOW characters: several have two open gaps
        # (`add … title … at the top`), whose cost grows with the cube of the text's length
        text = _QUOTED_SPAN.sub(lambda m: " " * len(m.group(0)), text[:CUE_WINDOW])
        # an aside in brackets ("(refunds come through as negative amounts)") or a JSON shape ('as {"total": ...}')
        # describes the data; it asks for no step
        text = _ASIDE.sub(lambda m: " " * len(m.group(0)), text)
        if any(pattern.search(text) for pattern in self.avoid):
            return []
        # a cue word that names a JSON field ("its summary field") names no capability
        found = [next((m for m in pattern.finditer(text) if not _FIELD_AFTER.match(text, m.end())), None)
                 for pattern in self.cues]
        if self.cue_all and not all(found):
            return []
        return sorted(match.start() for match in found if match is not None)

    def source(self, slots: Mapping[str, Any] | None = None) -> str:
        """The program with its slots filled (`slots` over the recipe's defaults)."""
        values = {**self.slots, **(slots or {})}

        def literal(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise RecipeError(f"recipe {self.name}: no value for slot ${name}")
            return repr(values[name])

        def spliced(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise RecipeError(f"recipe {self.name}: no value for slot @{name}@")
            text = str(values[name])
            return json.dumps(text)[1:-1]

        return _LITERAL_SLOT.sub(literal, _TEXT_SLOT.sub(spliced, self.program))

    def graph(self, catalog: NodeCatalog, slots: Mapping[str, Any] | None = None) -> Graph:
        """The recipe as a graph of its own (wired inputs as graph inputs)."""
        return compile_program(self.source(slots), catalog, name=self.name)

    def menu_line(self) -> str:
        """The recipe in one line, for a prompt's recipe menu."""
        wired = ", ".join(f"{name}: {kind}" for name, kind in self.wire.items())
        return f"{self.name}({wired}) -> {self.produces}: {self.capability}; use when {self.use_when}"


@dataclass(frozen=True)
class ExampleStep:
    recipe: str
    slots: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExampleWorkflow:
    """A whole request and the recipe steps (in order) that serve it."""

    request: str
    category: str
    steps: tuple[ExampleStep, ...]


def _patterns(values: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(value, re.I) for value in values)


def _read(name: str) -> Any:
    try:
        return json.loads(resources.files("nodeloom.agents").joinpath("library", name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecipeError(f"cannot read the recipe library file {name}: {error}") from None


def recipe_from(entry: Mapping[str, Any]) -> Recipe:
    """One recipe from its entry of the library file; `RecipeError` names what is malformed."""
    try:
        recipe = Recipe(
            name=entry["name"], capability=entry["capability"], group=entry["group"],
            produces=entry["produces"], wire=dict(entry["wire"]), slots=dict(entry.get("slots", {})),
            cues=_patterns(entry["cues"]), phrasings=tuple(entry["phrasings"]), use_when=entry["use_when"],
            not_when=entry["not_when"], program=entry["program"], fan_out=entry.get("fan_out"),
            avoid=_patterns(entry.get("avoid", [])), cue_all=bool(entry.get("cue_all", False)),
            precedence=int(entry.get("precedence", 0)), wire_when=dict(entry.get("wire_when", {})),
            also=dict(entry.get("also", {})), read_for_thing=bool(entry.get("read_for_thing", False)),
        )
    except (KeyError, TypeError, ValueError, re.error) as error:
        raise RecipeError(f"recipe {entry.get('name', '?')}: malformed ({error})") from None
    kinds = [recipe.produces, *(kind.rstrip("?") for kind in recipe.wire.values())]
    if any(kind not in KINDS for kind in kinds):
        raise RecipeError(f"recipe {recipe.name}: unknown kind among {kinds}")
    for name, condition in recipe.wire_when.items():
        if name not in recipe.wire:
            raise RecipeError(f"recipe {recipe.name}: wire_when names {name!r}, an input it does not wire")
        if condition not in WIRE_CONDITIONS:
            raise RecipeError(f"recipe {recipe.name}: wire_when condition {condition!r} of {name!r} is unknown "
                              f"(conditions: {', '.join(WIRE_CONDITIONS)})")
    return recipe


@functools.lru_cache(maxsize=1)
def load_recipes() -> dict[str, Recipe]:
    """Every recipe of the library, by name."""
    recipes = [recipe_from(entry) for entry in _read("recipes.json")]
    return {recipe.name: recipe for recipe in recipes}


@functools.lru_cache(maxsize=1)
def load_examples() -> tuple[ExampleWorkflow, ...]:
    """Every example workflow of the library."""
    recipes = load_recipes()
    examples = []
    for entry in _read("examples.json"):
        steps = []
        for step in entry["steps"]:
            name, _, given = step.partition(" ")
            if name not in recipes:
                raise RecipeError(f"example {entry['request']!r}: unknown recipe {name!r}")
            steps.append(ExampleStep(name, json.loads(given) if given else {}))
        examples.append(ExampleWorkflow(entry["request"], entry["category"], tuple(steps)))
    return tuple(examples)


__all__ = [
    "KINDS", "WIRE_CONDITIONS", "ExampleStep", "ExampleWorkflow", "Recipe", "RecipeError", "load_examples",
    "load_recipes", "recipe_from",
]
