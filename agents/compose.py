"""Deterministic composition: a request becomes recipe steps, wired through typed interfaces.

1. The request is split into clauses (`agents.analysis`).
2. Each clause is matched to recipes by meaning (MiniLM cosine between the clause and each
   recipe's example phrasings) plus verb and noun cues; a clause may ask for several
   capabilities (one recipe per capability group), ordered as its words name them.
3. A small beam search keeps, per clause, the alternatives within reach of the best one and
   scores whole step sequences on similarity, cue matches and type fit (how many wired inputs
   an earlier step can feed).
4. A near-identical example workflow (`agents/library/examples.json`) is adapted directly:
   its steps, with the slots read from the request.
5. The steps are assembled: each recipe's sub-graph is added, its wired inputs linked to
   the latest earlier output of a fitting kind (a list of pictures gives its first picture, a
   JSON document its list field, through `json.extract`), slots fill sizes, counts, languages,
   fields and tones, and a recipe with a list slot (two languages, three sizes) is added once
   per value. One diffusion pipeline is shared by every diffusion step.

The result says, per clause, which recipes and nodes serve it and which slots were read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nodeloom.agents.analysis import Clause, correct_typos, number_of, read_slots, split_clauses
from nodeloom.agents.recipes import ExampleWorkflow, Recipe, load_examples, load_recipes
from nodeloom.core.branches import dependent_outputs
from nodeloom.core.graph import Graph
from nodeloom.core.types import PortType, can_connect
from nodeloom.core.validate import NodeCatalog, ValidationIssue, validate_graph

#: cosine to an example workflow's request from which its steps are adapted directly
EXAMPLE_THRESHOLD = 0.86
#: a clause without any cue match takes the most similar recipe only from this cosine up
SIMILARITY_FLOOR = 0.45
#: what a cue match adds to a recipe's similarity
CUE_WEIGHT = 0.35
#: alternatives kept per clause, and sequences kept by the beam
ALTERNATIVES = 2
BEAM_WIDTH = 6
#: what a wired input that an earlier step can feed adds to a sequence's score
TYPE_FIT_WEIGHT = 0.15
#: what a required structured input that no earlier step feeds takes off (in type-fit units)
UNFED_WEIGHT = 0.5

_DIRECT: dict[str, set[str]] = {
    "any": {"text", "json", "number", "any", "texts"},
    "text": {"text", "any"},
    "json": {"json", "any", "texts"},
    "number": {"number", "any"},
    "texts": {"texts"},
    "image": {"image"},
    "images": {"images"},
    "audio": {"audio"},
    "video": {"video"},
    "videos": {"videos"},
    "all": {"text", "json", "number", "any", "texts", "image", "images", "audio", "video", "videos"},
}
#: (produced kind, accepted kind) -> json.extract path that turns one into the other ("" = the step's field)
_COERCE: dict[tuple[str, str], str] = {("images", "image"): "0", ("json", "texts"): "", ("json", "number"): "",
                                       ("json", "text"): ""}
#: slots of the analysis that fan a recipe out, by the recipe's fan_out name
_FAN_SLOTS = {"language": "language", "tone": "tone", "size": "size", "field": "field", "style": "style"}
#: the order of a clause's capabilities in the data flow (others: 2): "post its summary field" extracts, then posts
_FLOW = {"fetch": 0, "extract": 1, "music": 1, "send": 3, "save": 3}
#: words before a recipe's cue that still count as the clause asking for it
LEAD_WORDS = 2
_LEAD_IN = re.compile(r"^(?:(?:and|then|also|finally|first|next|please|now)\s+)*(?:(?:have|let|ask|get|use|make)\s+"
                      r"the\s+(?:language\s+)?model\s+(?:to\s+|for\s+)?|the\s+(?:language\s+)?model\s+(?:should\s+)?)?",
                      re.I)
_CONTEXT = re.compile(r"^(?:i|we)\s*(?:'ll|'ve|\s+will|\s+have|\s+only have|\s+got|\s+am|'m)\b"
                      r"|^(?:there|here)(?:'s|\s+is|\s+are)\b"
                      # "tell me the HTTP status": an output of the request, no step of its own
                      r"|^(?:and\s+)?(?:also\s+)?(?:tell|show|give|return|report)\s+(?:me\s+)?(?:back\s+)?(?:the|its)\s+"
                      r"(?:http\s+|response\s+)?(?:status(?:\s+code)?|headers)(?:\s+as\s+well|\s+too)?$"
                      # "give me back both the outline and the intro": what to return, already made
                      r"|^(?:and\s+)?(?:please\s+)?(?:give|hand|send|return)\s+(?:me\s+)?(?:back\s+)?(?:both|all)\b"
                      r"(?!.*\b(?:join|joined|combine|combined|merge|merged|concatenat\w*)\b)"
                      # "Otherwise nothing needs to happen": the branch not taken, no step
                      r"|^(?:and\s+)?otherwise,?\s+(?:nothing|do\s+nothing|no\s+need|don't|do\s+not|skip|stop)\b",
                      re.I)
#: "I want to A/B test ad headlines": a purpose that names no capability is no step (when no cue matches)
_PURPOSE = re.compile(r"^(?:i|we)\s+(?:want|need|would like|'d like)\s+to\s+(?!(?:make|create|generate|write|translate|"
                      r"summari[sz]e|turn|get|fetch|build|post|send|save|draw|design|draft|render|call|download|scrape|"
                      r"produce|have|let|ask|put|add|resize|crop|edit|read|speak|narrate|record|list|compose)\b)", re.I)
#: "turn the summary into speech": what follows "into" is asked for, what comes before it is the input
_TURN_INTO = re.compile(r"^(?:(?:and|then|also|finally|next|please|now)\s+)*(?:turn|convert|transform|change|make)\b"
                        r"(?:(?!\binto\b).)*?\binto\b", re.I)
#: "for every product, write ...", "resize every photo": the clause works on each item of a list
_PER_ITEM = re.compile(r"^(?:(?:and|then|also|please|now)\s+)*(?:for\s+)?(?:each|every|per)\b"
                       r"|\b(?:(?:for|of|on|to|from|in|with) (?:each|every)(?: one of)?|per)\s+"
                       r"(?!(?:morning|day|week|month|hour|minute|time|night|year)\b)"
                       r"|^(?:(?:and|then|also|please|now)\s+)*[a-z]+\s+(?:each|every|all(?: of)? (?:the|my|our))\s+"
                       r"(?!(?:morning|day|week|month|hour|minute|time|night|year)\b)", re.I)
#: "for every ticket in my list": items of a list the user gives, worked on one by one
_PER_ITEM_OF_LIST = re.compile(r"\b(?:for|to|on) (?:each|every) (?:[\w-]+\s+){1,3}?(?:in|on|from|of) "
                               r"(?:my|the|our|this|that|a|an) (?:[\w-]+\s+){0,2}?"
                               r"(?:list|lists|array|feed|export|spreadsheet|sheet|csv|inbox|queue|backlog|table|"
                               r"catalog(?:ue)?|collection|set|batch)\b", re.I)
#: what the recipe that maps over items adds in such a clause
PER_ITEM_WEIGHT = 0.2
_BACK_WIRE = re.compile(r"\b(it|its|that|this|them|from (the|my|a|that)|the (prompt|description|text|headline|"
                        r"result)|prompt)\b", re.I)


#: "let the model write an image prompt ..., then generate three options": the pictures are of that prompt
_PROMPT_WRITTEN = re.compile(r"\b(?:write|writes|draft|create|craft|come up with|turn)\b[^.;]{0,40}"
                             r"\b(?:image|picture|visual|diffusion|art)\s+prompts?\b", re.I)
#: a template variable fed by (node type, output) is named for what it holds
_VARIABLE_NAMES = {("http.request", "text"): "body", ("http.request", "json"): "data", ("llm.chat", "text"): "draft"}


#: nouns that name the kind of output a clause means ("save the script" means a text, not a duration)
_NAMED_KINDS = [
    (re.compile(r"\b(script|text|summary|digest|reply|story|notes|transcript|copy|article|translation|answer|"
                r"email|letter|tweet|intro|outline|draft|poem|description|caption|slogan|tagline|line)s?\b", re.I),
     ("text",)),
    (re.compile(r"\b(audio|recording|speech|narration|voice-?over|sound|mp3|wav)\b", re.I), ("audio",)),
    (re.compile(r"\b(image|picture|photo|card|poster|banner|thumbnail|png|jpe?g)s?\b", re.I), ("image", "images")),
    (re.compile(r"\b(video|clip|movie|slideshow|mp4)s?\b", re.I), ("video", "videos")),
    (re.compile(r"\b(json|data|report|object|response|results|variants)\b", re.I), ("json", "texts")),
]


@dataclass
class Step:
    """One recipe serving one clause, with the slots read for it."""

    recipe: Recipe
    clause: int
    slots: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    position: int = 0
    #: the clause starts with this recipe's cue (after a lead-in): it asks for it, not just names it
    lead: bool = False
    #: later clauses that only name what this step makes ("Fetch it", "render each scene"), served by it
    also: list[int] = field(default_factory=list)


@dataclass
class ClauseReport:
    """What the drafter understood of one clause: the recipes and nodes that serve it, the slots read."""

    index: int
    text: str
    recipes: list[str]
    nodes: list[str]
    slots: dict[str, Any]

    @property
    def served(self) -> bool:
        return bool(self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text, "served": self.served, "recipes": self.recipes,
                "nodes": self.nodes, "slots": _jsonable(self.slots)}


@dataclass
class Composition:
    """The composed graph (None when no recipe fits), the steps and the per-clause account."""

    graph: Graph | None
    steps: list[Step]
    clauses: list[ClauseReport]
    example: str | None = None
    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Share of clauses served by some node."""
        return sum(c.served for c in self.clauses) / len(self.clauses) if self.clauses else 0.0

    @property
    def unserved(self) -> list[str]:
        return [c.text for c in self.clauses if not c.served]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class RecipeIndex:
    """Embeddings of every recipe phrasing and example request (MiniLM), made once per process."""

    _lock = threading.Lock()
    _instance: ClassVar[RecipeIndex | None] = None

    def __init__(self) -> None:
        from nodeloom.agents.retrieve import SentenceEncoder

        self.recipes = list(load_recipes().values())
        self.examples = list(load_examples())
        self.owner: list[int] = []
        phrasings: list[str] = []
        for number, recipe in enumerate(self.recipes):
            for text in (recipe.capability, *recipe.phrasings):
                phrasings.append(text)
                self.owner.append(number)
        self.phrasing_vectors = SentenceEncoder.encode(phrasings)
        self.example_vectors = SentenceEncoder.encode([e.request for e in self.examples]) if self.examples else None

    @classmethod
    def get(cls) -> RecipeIndex:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def similarities(self, texts: Sequence[str]) -> tuple[list[dict[str, float]], Any]:
        """Per text, each recipe's best cosine over its phrasings; and the texts' vectors."""
        from nodeloom.agents.retrieve import SentenceEncoder

        vectors = SentenceEncoder.encode(list(texts))
        scores = vectors @ self.phrasing_vectors.T
        table: list[dict[str, float]] = []
        for row in scores:
            best: dict[str, float] = {}
            for column, value in enumerate(row):
                name = self.recipes[self.owner[column]].name
                best[name] = max(best.get(name, -1.0), float(value))
            table.append(best)
        return table, vectors

    def nearest_example(self, vector: Any) -> tuple[ExampleWorkflow | None, float]:
        if self.example_vectors is None:
            return None, 0.0
        scores = self.example_vectors @ vector
        best = int(scores.argmax())
        return self.examples[best], float(scores[best])


_FIELD_NOUN = re.compile(r"\b(?:its|their|the)\s+([a-z_][a-z0-9_]*)\b", re.I)
#: words after "its / the" that name no field of a document
_NOT_FIELDS = frozenset({"own", "best", "next", "result", "results", "response", "answer", "data", "json", "output",
                         "value", "number", "text",
                         "document", "page", "api", "same", "first", "last", "whole", "model", "webhook", "file",
                         "body", "content", "contents", "list", "total", "one", "other", "new", "old", "latest"})


def _field_named(clause_text: str) -> str | None:
    """The field a clause names without saying "field": "multiply its price by 1.2" takes `price`."""
    for match in _FIELD_NOUN.finditer(clause_text):
        word = match.group(1).lower()
        if word not in _NOT_FIELDS:
            return word
    return None


_LIST_NAMED = re.compile(r"\b(?:an?|the|its)\s+['\"`]?([a-z_]\w*)['\"`]?\s+(?:array|list)\b"
                         # the last plural before ", each with" ("writes four outfits as JSON, each with": outfits)
                         r"|\b([a-z_]\w*s)\b(?=(?:\s+(?!\w{2,}s\b)[\w'-]+){0,4}\s*,\s+each\s+"
                         r"(?:with|has|having)\b)", re.I)
#: words before ", each with" that are no list: verbs ("returns this week's entries, each with ...") and the like
_NOT_LISTS = frozenset({"json", "items", "that", "this", "returns", "gives", "has", "contains", "includes", "lists",
                        "sends", "shows", "is", "was", "its", "us"})


def _list_named(request: str) -> str | None:
    """The field a request names as a list: "an 'attendees' array", "this week's entries, each with" -> entries."""
    for match in _LIST_NAMED.finditer(request):
        name = (match.group(1) or match.group(2)).lower()
        if name not in _NOT_FIELDS and name not in _NOT_LISTS:
            return name
    return None


#: "Check the tide height from the harbour API", "Call the attendance API for today's absences": what is fetched
_FETCHED = re.compile(
    r"\b(?:get|gets|fetch|fetches|pull|pulls|check|checks|look\s+up|looks\s+up|read|reads|grab|download|load|"
    r"retrieve|call|query|find|finds|find\s+out|what's|what\s+is|what\s+are)\s+(?:up\s+)?(?P<thing>(?:[\w'-]+\s+){1,5}?)(?:from|on|off|in|of|at|via|through|out\s+of)\s+"
    r"(?:the|our|my|their|a|an|this)\s+(?:[\w'-]+\s+){0,3}?(?:api|endpoint|service|server|feed)\b"
    r"|\b(?:api|endpoint|service|feed)\s+for\s+(?P<after>(?:[\w'-]+\s*){1,4})", re.I)
#: "Fetch the cycling club's members list": a fetch that names only what it fetches
_FETCHED_BARE = re.compile(r"^\W*(?:(?:and|then|first|please|now|so)\s+)*(?:fetch|retrieve|download|pull\s+down)\s+"
                           r"(?P<thing>(?:(?!(?:at|from|on|in|of|via|by|for|off)\b)[\w'-]+\s*){1,6})[.!]?$", re.I)
#: words of a fetched thing's phrase that name no field: determiners, time and order words, "JSON"
_NOT_THING = frozenset({"the", "a", "an", "my", "our", "their", "its", "this", "these", "that", "today's", "todays",
                        "current", "latest", "newest", "new", "top", "first", "last", "recent", "json", "data",
                        "list", "array", "document", "response", "answer", "details", "info", "information",
                        "whole", "full", "all", "some", "each", "every", "it", "them", "page", "up"})

#: head nouns of a fetched phrase that name the whole answer, not one field of it
_WHOLE_ANSWER = frozenset({"data", "json", "details", "info", "information", "stats", "statistics", "figures",
                           "numbers", "metrics", "summary", "report", "document", "response", "answer", "feed",
                           "results", "records", "everything", "it", "them"})


def _fetched_thing(clause_text: str) -> str | None:
    """The field named by what a clause fetches ("the tide height from the harbour API" -> `tide_height`): a JSON
    answer read for one thing is read through that field (a guess: missing, it gives null)."""
    match = _FETCHED.search(clause_text) or _FETCHED_BARE.search(clause_text)
    if match is None:
        return None
    phrase = match.group("thing") or match.group("after") or ""
    phrase = re.split(r"[,.;]|\b(?:and|to|then|so|which|that|with|using)\b", phrase)[0]
    words = [w.lower() for w in re.findall(r"[\w'-]+", phrase)]
    owners = [number for number, word in enumerate(words) if word.endswith("'s")]
    if owners:  # "the cycling club's members list": what is fetched comes after its owner
        words = words[owners[-1] + 1:]
    if words and words[-1] in _WHOLE_ANSWER:
        return None  # "the product data", "the race stats": the whole answer is what is read
    words = [w for w in words if not w.endswith("'s") and w not in _NOT_THING and not w.isdigit()]
    if not words or words[-1] in _NOT_FIELDS:
        return None
    name = "_".join(words[-2:])
    return name if re.fullmatch(r"[a-z][a-z0-9_]*", name) else None


def _fits(produced: str, accepted: str) -> bool:
    return produced in _DIRECT[accepted]


def _serves(produced: str, accepted: str) -> bool:
    """Whether an output of kind `produced` can feed an input of kind `accepted`, directly or read through a
    `json.extract` (`_COERCE`)."""
    return _fits(produced, accepted) or (produced, accepted) in _COERCE


# -- choosing steps ------------------------------------------------------------------------------

#: "Take my podcast transcript", "Using the product sheet": a clause that only names its input
_INPUT_ONLY = re.compile(r"^(?:(?:first|so|ok|okay)\s*,?\s+)?(?:take|use|using|given|start(?:ing)?\s+(?:with|from)|"
                         r"here(?:'s|\s+is|\s+are))\s+(?:my|our|the|this|these|that|those|a|an|some|your)\s+"
                         r"[\w'-]+(?:\s+[\w'-]+){0,5}$", re.I)
#: "I host a podcast", "We run a bakery": a statement about the user, not a request
_STATEMENT = re.compile(r"^(?:i|we)\s+(?!(?:need|want|would|will|must|should|have|wish|can|could|please|am|are|also|"
                        r"just|only|really|then)\b)[a-z]+\b(?!\s+(?:to|you|me)\b)", re.I)
#: a verb after the first word: "use the model to write a poem" asks for a step
_ACTION_INSIDE = re.compile(r"\b(?:to|and)\s+\w+|\b(?:write|make|create|generate|turn|render|build|resize|speak|read|"
                            r"save|send|post|translate|summari[sz]e|fetch|draw|narrate)\b", re.I)
#: "collect the results", "return them": what the steps made is the answer, no step of its own
_RESULTS_ONLY = re.compile(r"^(?:(?:and|then|finally)\s+)*(?:collect|gather|return|output|give\s+me|hand\s+me|keep|"
                           r"show\s+me)\s+(?:all\s+)?(?:of\s+)?(?:the\s+|those\s+)?(?:results?|answers?|outputs?|them|everything)"
                           r"(?:\s+(?:back|in\s+a\s+list|as\s+a\s+list))?$", re.I)


def is_context(text: str, first: bool = False) -> bool:
    """Whether a clause only sets the scene ("I have a photo of ...", "There's an API that ..."), only asks for
    what the other steps make ("collect the results") or, as the request's first clause, only names its input
    ("Take my podcast transcript"; later, "take the items list" picks a part of what was made)."""
    if _CONTEXT.match(text) or _RESULTS_ONLY.match(text):
        return True
    if not first:
        return False
    if _STATEMENT.match(text):  # "I host a gardening podcast": about the user, before anything is asked
        return not _ACTION_INSIDE.search(" ".join(text.split()[2:]))
    return bool(_INPUT_ONLY.match(text)) and not _ACTION_INSIDE.search(text.split(None, 1)[-1])


def _lead_words(text: str, position: int) -> int:
    """How many words come before `position`, not counting a lead-in such as "then have the model"."""
    start = _LEAD_IN.match(text)
    offset = start.end() if start else 0
    return len(text[offset:position].split()) if position >= offset else 0


#: a definite article or possessive just before a cue: the words name something already there ("the summary")
_DEFINITE_BEFORE = re.compile(r"\b(?:the|this|that|these|those|my|our|its|their|your)\s+$", re.I)
#: groups whose recipes are chosen only where their cues match: a condition is never guessed from meaning alone
_CUE_ONLY_GROUPS = frozenset({"gate"})


def _clause_options(clause: Clause, similarity: Mapping[str, float], recipes: Sequence[Recipe],
                    leading: bool = False) -> list[list[Step]]:
    """The alternatives for one clause: each a list of steps (one per capability group), best first. A
    `leading` clause comes before any that asks for a step."""
    if is_context(clause.text, first=leading):
        return [[]]
    scored: list[Step] = []
    for recipe in recipes:
        hits = recipe.cue_hits(clause.text)
        if hits:
            step = Step(recipe, clause.index, score=similarity.get(recipe.name, 0.0) + CUE_WEIGHT, position=hits[0])
            step.lead = _lead_words(clause.text, hits[0]) <= LEAD_WORDS
            scored.append(step)
    if not scored:
        if _PURPOSE.match(clause.text):
            return [[]]
        best = max((r for r in recipes if r.group not in _CUE_ONLY_GROUPS), key=lambda r: similarity.get(r.name, 0.0),
                   default=None)
        if best is None or similarity.get(best.name, 0.0) < SIMILARITY_FLOOR:
            return [[]]
        return [[Step(best, clause.index, score=similarity[best.name], lead=True)]]
    earliest = min(step.position for step in scored)
    turn = _TURN_INTO.match(clause.text)
    per_item = bool(_PER_ITEM.search(clause.text))
    for step in scored:
        step.lead = step.lead and step.position == earliest
        if turn is not None:  # "turn the summary into speech": the target, within a few words of "into"
            gap = len(clause.text[turn.end():step.position].split())
            step.lead = step.position >= turn.end() and gap <= LEAD_WORDS + 1
        if per_item and "control.map" in step.recipe.node_types:
            step.score += PER_ITEM_WEIGHT
    by_group: dict[str, list[Step]] = {}
    # "for each review, classify the sentiment": where the words ask for the work per item, a recipe of the
    # group that maps over the items comes before the one that works on a single text, whatever the cosines
    # and within a group, a recipe whose cue only names what the step works on ("translate the summary into
    # Polish": the summary is there already) comes after the others
    mentioned = {id(step) for step in scored if step.position > earliest and _DEFINITE_BEFORE.search(
        clause.text[max(0, step.position - 12):step.position])}
    for step in sorted(scored, key=lambda s: (-(per_item and "control.map" in s.recipe.node_types),
                                              -s.recipe.precedence, id(s) in mentioned, -s.score)):
        by_group.setdefault(step.recipe.group, []).append(step)
    primary = [steps[0] for steps in by_group.values()]
    if _PER_ITEM_OF_LIST.search(clause.text) and not any("control.map" in step.recipe.node_types for step in scored):
        # "a priority for every ticket in my list": the model's work, once per item, though no per-item cue matched
        per_item_writer = next((r for r in recipes if r.name == "llm_per_item"), None)
        writer = next((step for step in primary if step.recipe.group == "write"), None)
        if per_item_writer is not None and writer is not None:
            primary = [Step(per_item_writer, clause.index, score=writer.score, position=writer.position,
                            lead=writer.lead) if step is writer else step for step in primary]
            return [sorted(primary, key=lambda s: (_FLOW.get(s.recipe.group, 2), s.position))]
    options = [primary]
    # the runner-up of the clause's strongest group, as an alternative
    strongest = max(by_group.values(), key=lambda steps: steps[0].score)
    for runner_up in strongest[1:ALTERNATIVES]:
        if per_item and "control.map" in strongest[0].recipe.node_types and \
                "control.map" not in runner_up.recipe.node_types:
            continue
        if id(runner_up) in mentioned:
            continue  # a cue on what the step works on ("the summary") is no alternative to its verb
        if strongest[0].score - runner_up.score < 0.12:
            options.append([runner_up if s is strongest[0] else s for s in primary])
    return [sorted(option, key=lambda s: (_FLOW.get(s.recipe.group, 2), s.position)) for option in options]


def _type_fit(steps: Sequence[Step]) -> float:
    """How many required wired inputs an earlier step of the sequence can feed, less half of those of a
    structured kind (a JSON payload, a list, media) that nothing feeds: "post a JSON message to my webhook"
    wraps a text in an object rather than waiting for an object nobody makes."""
    made: list[str] = []
    fed = 0.0
    for step in steps:
        for kind in step.recipe.wire.values():
            if kind.endswith("?"):
                continue
            if any(_serves(p, kind) for p in made):
                fed += 1
            elif kind not in ("any", "text", "all"):
                fed -= UNFED_WEIGHT
        made.append(step.recipe.produces)
    return fed


def choose_steps(clauses: Sequence[Clause], similarity: Sequence[Mapping[str, float]],
                 recipes: Sequence[Recipe], request: str = "") -> list[Step]:
    """One or more recipes per clause, chosen by a beam search over the clauses' alternatives."""
    beam: list[tuple[float, list[Step]]] = [(0.0, [])]
    leading = True
    for clause, similar in zip(clauses, similarity, strict=True):
        options = _clause_options(clause, similar, recipes, leading)
        leading = leading and options == [[]]
        grown = []
        for base_score, steps in beam:
            for option in options:
                sequence = steps + option
                score = base_score + sum(s.score for s in option)
                grown.append((score, sequence))
        grown.sort(key=lambda item: -(item[0] + TYPE_FIT_WEIGHT * _type_fit(item[1])))
        beam = grown[:BEAM_WIDTH]
    best = max(beam, key=lambda item: item[0] + TYPE_FIT_WEIGHT * _type_fit(item[1]))
    steps = without_headline(without_references(without_repeats(best[1], clauses), clauses), clauses, request)
    steps = editing_the_users_picture(steps, clauses, recipes)
    final = lists_where_items_are_needed(in_data_flow_order(without_covered(steps, clauses), clauses), clauses,
                                         recipes)
    final = speech_where_audio_is_needed(final, clauses, recipes)
    served = {step.clause for step in final}
    for dropped in best[1]:
        if dropped.clause in served or any(dropped is step for step in final):
            continue
        earlier = [s for s in final if s.clause < dropped.clause and s.recipe.group == dropped.recipe.group]
        if earlier:
            earlier[-1].also.append(dropped.clause)
            served.add(dropped.clause)
    return final


#: "a card per day", "one slide for each step": what one item of the list is
_PER_UNIT = re.compile(r"\b(?:per|for\s+(?:each|every))\s+([a-z]+)\b", re.I)
#: a clause that has the model write something out of which a list is made ("plan a brewing day, one card per step")
_WRITES_A_PLAN = re.compile(r"^(?:(?:and|then|first|please|now|so)\s+)*(?:plan|outline|brainstorm|come up with|suggest|"
                            r"write|draft|list)\b(?!.*\b(?:my|our|your|the|this|a)\s+(?:[\w-]+\s+){0,2}?list\b)",
                            re.I)


def lists_where_items_are_needed(steps: Sequence[Step], clauses: Sequence[Clause],
                                 recipes: Sequence[Recipe]) -> list[Step]:
    """Where a step works on each item of a list ("make a card per day") and no earlier step makes one, the model
    writes the list: the text the model writes before it becomes a list ("Plan a 3-day Kyoto itinerary, make a card
    per day"), or, where the step's own clause has the model write ("Plan a brewing day, one card per step"), a list
    is written first."""
    lister = next((r for r in recipes if r.name == "list_items"), None)
    if lister is None:
        return list(steps)
    changed = list(steps)
    for number, step in enumerate(list(changed)):
        if "texts" not in _needs(step) or _feeds(changed[:number], "texts", clauses):
            continue
        writer = next((s for s in reversed(changed[:number]) if s.recipe.name == "write_text"), None)
        served = {s.clause for s in changed if s.clause != step.clause}
        # else the clause (this one, or an earlier one no step serves) that asks the model for a plan
        planned = next((c for c in reversed(clauses[:step.clause + 1])
                        if c.index not in served and _WRITES_A_PLAN.search(c.text)), None)
        asked = clauses[writer.clause] if writer is not None else planned
        if asked is None:
            continue
        unit = _PER_UNIT.search(clauses[step.clause].text)
        # what the list is of: one line per step of what the clause asks to plan
        wanted: dict[str, Any] = {"things": f"short lines, one per {unit.group(1) if unit else 'item'}, for this "
                                            f"request: '{asked.text}',"}
        sized = re.search(rf"\b(\w+)[- ]{unit.group(1)}s?\b", asked.text, re.I) if unit else None
        if sized and (count := number_of(sized.group(1))) is not None and 0 < count <= 16:
            wanted["count"] = count  # "a four-stop walking tour, a card per stop": four lines
        if writer is not None:
            changed[changed.index(writer)] = Step(lister, writer.clause, {**writer.slots, **wanted}, writer.score,
                                                  writer.position, writer.lead, list(writer.also))
        else:
            changed.insert(number, Step(lister, asked.index, dict(wanted), score=step.score, lead=True))
    return changed


#: "my podcast episode", "our voice memo": a sound of the user's, not one to make
_USERS_SOUND = re.compile(r"\b(?:my|our|this|the attached)\s+(?:[\w-]+\s+){0,2}?(?:episode|recording|audio|podcast|"
                          r"memo|track|song|voicemail|interview|clip|file)s?\b", re.I)


def speech_where_audio_is_needed(steps: Sequence[Step], clauses: Sequence[Clause],
                                 recipes: Sequence[Recipe]) -> list[Step]:
    """Where a step needs a sound no step makes and a text was written ("Write a 20-second radio ad and time
    it"), the text is spoken first: what is timed is the ad read aloud."""
    speaker = next((r for r in recipes if r.name == "speak"), None)
    changed = list(steps)
    if speaker is None:
        return changed
    for step in list(changed):
        if "audio" not in _needs(step) or _feeds(changed, "audio", clauses):
            continue
        writer = next((s for s in reversed(changed) if s is not step and s.clause <= step.clause
                       and _feeds([s], "text", clauses)), None)
        if writer is None or _USERS_SOUND.search(clauses[step.clause].text):
            continue
        changed.remove(step)
        after = changed.index(writer) + 1
        changed[after:after] = [Step(speaker, step.clause, score=step.score), step]
    return changed


def _makes(step: Step, clauses: Sequence[Clause]) -> set[str]:
    """The kinds a step makes: its recipe's, and several texts when it fans out over several values."""
    fan = _FAN_SLOTS.get(step.recipe.fan_out or "")
    values = clauses[step.clause].slots.get(fan) if fan else None
    several = isinstance(values, list) and len(values) > 1 and step.recipe.produces == "text"
    return {step.recipe.produces, "texts"} if several else {step.recipe.produces}


def _feeds(makers: Sequence[Step], kind: str, clauses: Sequence[Clause]) -> bool:
    return any(_serves(made, kind) for s in makers for made in _makes(s, clauses))


def _needs(step: Step) -> list[str]:
    return [kind for kind in step.recipe.wire.values() if not kind.endswith("?")]


def in_data_flow_order(steps: Sequence[Step], clauses: Sequence[Clause]) -> list[Step]:
    """Steps moved so that what a step needs is made before it: "make a video of the captions, one card per
    caption" makes the cards first; "put a caption on my photo and make it 1280 wide" resizes first. A later
    step moves only when it needs nothing that the steps it jumps over make."""
    ordered = list(steps)
    number, moves = 0, 0
    while number < len(ordered) and moves <= 2 * len(ordered):
        step = ordered[number]
        unfed = [kind for kind in _needs(step) if not _feeds(ordered[:number], kind, clauses)]
        moved = False
        for kind in unfed:
            for later in range(number + 1, len(ordered)):
                maker = ordered[later]
                if not _serves(maker.recipe.produces, kind):
                    continue
                if any(_feeds(ordered[number:later], need, clauses) for need in _needs(maker)):
                    break
                ordered.insert(number, ordered.pop(later))
                moved, moves = True, moves + 1
                break
            if moved:
                break
            # the maker cannot come earlier: the step goes after it ("a video script as JSON, ... a card for each
            # sentence": the slideshow named first waits for the cards), unless a step in between takes its output
            sink = _sink_to(ordered, number, kind, clauses) if kind in _MEDIA else None
            if sink is not None:
                ordered.insert(sink, ordered.pop(number))
                moved, moves = True, moves + 1
                break
        if not moved:
            number += 1
    # a video waits for a voice named after it ("... render the video, with a voice-over of the lines")
    for step in [s for s in ordered if "audio?" in s.recipe.wire.values()]:
        number = ordered.index(step)
        if not _feeds(ordered[:number], "audio", clauses):
            sink = _sink_to(ordered, number, "audio", clauses)
            if sink is not None:
                ordered.insert(sink, ordered.pop(number))
    return ordered


#: the file extension a saved output of each kind gets when the request names no file
_EXTENSIONS = {"image": "png", "audio": "wav", "video": "mp4", "json": "json"}
#: kinds a step waits for rather than starting from a graph input of its own
_MEDIA = frozenset({"image", "images", "audio", "video", "videos"})


def _sink_to(ordered: Sequence[Step], number: int, kind: str, clauses: Sequence[Clause]) -> int | None:
    """The place after the first later maker of `kind` that step `number` may move to: no step it passes takes
    what it makes."""
    step = ordered[number]
    for later in range(number + 1, len(ordered)):
        passed = ordered[later]
        needs = [need.rstrip("?") for need in passed.recipe.wire.values()]
        if any(_serves(step.recipe.produces, need) for need in needs if need not in ("any", "all")):
            return None
        if any(_serves(made, kind) for made in _makes(passed, clauses)):
            return later
    return None


#: one picture of the user's, named in the clause that says what to make of it
_USERS_PICTURE = re.compile(r"\b(?:my|our)\s+(?:[\w-]+\s+){0,2}?(?:photo|picture|image|sketch|drawing|shot|selfie|"
                            r"portrait|snapshot|pic|headshot|doodle)\b(?!s)", re.I)
#: "a new picture like my sketch", "from scratch": a picture made new, whatever it is like
_NEW_PICTURE = re.compile(r"\b(?:a|an)\s+(?:new|fresh|different|another)\s+(?:[\w-]+\s+)?(?:photo|picture|image|"
                          r"illustration|drawing|render)\b"
                          r"|\b(?:from scratch|inspired by|similar to|like my|based on my)\b", re.I)
_HAS_PICTURE = re.compile(r"^(?:i|we|here|there|this)\b.*"
                          r"\b(?:photo|picture|image|shot|selfie|sketch|drawing|portrait|snapshot)\b(?!s)", re.I)


def editing_the_users_picture(steps: Sequence[Step], clauses: Sequence[Clause],
                              recipes: Sequence[Recipe]) -> list[Step]:
    """When the request starts from one picture of the user's ("I have a photo of my living room. Using the
    diffusion model, show me ..."), what the diffusion model makes is an edit of it, not a new picture: a
    generation becomes an edit, and is dropped where its clause already edits."""
    from_context = any(is_context(c.text) and _HAS_PICTURE.match(c.text) for c in clauses)
    # "Turn my dress sketch into a realistic photo": the clause itself starts from the user's picture
    own = {c.index for c in clauses if _USERS_PICTURE.search(c.text) and not _NEW_PICTURE.search(c.text)}
    edit = next((r for r in recipes if r.name == "edit_image"), None)
    if edit is None or not (from_context or own):
        return list(steps)
    changed: list[Step] = []
    for step in steps:
        if step.recipe.name != "generate_image" or not (from_context or step.clause in own):
            changed.append(step)
        elif not any(s.recipe is edit and s.clause == step.clause for s in steps):
            changed.append(Step(edit, step.clause, dict(step.slots), step.score, step.position, step.lead))
    return changed


def without_covered(steps: Sequence[Step], clauses: Sequence[Clause]) -> list[Step]:
    """A plain rewrite right after a critique-and-rewrite ("critique it, then rewrite it") is that step's
    own rewrite, not another one."""
    kept: list[Step] = []
    for step in steps:
        if (kept and kept[-1].recipe.name == "critique_and_rewrite" and step.recipe.name == "rewrite_tone"
                and not clauses[step.clause].slots.get("tone")):
            continue
        kept.append(step)
    return kept


_DEFINITE = re.compile(r"\b(?:the|that|this|these|those|its|their)\s+$", re.I)


def without_references(steps: Sequence[Step], clauses: Sequence[Clause]) -> list[Step]:
    """A step that a clause only names as something already made ("turn the digest into speech" after "write
    a digest", "save the summary") is no step of its own: dropped when it does not lead its clause, its cue
    follows "the / that / its", another step leads its clause, and an earlier step makes the same kind."""
    texts = {clause.index: clause.text for clause in clauses}
    kept: list[Step] = []
    for step in steps:
        before = texts.get(step.clause, "")[:step.position]
        if (not step.lead and _DEFINITE.search(before) and kept
                and any(s.lead and s.clause == step.clause for s in steps)
                and any(s.recipe.produces == step.recipe.produces and s.clause < step.clause for s in kept)):
            continue
        kept.append(step)
    return kept


_VERB_IT = re.compile(r"[\w-]+\s+(?:it|them|that)\b", re.I)
#: what comes before a word that names something already made: "the / its ..." (`_DEFINITE`) or "each / every"
_EACH_OF = re.compile(r"\b(?:each|every)\s+$|" + _DEFINITE.pattern, re.I)


def without_repeats(steps: Sequence[Step], clauses: Sequence[Clause] = ()) -> list[Step]:
    """A recipe named in several clauses is one step: where a clause asks for it (its cue leads the clause),
    else at its last mention; an overview ("a narrated video ...") and a later mention ("the summary") name
    what another clause makes, and so does a later mention of what the first made ("write a storyboard of 4
    scenes, render each scene": the scenes are the storyboard's)."""
    texts = {clause.index: clause.text for clause in clauses}
    kept: list[Step] = []
    for step in steps:
        # "The orders endpoint returns ... Fetch it, ...": "it" is what an earlier clause already fetches
        if (step.recipe.group == "fetch" and _VERB_IT.match(texts.get(step.clause, "")[step.position:])
                and any(k.recipe.group == step.recipe.group and k.clause < step.clause for k in kept)):
            continue
        same = [s for s in steps if s.recipe.name == step.recipe.name]
        if (step is not same[0] and same[0].lead and step.clause != same[0].clause
                and _EACH_OF.search(texts.get(step.clause, "")[:step.position])):
            continue
        if len(same) == 1 or step.lead or (not any(s.lead for s in same) and step is same[-1]):
            kept.append(step)
    return kept


def without_headline(steps: Sequence[Step], clauses: Sequence[Clause], request: str) -> list[Step]:
    """A first sentence that names the whole product ("Make a poster for an event. ... generate a matching
    picture ...") is a headline: its single step is dropped when a later clause leads with the same recipe."""
    if len(clauses) < 3:
        return list(steps)
    first = clauses[0]
    end = first.start + len(first.text)
    own = [s for s in steps if s.clause == first.index]
    if len(own) != 1 or request[end:end + 1] not in (".", ":"):
        return list(steps)
    if any(s.recipe.name == own[0].recipe.name and s.lead and s.clause > first.index for s in steps):
        return [s for s in steps if s is not own[0]]
    return list(steps)


#: words that take in every copy of what the step before made
_SEVERAL = re.compile(r"\b(?:them|both|each|all of|compar\w*|differences?|versus|vs)\b", re.I)
#: a fetch from several sources, each its own request
_SEVERAL_SOURCES = re.compile(
    r"\b(two|three|both)\s+(?:of\s+)?(?:(?:our|the|my|different|competing|separate|rival)\s+)*(?:[\w-]+\s+){0,2}?"
    r"(?:apis|pages|sites|websites|services|endpoints|listings|listing pages|feeds|urls|addresses|houses|flats|"
    r"apartments|products|shops|stores|companies|competitors|providers|vendors)\b"
    r"|\b(both)\s+(?:our|the|my)\s+[\w\s-]{1,40}?\s+and\s+(?:our|the|my)\s+", re.I)


# -- slots ---------------------------------------------------------------------------------------

_THRESHOLD = re.compile(r"\b(over|above|more than|greater than|higher than|exceeds?|beyond|under|below|less than|"
                        r"fewer than|lower than|at least|at most)\s+-?\$?(\d+(?:\.\d+)?)", re.I)
_OPERATORS = {"at least": ">=", "at most": "<=", "under": "<", "below": "<", "less than": "<", "fewer than": "<",
              "lower than": "<"}


def _threshold(clause_text: str) -> dict[str, Any]:
    """The comparison a clause names: "only if it's under 30" -> `< 30`; "if rain is likely" -> `>= 50` (per cent)."""
    found = _THRESHOLD.search(clause_text)
    if found is None:
        return {"threshold": 50.0, "op": ">="}
    return {"threshold": float(found.group(2)), "op": _OPERATORS.get(found.group(1).lower(), ">")}


def step_slots(recipe: Recipe, clause_text: str, read: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The slot values for one recipe in one clause: one dict per copy (a fan-out slot gives several)."""
    slots: dict[str, Any] = {}
    names = set(recipe.slots)
    if "instruction" in names:
        slots["instruction"] = clause_text.rstrip(".") + "."
    if "default" in names and recipe.name in ("generate_image",):
        slots["default"] = clause_text
    if "text" in read and "default" in names and recipe.name in ("title_card", "overlay_text", "write_text"):
        slots["default"] = read["text"]
    for name in ("width", "height", "count", "filename", "at", "method", "position"):
        if name in read and name in names:
            slots[name] = read[name]
    if "count" in read and "count" not in names and recipe.name == "generate_image":
        slots["count"] = read["count"]
    if recipe.name == "list_items":
        noun = re.search(r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten)\s+((?:[a-z-]+\s+){0,2}?"
                         r"[a-z]+s)\b", clause_text, re.I)
        if noun:
            slots["things"] = noun.group(1)
    if recipe.name == "field_per_item" and "field" not in read:
        # "pull the hours out of every entry": hours; "I just need the emails": each entry's email
        named = re.search(r"\bthe\s+([a-z_][\w-]*)\s+(?:out of|from|of|for|in)\s+(?:each|every|all)\b", clause_text,
                          re.I)
        wanted = re.search(r"\b(?:just|only)\s+(?:need|want)\s+the\s+([a-z_][\w-]*?)s\b", clause_text, re.I)
        if named or wanted:
            slots["field"] = (named or wanted).group(1).lower()  # type: ignore[union-attr]
    if recipe.name == "music_bed":
        if "seconds" in read:
            slots["seconds"] = float(read["seconds"])
        if re.search(r"\b(upbeat|happy|cheerful|bright|energetic|lively|fun)\b", clause_text, re.I):
            slots["mood"] = "bright"
    if recipe.name == "slideshow" and "seconds" in read:
        slots["durations"] = [round(float(read["seconds"]) / max(int(read.get("count", 1)), 1), 2)]
    if recipe.name == "edit_image" and "style" not in read:
        target = re.search(r"\b(?:into|as|like)\s+(.+)$", clause_text, re.I)
        # "make the photo black and white": the clause itself says what the picture should become
        slots["style"] = target.group(1) if target else clause_text
    if recipe.name == "only_if":
        slots.update(_threshold(clause_text))
    if recipe.name == "classify":
        labels = re.search(r"\bas\s+([\w-]+(?:,\s*[\w-]+)*,?\s+or\s+[\w-]+)", clause_text, re.I)
        if labels:
            slots["labels"] = labels.group(1).replace(" or ", ", ")
    if recipe.group == "fetch" and (sources := _SEVERAL_SOURCES.search(clause_text)):
        # "the prices of two houses from the listings API", "both our booking site and our payments API"
        return [dict(slots) for _ in range(number_of(sources.group(1) or "two") or 2)]
    fan = recipe.fan_out
    values = read.get(_FAN_SLOTS.get(fan or "", ""), None) if fan else None
    if fan == "style" and values:
        values = [f"the picture in {value} style" for value in values]
    if not values:
        return [slots]
    copies = []
    for value in values:
        copy = dict(slots)
        if fan == "size":
            copy["width"], copy["height"] = value
        else:
            copy[fan or ""] = value
        copies.append(copy)
    return copies


# -- assembling ----------------------------------------------------------------------------------

@dataclass
class _Made:
    """An output of an assembled step that later steps may take."""

    kind: str
    ref: dict[str, str]
    family: int
    field: str | None = None
    taken: int = 0
    #: what a fetched JSON answer was fetched for (`_fetched_thing`): its consumers read that field
    thing: str | None = None
    #: the recipe's `also`: (other output of the same node, the input name it feeds)
    also: tuple[tuple[str, str], ...] = ()
    #: a list read out of the model's JSON answer that the clause asked for "as JSON": the answer, given back
    #: whole when no step takes the list
    document: dict[str, str] | None = None


class _Assembler:
    def __init__(self, catalog: NodeCatalog, name: str) -> None:
        self.catalog = catalog
        self.document: dict[str, Any] = {"format_version": 1, "name": name, "inputs": {}, "nodes": {},
                                         "outputs": {}}
        self.made: list[_Made] = []
        self.pipeline: str | None = None
        #: the request's words, for names it gives to fields ("an 'attendees' array")
        self.request = ""
        #: per step (family), the graph input each of its recipe inputs became
        self.family_inputs: dict[int, dict[str, str]] = {}

    def _node_id(self, wanted: str) -> str:
        node_id, number = wanted, 2
        while node_id in self.document["nodes"]:
            node_id, number = f"{wanted}_{number}", number + 1
        return node_id

    def _input_name(self, wanted: str, declared: Mapping[str, Any], family: int) -> str:
        inputs = self.document["inputs"]
        if wanted == "model" and wanted in inputs:
            return wanted  # one diffusion model for the whole graph
        shared = self.family_inputs.setdefault(family, {})
        if wanted in shared and wanted not in ("url", "webhook_url"):
            return shared[wanted]  # the copies of a fanned-out step read the same value
        name, number = wanted, 2
        while name in inputs:
            name, number = f"{wanted}_{number}", number + 1
        inputs[name] = dict(declared)
        shared[wanted] = name
        return name

    def _output_type(self, ref: Mapping[str, str]) -> PortType | None:
        definition = self.catalog.find(self.document["nodes"][ref["node"]]["type"])
        if definition is None:
            return None
        return next((p.type for p in definition.spec.outputs if p.name == ref["output"]), None)

    def _siblings(self, ref: Mapping[str, str]) -> list[_Made]:
        """The other untaken outputs of the step copies that made `ref` (one per source, language, size)."""
        made = next((m for m in self.made if m.ref == ref), None)
        if made is None:
            return []
        return [m for m in self.made if m.family == made.family and m is not made and m.kind == made.kind
                and m.taken == 0]

    def _connects(self, ref: Mapping[str, str], targets: Sequence[PortType]) -> bool:
        """Whether the output `ref` may feed every port in `targets` (the ports a wired input reaches)."""
        source = self._output_type(ref)
        return source is None or all(bool(can_connect(source, target)) for target in targets)

    def _source_for(self, accepted: str, family: int, path_field: str | None,
                    targets: Sequence[PortType] = (), clause_text: str = "") -> dict[str, str] | None:
        optional = accepted.endswith("?")
        kind = accepted.rstrip("?")
        candidates = [m for m in reversed(self.made) if m.family != family]
        if kind in ("any", "all") and _STATUS_CODE.search(clause_text):
            # "let the front desk know the status code": the code the request answered with, not its body
            made = next((m for m in candidates if self.document["nodes"][m.ref["node"]]["type"] == "http.request"),
                        None)
            if made is not None:
                made.taken += 1
                return {"node": made.ref["node"], "output": "status"}
        groups = [candidates]
        # "save the script": of the outputs that fit, the kind the clause names first ("save it": the latest)
        if kind in ("all", "any") and not re.search(r"\b(it|them|that|this)\b", clause_text, re.I):
            words = re.sub(r"[\w-]+\.\w+", " ", clause_text)  # a file name names no kind
            named = {made for pattern, kinds in _NAMED_KINDS for made in kinds if pattern.search(words)}
            groups = [[m for m in candidates if m.kind in named], candidates]
        for group in groups:
            for fresh_only in (True, False):
                for made in group:
                    if ((not fresh_only or made.taken == 0) and _fits(made.kind, kind)
                            and self._connects(made.ref, targets)):
                        made.taken += 1
                        if made.thing and made.kind == "json" and kind in ("any", "all") and made.taken == 1:
                            # "Get the top story from the news API and write tweets about it": the story, not
                            # the whole answer
                            return self._extract(made.thing, made.ref, path_field or made.thing, missing_ok=True)
                        return made.ref
        if kind == "json" and targets and all(str(t).startswith("List[") for t in targets):
            # "each entry has an email": the list is a field of the document an API gave back
            for made in candidates:
                if made.kind == "json":
                    made.taken += 1
                    return self._extract("items", made.ref, made.field or self._array_of(made.ref)
                                         or _list_named(self.request) or made.thing or "items")
        if optional:
            return None
        if kind == "images":  # lines of text become pictures as one title card each
            for made in candidates:
                if made.kind in ("texts", "json"):
                    made.taken += 1
                    items = dict(made.ref)
                    if made.kind == "json":
                        items = self._extract("items", items, made.field or path_field or self._array_of(made.ref)
                                              or "items")
                    cards = self._node_id("cards")
                    self.document["nodes"][cards] = {"type": "control.map", "inputs": {
                        "node": "image.title_card", "items": items, "item_input": "text"}}
                    return {"node": cards, "output": "results"}
        # an output no step has taken yet first: two fetches give two extractions, not one twice
        for made in sorted(candidates, key=lambda m: m.taken > 0):
            path = _COERCE.get((made.kind, kind))
            if path is not None:
                made.taken += 1
                # a guessed field name gives null, not a failed run
                value = self._extract(
                    "first" if path == "0" else "items", made.ref,
                    path or made.field or path_field
                    or (_field_named(clause_text) if kind in ("number", "text") else None) or made.thing
                    or ((self._array_of(made.ref) or _list_named(self.request) or "items") if kind == "texts"
                        else "value"),
                    missing_ok=not path)
                field = _PLURAL_FIELD.search(clause_text)
                if kind == "texts" and field and any(str(t) in ("List[Float]", "List[Int]") for t in targets):
                    # "add all the amounts up": the amount of each entry of the list, not the entries
                    amounts = self._node_id(field.group(1).lower() + "s")
                    self.document["nodes"][amounts] = {"type": "control.map", "inputs": {
                        "node": "json.extract", "items": value, "item_input": "data",
                        "inputs": {"path": field.group(1).lower()}}}
                    return {"node": amounts, "output": "results"}
                if kind == "text" and made.field and not path:
                    # a storyboard's captions read aloud or written about: the lines as one text
                    return self._join(value, " ")
                return value
        if kind == "text" and targets:
            # "make a card per day and narrate it": the lines the model listed, read as one text
            made = next((m for m in sorted(candidates, key=lambda m: m.taken > 0) if m.kind == "texts"), None)
            if made is not None:
                made.taken += 1
                return self._join(made.ref, " ")
        return None

    def _each_item(self, recipe: Recipe, sub: Mapping[str, Any], family: int,
                   clause_text: str) -> tuple[dict[str, Any], dict[str, str] | None] | None:
        """A picture step done to each of several (its graph with the step's node in a `control.map`, and the
        list it maps over: an earlier step's output, or None for the user's pictures), or None when it is done
        once. "Resize all the photos to 1200x800 and put the club name at the bottom of each": two maps, the
        second over the first's results. "Generate one picture per scene": the pictures of a list of prompts."""
        plain = [key for key in recipe.wire if "." not in key]
        if len(plain) < 1 or recipe.produces not in ("image", "images"):
            return None
        key = plain[0]
        if recipe.wire[key] == "image" and len(sub["nodes"]) == 1:
            made = next((m for m in reversed(self.made) if m.family != family and m.taken == 0
                         and m.kind in ("image", "images")), None)
            if made is None:
                if _SEVERAL_PICTURES.search(self.request) and _TO_EACH.search(self.request):
                    return _map_each(sub, key, "Image", rename="photos"), None
                return None
            maker = self.document["nodes"][made.ref["node"]]
            batch = maker["inputs"].get("batch_size", 1)
            several = maker["type"] == "control.map" or (
                isinstance(batch, int) and batch > 1 and bool(_TO_EACH.search(clause_text)))
            if made.kind != "images" or not several:
                return None
            made.taken += 1
            return _map_each(sub, key, "Image"), dict(made.ref)
        if recipe.wire[key] == "text" and _ONE_PER.search(clause_text) and any(
                m.kind in ("texts", "json") and m.taken == 0 and m.family != family for m in self.made):
            source = self._source_for("texts", family, None, (), clause_text)
            if source is None:
                return None
            return self._flattened(_map_each(sub, key, "Text")), source
        return None

    def _flattened(self, sub: dict[str, Any]) -> dict[str, Any]:
        """A mapped picture step whose node makes a list of pictures per item (`image.generate`) given the first
        picture of each (a `json.extract` of item 0 per item)."""
        for name, output in list(sub["outputs"].items()):
            spec = sub["nodes"][output["node"]]
            definition = self.catalog.find(spec["inputs"]["node"]) if spec["type"] == "control.map" else None
            ported = next((p.type for p in definition.spec.outputs), None) if definition is not None else None
            if ported is not None and str(ported).startswith("List["):
                sub["nodes"]["pictures"] = {"type": "control.map", "inputs": {
                    "node": "json.extract", "items": dict(output), "item_input": "data", "inputs": {"path": "0"}}}
                sub["outputs"][name] = {"node": "pictures", "output": "results"}
        return sub

    def _fields_named(self, source: Mapping[str, str] | None, clause_text: str) -> list[tuple[str, dict[str, str]]]:
        """When `source` is an API's whole JSON answer and the clause names fields of it for the model ("from the
        product name", "give the model the rain probability and the temperature", "read the claim text"): a
        `json.extract` of each (a guessed name: missing, it gives null), by variable name."""
        spec = self.document["nodes"].get(source["node"], {}) if source else {}
        if source is None or spec.get("type") != "http.request" or source["output"] != "json":
            return []
        names: list[str] = []
        for lead in _FIELDS_LEAD.finditer(clause_text):  # "from the league API ... from the home score": the second
            at = lead.end()
            while (match := _FIELD_PHRASE.match(clause_text, at)) is not None:
                words = match.group(1).lower().split()
                if words[-1] in _NOT_FIELDS or words[-1] in _NOT_THING or words[-1] in _FIELD_STOP:
                    break
                names.append("_".join(words))
                at = match.end()
            if names:
                break
        return [(name, self._extract(name, source, name, missing_ok=True)) for name in dict.fromkeys(names)]

    def _shown_already(self, source: Mapping[str, str], node_inputs: Mapping[str, Any]) -> bool:
        """Whether another input of a node is made, one item each, out of the list `source` (cards of its lines)."""
        for value in node_inputs.values():
            maker = self.document["nodes"].get(value.get("node")) if isinstance(value, dict) else None
            if maker is not None and maker["type"] == "control.map" and maker["inputs"].get("items") == source:
                return True
        return False

    def _adapt_saving(self, sub: Mapping[str, Any], wired: dict[str, dict[str, str]], slots: Mapping[str, Any],
                      clause_text: str) -> None:
        """Fit a `file.save` of the recipe to what it saves: a list saved as text is one item per line, and a file
        the request names no name for gets the extension of its kind ("save the still": result.png)."""
        for spec in sub["nodes"].values():
            data = spec["inputs"].get("data") if spec["type"] == "file.save" else None
            key = data.get("input") if isinstance(data, dict) else None
            if key not in wired:
                continue
            if self._kind_of(wired[key]) == "texts" and re.search(
                    r"\.(?:txt|md)\b|\bone (?:per|a) line\b|\bline by line\b", clause_text, re.I):
                wired[key] = self._join(wired[key], "\n")
            if "filename" not in slots:
                spec["inputs"]["filename"] = f"result.{_EXTENSIONS.get(self._kind_of(wired[key]) or '', 'txt')}"

    def _join(self, items: Mapping[str, str], separator: str) -> dict[str, str]:
        """A new `text.join` node ("lines") joining the list output `items`; returns its text."""
        node_id = self._node_id("lines")
        self.document["nodes"][node_id] = {"type": "text.join", "inputs": {"items": dict(items),
                                                                          "separator": separator}}
        return {"node": node_id, "output": "text"}

    def _extract(self, wanted: str, data: Mapping[str, str], path: str, *, missing_ok: bool = False) -> dict[str, str]:
        """A new `json.extract` node (id after `wanted`) reading `path` of the output `data`; returns its value."""
        node_id = self._node_id(wanted)
        inputs: dict[str, Any] = {"data": dict(data), "path": path}
        if missing_ok:
            inputs["missing_ok"] = True
        self.document["nodes"][node_id] = {"type": "json.extract", "inputs": inputs}
        return {"node": node_id, "output": "value"}

    def _key_for(self, source: Mapping[str, str], key: str) -> str:
        """The key a JSON object gives the value of `source`: "status" for an HTTP status code, the field's name
        for a field read from JSON ("total_kg"), else the recipe's `key`."""
        spec = self.document["nodes"].get(source["node"], {})
        path = spec.get("inputs", {}).get("path")
        if spec.get("type") == "http.request" and source["output"] == "status":
            return "status"
        if spec.get("type") == "json.extract" and isinstance(path, str) and re.fullmatch(r"[A-Za-z_][\w.]*", path):
            return path.split(".")[-1]
        return key

    def _array_of(self, ref: Mapping[str, str]) -> str | None:
        """The one list field of the schema the model answered to, when `ref` is such an answer (a list the
        composer asked for is read by the name it gave it, not by a name guessed from the request)."""
        spec = self.document["nodes"].get(ref["node"], {})
        schema = spec.get("inputs", {}).get("schema") if spec.get("type") == "llm.structured" else None
        properties = schema.get("properties") if isinstance(schema, dict) else None
        arrays = [name for name, value in (properties or {}).items()
                  if isinstance(value, dict) and value.get("type") == "array"]
        return arrays[0] if len(arrays) == 1 else None

    def _kind_of(self, ref: Mapping[str, str]) -> str | None:
        """The kind of an earlier step's output (None for a node no step registered as its output)."""
        return next((made.kind for made in self.made if made.ref == ref), None)

    def _variable_name(self, source: Mapping[str, str], taken: set[str]) -> str:
        """A template variable named for what it holds: a page's body, an API's data, a JSON field's name,
        a draft, or the structured answer's own name ("verdict", "outline")."""
        node = self.document["nodes"].get(source["node"], {})
        kind = node.get("type")
        path = node.get("inputs", {}).get("path")
        wanted: str | None
        if kind == "json.extract" and isinstance(path, str) and re.fullmatch(r"[A-Za-z_]\w*", path.split(".")[-1]):
            wanted = path.split(".")[-1]
        else:
            wanted = _VARIABLE_NAMES.get((str(kind), source["output"]))
            if wanted is None and kind == "llm.structured":
                wanted = re.sub(r"_\d+$", "", source["node"])
        if not wanted or not re.fullmatch(r"[a-z_][a-z0-9_]*", wanted):
            wanted = "src"
        name, number = wanted, 2
        while name in taken:  # the second page a template reads is body_2
            name, number = f"{wanted}_{number}", number + 1
        return name

    def _targets(self, sub: Mapping[str, Any], name: str) -> list[PortType]:
        """The types of the ports that graph input `name` of a recipe's graph feeds."""
        found: list[PortType] = []
        for spec in sub["nodes"].values():
            definition = self.catalog.find(spec["type"])
            if definition is None:
                continue
            for port, value in spec.get("inputs", {}).items():
                if isinstance(value, dict) and value.get("input") == name:
                    declared = next((p.type for p in definition.spec.inputs if p.name == port), None)
                    declared = declared if declared is not None else definition.spec.variadic
                    if declared is not None:
                        found.append(declared)
        return found

    def add(self, step: Step, slots: Mapping[str, Any], family: int, clause_text: str) -> list[str]:
        """Add one copy of a step's recipe; returns its node ids."""
        recipe = step.recipe
        sub = recipe.graph(self.catalog, slots).to_json()
        wired: dict[str, dict[str, str]] = {}
        produces = recipe.produces
        each = self._each_item(recipe, sub, family, clause_text)
        if each is not None:  # the step is done once per item of a list
            sub, source = each
            produces = "images"
            if source is not None:
                wired[next(iter(k for k in recipe.wire if "." not in k))] = source
        renamed = {old: self._node_id(old) for old in sub["nodes"]}
        for key, kind in recipe.wire.items():
            if "." in key or key in wired:
                continue
            if recipe.wire_when.get(key) == "referenced" and not (
                    _BACK_WIRE.search(clause_text) or _PROMPT_WRITTEN.search(self.request)):
                continue
            field_slot = slots.get("field") if isinstance(slots.get("field"), str) else None
            source = self._source_for(kind, family, field_slot, self._targets(sub, key), clause_text)
            if source is not None:
                wired[key] = source
        self._adapt_saving(sub, wired, slots, clause_text)
        input_names: dict[str, str] = {}
        for name, declared in sub.get("inputs", {}).items():
            if name not in wired:
                input_names[name] = self._input_name(name, declared, family)
        added: list[str] = []
        for old, spec in sub["nodes"].items():
            if spec["type"] == "image.pipeline" and self.pipeline is not None:
                renamed[old] = self.pipeline
                continue
            inputs: dict[str, Any] = {}
            for port, value in spec.get("inputs", {}).items():
                if isinstance(value, dict) and set(value) == {"input"}:
                    source = wired.get(value["input"])
                    fields = self._fields_named(source, clause_text) if spec["type"] == "text.template" else []
                    if fields and isinstance(spec["inputs"].get("template"), str):
                        # "give the model the rain probability and the temperature": those fields of the answer
                        lines = "\n".join(f"{name.replace('_', ' ')}: {{{{ {name} }}}}" for name, _ in fields)
                        inputs["template"] = inputs.get("template", spec["inputs"]["template"]).replace(
                            "{{ " + port + " }}", lines)
                        inputs.update(dict(fields))
                        continue
                    if source is not None and spec["type"] == "text.template" and isinstance(
                            spec["inputs"].get("template"), str):
                        named = self._variable_name(source, (set(spec["inputs"]) - {port}) | set(inputs))
                        inputs["template"] = inputs.get("template", spec["inputs"]["template"]).replace(
                            "{{ " + port + " }}", "{{ " + named + " }}")
                        port = named
                        if _SEVERAL.search(clause_text):
                            # "compare them": the other copies of a step made once per source feed it too
                            for sibling in self._siblings(source):
                                other = self._variable_name(sibling.ref, (set(spec["inputs"]) - {port}) | set(inputs)
                                                            | {named})
                                inputs[other] = dict(sibling.ref)
                                # labelled, so that the model can tell the sources apart
                                inputs["template"] += "\n\nAnother source:\n{{ " + other + " }}"
                                sibling.taken += 1
                    elif source is not None and spec["type"] == "json.object":
                        port = self._key_for(source, port)
                    value = source or {"input": input_names[value["input"]]}
                elif isinstance(value, dict) and "node" in value and "output" in value and len(value) == 2:
                    value = {"node": renamed[value["node"]], "output": value["output"]}
                if port == "template" and "template" in inputs:
                    continue
                inputs[port] = value
            node = {**spec, "inputs": inputs}
            self.document["nodes"][renamed[old]] = node
            added.append(renamed[old])
            if spec["type"] == "image.pipeline":
                self.pipeline = renamed[old]
        for key, kind in recipe.wire.items():
            if "." not in key:
                continue
            old, port = key.split(".", 1)
            source = self._source_for(kind, family, None)
            if source is not None and old in renamed:
                node_inputs = self.document["nodes"][renamed[old]]["inputs"]
                if self._shown_already(source, node_inputs) and not re.search(
                        rf"\b{re.escape(port.rstrip('s'))}", clause_text, re.I):
                    # the slides are cards of these very lines: captions would show the same words twice
                    for made in self.made:
                        made.taken -= made.ref == source
                    continue
                node_inputs[port] = source
                maker = next((m for m in self.made if m.ref == source), None)
                for other, target in maker.also if maker else ():
                    if target in node_inputs:  # a voice-over's durations time the slides it narrates
                        node_inputs[target] = {"node": source["node"], "output": other}
        for output in sub.get("outputs", {}).values():
            ref = {"node": renamed[output["node"]], "output": output["output"]}
            given = {**recipe.slots, **slots}.get("field")  # a storyboard's list is its "captions"
            field_name = given if isinstance(given, str) else None
            thing = _fetched_thing(clause_text) if recipe.read_for_thing else None
            source = self.document["nodes"][ref["node"]]["inputs"].get("data")
            document = dict(source) if produces == "texts" and isinstance(source, dict) and "node" in source and \
                self.document["nodes"].get(source["node"], {}).get("type") == "llm.structured" and \
                _AS_JSON.search(clause_text) else None
            self.made.append(_Made(produces, ref, family, field_name, thing=thing,
                                   also=tuple(recipe.also.items()), document=document))
            break
        return added

    def graph(self) -> Graph:
        outputs: dict[str, dict[str, str]] = {}
        for made in self.made:
            if made.taken == 0 and made.thing and made.kind == "json":
                # "Check the tide height from the harbour API": the answer is that field, not the whole document
                ref = self._extract(made.thing, made.ref, made.thing, missing_ok=True)
                outputs[made.thing] = ref
            elif made.taken == 0 and made.document is not None:
                # "write three tweet options as JSON": the model's JSON answer, not the list read out of it
                del self.document["nodes"][made.ref["node"]]
                outputs[made.document["node"]] = made.document
            elif made.taken == 0:
                name = made.ref["node"]
                outputs[name] = dict(made.ref)
        if not outputs and self.made:
            outputs[self.made[-1].ref["node"]] = dict(self.made[-1].ref)
        self.document["outputs"] = outputs
        used = {v["input"] for spec in self.document["nodes"].values() for v in spec["inputs"].values()
                if isinstance(v, dict) and set(v) == {"input"}}
        self.document["inputs"] = {k: v for k, v in self.document["inputs"].items() if k in used}
        graph = Graph.from_json(self.document)
        for name in dependent_outputs(graph):  # absent when the branch is not taken
            graph.output(name, graph.outputs[name], optional=True)
        return graph


#: "the status code", "the HTTP status": what a request answered with, not its body
_STATUS_CODE = re.compile(r"\b(?:http\s+)?status(?:\s+code)?s?\b(?!\s+(?:field|key|property|page|report|update))",
                          re.I)
#: "all the amounts", "the weights": a field of every entry, named in the plural (singular in group 1)
_PLURAL_FIELD = re.compile(r"\b(?:all\s+)?(?:the|their|its)\s+([a-z]{3,}?)s\b(?!\s+(?:list|array|field))", re.I)
#: what comes before the fields of an API's answer that a model step is given
_FIELDS_LEAD = re.compile(r"\b(?:from|read(?:s|ing)?|give\s+(?:the\s+model|it)|using|based\s+on|about)\s+"
                          r"(?=the\s|its\s)", re.I)
#: one field named in a list of them: "the rain probability", "and the temperature", ", the price"
_FIELD_PHRASE = re.compile(r"(?:\s*,\s*|\s+and\s+|\s*)(?:the|its)\s+([a-z]+(?:\s+[a-z]+)?)\b"
                           r"(?=\s*(?:,|\band\b|$|\.|;|\s+(?:to|into|for|in|as|with)\b))", re.I)
#: nouns that name no field of an answer
_FIELD_STOP = frozenset({"model", "webhook", "api", "endpoint", "service", "forecast", "story", "page", "site", "card",
                         "picture", "image", "video", "audio", "file", "it", "them", "facts", "notes", "request"})
#: "... as JSON", "in JSON": the answer asked for is a JSON document
_AS_JSON = re.compile(r"\b(?:as|in|into|to)\s+(?:a\s+)?json\b", re.I)
#: a picture step is done to each of the user's pictures when the request names several and each of them
_SEVERAL_PICTURES = re.compile(r"\b(?:photos|pictures|images|pics|shots|screenshots|headshots|scans|snapshots|"
                               r"selfies|renders)\b", re.I)
_TO_EACH = re.compile(r"\b(?:each|every|all|them)\b", re.I)
#: "one picture per scene", "a card for each line", "for every outfit": a step made once per item of a list
_ONE_PER = re.compile(r"\b(?:one|a|an)\s+(?:[\w-]+\s+){0,2}?(?:per|for (?:each|every))\b|\bfor (?:each|every)\b|"
                      r"\beach (?:of them|one)\b", re.I)


def _map_each(sub: Mapping[str, Any], key: str, item_type: str, rename: str | None = None) -> dict[str, Any]:
    """`sub` (a recipe's graph as JSON) with the node that takes graph input `key` run once per item of a list
    (`control.map`, literal inputs kept for each item, links passed along); the input becomes a list of
    `item_type`, named `rename` when given."""
    nodes = dict(sub["nodes"])
    node_id, spec = next((n, s) for n, s in nodes.items() if {"input": key} in s["inputs"].values())
    port = next(p for p, v in spec["inputs"].items() if v == {"input": key})
    name = rename or key
    literal = {p: v for p, v in spec["inputs"].items() if not isinstance(v, dict)}
    inputs: dict[str, Any] = {"node": spec["type"], "items": {"input": name}, "item_input": port}
    inputs.update({p: v for p, v in spec["inputs"].items() if isinstance(v, dict) and p != port})
    if literal:
        inputs["inputs"] = literal
    nodes[node_id] = {"type": "control.map", "inputs": inputs}
    declared = {k: v for k, v in sub["inputs"][key].items() if k != "default"}
    graph_inputs = {k: v for k, v in sub["inputs"].items() if k != key}
    graph_inputs[name] = {**declared, "type": f"List[{item_type}]"}
    outputs = {k: ({"node": node_id, "output": "results"} if v["node"] == node_id else dict(v))
               for k, v in sub["outputs"].items()}
    return {**sub, "inputs": graph_inputs, "nodes": nodes, "outputs": outputs}


def assemble(steps: Sequence[Step], clauses: Sequence[Clause], catalog: NodeCatalog,
             name: str = "draft") -> tuple[Graph, dict[int, list[str]]]:
    """The graph of the steps, and per step (by position) the node ids it added."""
    assembler = _Assembler(catalog, name)
    assembler.request = " ".join(clause.text for clause in clauses)
    nodes: dict[int, list[str]] = {}
    texts = {clause.index: clause.text for clause in clauses}
    for number, step in enumerate(steps):
        copies = step.slots.get("__copies__") or [step.slots]
        added: list[str] = []
        for copy in copies:
            added += assembler.add(step, copy, number, texts.get(step.clause, ""))
        nodes[number] = added
    return assembler.graph(), nodes


#: recipes that only join two others (a picture out of a list, a field out of a document): an example's step of
#: these needs no words of its own in the request
_CONNECTORS = frozenset({"first_image", "extract_field", "parse_json", "make_object", "field_per_item"})


def _named(recipe: Recipe, clauses: Sequence[Clause]) -> bool:
    """Whether some clause names the recipe by a cue: "Translate the menu into Italian" is close to the example
    "... into Italian and read it aloud", but asks for no speech."""
    return recipe.name in _CONNECTORS or any(recipe.cue_hits(clause.text) for clause in clauses)


def _covers(example: ExampleWorkflow, clauses: Sequence[Clause], recipes: Sequence[Recipe],
            available: Mapping[str, Recipe]) -> bool:
    """Whether the example's steps serve every clause that names some recipe: "Summarise the minutes, then
    translate the summary into Polish and Arabic" is close to an example that only summarises."""
    own = [available[s.recipe] for s in example.steps]
    for clause in clauses:
        if is_context(clause.text, first=clause.index == 0):
            continue
        if any(r.cue_hits(clause.text) for r in recipes) and not any(r.cue_hits(clause.text) for r in own):
            return False
    return True


def compose(request: str, catalog: NodeCatalog, *, index: RecipeIndex | None = None) -> Composition:
    """Compose a graph for `request` from the recipe library (see the module docstring)."""
    index = index if index is not None else RecipeIndex.get()
    recipes = [recipe for recipe in index.recipes if recipe.available_in(catalog)]
    request = correct_typos(request)
    clauses = split_clauses(request)
    similarity, vectors = index.similarities([request, *(c.text for c in clauses)])
    example, closeness = index.nearest_example(vectors[0])
    example_name: str | None = None
    available = {recipe.name: recipe for recipe in recipes}
    if (example is not None and closeness >= EXAMPLE_THRESHOLD and all(s.recipe in available for s in example.steps)
            and all(_named(available[s.recipe], clauses) for s in example.steps)
            and _covers(example, clauses, recipes, available)):
        read = read_slots(request)
        steps: list[Step] = []
        for given in example.steps:
            recipe = available[given.recipe]
            best_clause = max(clauses, key=lambda c: similarity[1 + c.index].get(recipe.name, 0.0))
            steps.append(Step(recipe, best_clause.index, {**dict(given.slots), "__read__": read}, closeness))
        example_name = example.request
    else:
        steps = choose_steps(clauses, similarity[1:], recipes, request)
        for step in steps:
            step.slots["__read__"] = clauses[step.clause].slots
    for step in steps:
        read = step.slots.pop("__read__")
        fixed = dict(step.slots)
        step.slots = {"__copies__": [{**fixed, **copy} for copy in
                                     step_slots(step.recipe, clauses[step.clause].text, read)]}
    reports = [ClauseReport(c.index, c.text, [], [], c.slots) for c in clauses]
    if not steps:
        return Composition(None, [], reports, example_name)
    graph, nodes = assemble(steps, clauses, catalog)
    for number, step in enumerate(steps):
        for clause in (step.clause, *step.also):
            report = reports[clause]
            report.recipes.append(step.recipe.name)
            report.nodes += [n for n in nodes[number] if n in graph.nodes and n not in report.nodes]
    issues = validate_graph(graph, catalog)
    return Composition(graph, steps, reports, example_name, issues)


__all__ = ["ClauseReport", "Composition", "RecipeIndex", "Step", "assemble", "choose_steps", "compose", "step_slots"]
