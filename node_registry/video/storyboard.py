"""Storyboards for short product videos: a structure from the product facts, captions from an LLM.

A small model writes weak copy, so quality comes from the system:

- the **structure** is fixed by templates from the facts: a hook, one scene per benefit
  (the description split into its clauses), a call to action;
- the **LLM writes each scene's caption** (one short prompt per scene, with the scene's role
  and benefit), and the instruction says which scenes to keep and which to write again;
- `StoryboardRules` (the rule critic `storyboard` of `control.refine`) checks every scene
  (caption present, short enough to fit on screen, not a repeat of another scene) and the
  whole (the product name and the call to action appear), and writes its verdict into the
  next instruction as lines the generator obeys: `Keep scene 2: "..."` keeps a good
  caption verbatim, `Scene 3 (try 2): <what was wrong>` has the LLM draw that scene afresh
  from the same prompt with another seed (the critique decides *what* to write again; the
  problem text stays out of the prompt, which a 135M writer only copies);
- `finish_storyboard` replaces whatever still fails after the last turn with a template
  caption built from the facts, so the video never shows an empty, overlong or repeated line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

from nodeloom.core.context import NodeContext
from nodeloom.core.ports import Range
from nodeloom.core.spec import node
from nodeloom.core.types import Json, List

MAX_CAPTION = 42
MAX_OVERLAP = 0.5
#: a caption is read in a scene of a few seconds: one word says nothing, more than eight is not read in time
MIN_WORDS, MAX_WORDS = 2, 8
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_KEEP = re.compile(r'^keep scene (\d+): "(.*)"\s*$', re.IGNORECASE)
_FIX = re.compile(r"^scene (\d+)(?: \(try (\d+)\))?: (.*)$", re.IGNORECASE)
_WORD = re.compile(r"[\w']+", re.UNICODE)
_STOPWORDS = frozenset(("a", "an", "the", "and", "or", "of", "to", "for", "with", "in", "on", "at", "your", "you",
                        "it", "its", "is", "are", "from", "by"))


@dataclass(frozen=True, slots=True)
class Facts:
    """What the storyboard is about."""

    product: str
    description: str
    audience: str = ""
    tone: str = "warm"
    call_to_action: str = ""

    @property
    def cta(self) -> str:
        return self.call_to_action.strip() or f"Try {self.product} today"


def benefits_of(description: str) -> list[str]:
    """The description's clauses, each a benefit ('A lamp that dims itself and charges your phone' → 2).

    A leading 'A desk lamp' (what the product is, not what it does) is left out when other clauses remain.
    """
    parts = re.split(r"[.;!?]|,?\s+and\s+|,\s*|\s+that\s+|\s+which\s+|\s+so\s+", description)
    clauses = [p.strip(" -–—") for p in parts if len(_WORD.findall(p)) >= 2]
    if len(clauses) > 1 and re.match(r"(?i)(a|an|the)\s", clauses[0]) and len(clauses[0].split()) <= 4:
        clauses = clauses[1:]
    return clauses or [description.strip() or "made for you"]


def angles_of(facts: Facts) -> list[str]:
    """What the benefit scenes are about: each clause of the description, then who it is for
    ('made for people who work from home')."""
    angles = benefits_of(facts.description)
    if facts.audience.strip():
        angles.append(f"made for {facts.audience.strip()}")
    return angles


def what_it_is(description: str) -> str:
    """'A desk lamp that follows the daylight' → 'A desk lamp' ('' when the description does not start so)."""
    first = re.split(r"\s+(?:that|which)\s+|[,.;]", description.strip(), maxsplit=1)[0].strip()
    return first if re.match(r"(?i)(a|an|the)\s", first) and len(first.split()) <= 5 else ""


def scene_count(facts: Facts, asked: int) -> int:
    """The scenes asked for, but no more benefit scenes than there are things to say (no forced repeats)."""
    return max(1, min(asked, len(angles_of(facts)) + 2))


def roles_for(count: int) -> list[str]:
    """hook, benefit..., cta: the shape of every storyboard (one scene: a hook that is also the call)."""
    if count <= 1:
        return ["cta"]
    return ["hook", *["benefit"] * (count - 2), "cta"]


_TRAILING = re.compile(r"^(.*\S)\s+(?:to|on|in|when|with|for|from|at|into|while|after|before|by|of)\s+[^,;]*$",
                       re.IGNORECASE)


def _short(text: str, limit: int) -> str:
    """At most `limit` characters: trailing phrases ('... when you leave') dropped first, else cut at a word."""
    text = " ".join(text.split())
    while len(text) > limit and (shorter := _TRAILING.sub(r"\1", text)) != text and len(shorter.split()) >= 2:
        text = shorter
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:-–— ")


def template_captions(facts: Facts, count: int, limit: int = MAX_CAPTION) -> list[str]:
    """Captions from the facts alone, one per role: the fallback that is always distinct and on message."""
    benefits = angles_of(facts)
    captions: list[str] = []
    for index, role in enumerate(roles_for(count)):
        if role == "hook":  # no product name here: the call to action names it, and the two stay apart
            what = what_it_is(facts.description)
            text = f"{what}, reimagined" if what else f"Meet {facts.product}"
        elif role == "cta":
            text = f"{facts.cta}: {facts.product}" if facts.product.lower() not in facts.cta.lower() else facts.cta
        else:
            benefit = benefits[(index - 1) % len(benefits)]
            text = benefit[:1].upper() + benefit[1:]
            if index > len(benefits):  # more scenes than clauses: say the same benefit another way
                text = f"{facts.product}: {benefit}"
        captions.append(_short(text, limit))
    return captions


def _task(facts: Facts, role: str, index: int) -> str:
    if role == "hook":
        return "hook"
    if role == "cta":
        return f"call to action: {facts.cta}"
    benefits = angles_of(facts)
    return f"benefit: {benefits[(index - 2) % len(benefits)]}"


_LABEL = re.compile(r"\b(?:caption|scene(?: \d+)?|benefit|hook|call to action|tone|product)\s*:\s*", re.IGNORECASE)
_TONE = re.compile(r"[.\s]*\btone:\s*\w+\W*$", re.IGNORECASE)


def _clean(text: str) -> str:
    """The caption in a model's reply: first line, labels it echoed ('Benefit:', 'Tone: warm') and quotes removed."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = _LABEL.sub("", _TONE.sub("", line))
    line = line.strip().strip('"“”\'`*#').strip()
    return re.sub(r"\s+#\w+", "", line).strip()


def words(text: str) -> set[str]:
    """The content words of a text, lower-cased (for overlap between captions)."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def overlap(first: str, second: str) -> float:
    """Jaccard overlap of two texts' content words (1.0: the same words)."""
    a, b = words(first), words(second)
    return len(a & b) / len(a | b) if a and b else float(first.strip().lower() == second.strip().lower())


@dataclass(frozen=True, slots=True)
class Directions:
    """An instruction read as the storyboard critic writes it: free text, kept captions, per-scene fixes."""

    text: str
    keep: dict[int, str]
    fixes: dict[int, str]
    #: which attempt at a failing scene the next caption is (`Scene 2 (try 3): ...`; 2 when unsaid)
    tries: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, instruction: str) -> Directions:
        free: list[str] = []
        keep: dict[int, str] = {}
        fixes: dict[int, str] = {}
        tries: dict[int, int] = {}
        for line in instruction.splitlines():
            if kept := _KEEP.match(line.strip()):
                keep[int(kept.group(1))] = kept.group(2)
            elif fix := _FIX.match(line.strip()):
                fixes[int(fix.group(1))] = fix.group(3)
                tries[int(fix.group(1))] = int(fix.group(2) or 2)
            elif line.strip():
                free.append(line.strip())
        return cls(" ".join(free), keep, fixes, tries)


# few-shot turns: a 135M model copies the shape of examples far better than it follows rules
_EXAMPLES = (
    ("Product: AquaFlask. Scene: call to action: Get yours now", "Get yours now: AquaFlask"),
    ("Product: AquaFlask. Scene: benefit: keeps drinks cold for 24 hours", "Drinks stay cold all day"),
    ("Product: AquaFlask. Scene: hook", "Still ice-cold at 5 pm?"),
)
SYSTEM = ("You write captions for the scenes of short product videos: 3 to 7 words, vivid, no quotes, "
          "no hashtags. Reply with the caption only.")


def scene_messages(facts: Facts, role: str, index: int, directions: Directions) -> list[dict[str, str]]:
    """The chat for one scene's caption: the examples first (a prefix shared by every call), then the scene.

    A scene the critic rejected is asked again with this same prompt (a fresh sample, by another seed), not
    with the rejected caption and the reason: a 135M writer copies what it is shown, so the problem text made
    its next caption worse, while a fresh draw of a failing scene is as good as a first one.
    """
    system = f"{SYSTEM} {directions.text}" if directions.text else SYSTEM
    messages = [{"role": "system", "content": system}]
    for asked, answered in _EXAMPLES:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    messages.append({"role": "user", "content": f"Product: {facts.product}. Scene: {_task(facts, role, index)}"})
    return messages


def _seed(seed: int, prompt: str) -> int:
    return (seed * 1_000_003 + int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16)) % (2**31 - 1)


def write_storyboard(ctx: NodeContext, facts: Facts, count: int, instruction: str, seed: int, *,
                     provider: str = "", model: str = "", temperature: float = 0.8) -> dict[str, Any]:
    """A storyboard: the roles from the facts, each caption by the LLM (or kept, as the instruction says)."""
    from nodeloom.node_registry.llm.nodes import ProgressStream
    from nodeloom.node_registry.llm.provider import ChatRequest, open_provider

    directions = Directions.parse(instruction)
    count = scene_count(facts, count)
    roles = roles_for(count)
    fallbacks = template_captions(facts, count)
    llm = None
    scenes: list[dict[str, Any]] = []
    for index, role in enumerate(roles, start=1):
        ctx.check_cancelled()
        if index in directions.keep:
            caption, source = directions.keep[index], "kept"
        else:
            messages = scene_messages(facts, role, index, directions)
            llm = llm or open_provider(provider, ctx)
            attempt = directions.tries.get(index, 2) if index in directions.fixes else 1
            request = ChatRequest(messages=messages, temperature=temperature, max_tokens=20, stop=("\n",),
                                  seed=_seed(seed + 7919 * (attempt - 1), messages[-1]["content"]), model=model,
                                  stream=False)
            caption, source = _clean(llm.complete(request, ProgressStream(ctx, None)).text), "llm"
            if not caption:
                caption, source = fallbacks[index - 1], "template"
        scenes.append({"index": index, "role": role, "about": _task(facts, role, index), "caption": caption,
                       "source": source})
    return {"title": f"{facts.product}: {scenes[0]['caption']}", "product": facts.product,
            "call_to_action": facts.cta, "scenes": scenes}


# -- the rule critic -----------------------------------------------------------------------


_ECHO = re.compile(r"\b(too long|\d+ to \d+ words|caption|scene|benefit|hook|call to action|tone)\b", re.IGNORECASE)


def _stems(text: str) -> set[str]:
    return {w[:5] for w in words(text) if len(w) > 2}


def _on_message(caption: str, about: str, storyboard: dict[str, Any]) -> bool:
    """A benefit caption shares a word (stem) with its benefit; a hook or call needs no such tie."""
    if not about.startswith("benefit: "):
        return True
    product = _stems(str(storyboard.get("product") or ""))
    return bool((_stems(caption) - product) & _stems(about[len("benefit: "):]))


@dataclass(frozen=True, slots=True)
class SceneCheck:
    index: int
    caption: str
    problems: list[str]


def check_scenes(storyboard: dict[str, Any], max_caption: int = MAX_CAPTION,
                 max_overlap: float = MAX_OVERLAP) -> tuple[list[SceneCheck], list[str]]:
    """Per scene: what is wrong with its caption; and what is wrong with the whole storyboard."""
    scenes = [s for s in storyboard.get("scenes") or [] if isinstance(s, dict)]
    checks: list[SceneCheck] = []
    for position, scene in enumerate(scenes):
        caption = str(scene.get("caption") or "").strip()
        problems: list[str] = []
        if not caption:
            problems.append("empty")
        elif len(caption) > max_caption:
            problems.append(f'"{caption}" is too long ({len(caption)} characters; at most {max_caption})')
        elif not MIN_WORDS <= len(caption.split()) <= MAX_WORDS:
            problems.append(f'"{caption}" has {len(caption.split())} words ({MIN_WORDS} to {MAX_WORDS} read well)')
        elif len(_LETTER.findall(caption)) < 0.7 * len(caption.replace(" ", "")):
            problems.append(f'"{caption}" is mostly not words')
        elif echo := _ECHO.search(caption):
            problems.append(f'"{caption}" repeats the instructions ("{echo.group(0)}"), not a caption')
        elif not _on_message(caption, str(scene.get("about") or ""), storyboard):
            problems.append(f'"{caption}" is off topic: say {scene.get("about")}')
        for earlier in checks[:position]:
            if caption and earlier.caption and overlap(caption, earlier.caption) >= max_overlap:
                problems.append(f'"{caption}" repeats scene {earlier.index} ("{earlier.caption}"): say something new')
                break
        checks.append(SceneCheck(int(scene.get("index") or position + 1), caption, problems))
    whole: list[str] = []
    product = str(storyboard.get("product") or "").strip().lower()
    # named by a caption that passes: a failing one is written again and takes the name with it
    named = " ".join(c.caption.lower() for c in checks if not c.problems)
    if product and product not in named:
        whole.append(f"name the product ({storyboard.get('product')})")
        if checks and not checks[-1].problems:  # the call to action is where the name belongs
            checks[-1].problems.append(f'"{checks[-1].caption}" does not name the product')
    cta = str(storyboard.get("call_to_action") or "").strip()
    last = checks[-1].caption.lower() if checks else ""
    if cta and not words(cta) <= words(last):
        whole.append(f"the last scene must say the call to action ({cta})")
        if checks and not checks[-1].problems:
            checks[-1].problems.append(f'"{checks[-1].caption}" lacks the call to action "{cta}"')
    return checks, whole


@dataclass(frozen=True, slots=True)
class StoryboardRules:
    """Rule critic for storyboards: every caption present, short, new; product and call to action named.

    Its instruction keeps the passing captions (`Keep scene N: "..."`) and names the others with
    what is wrong (`Scene N (try K): ...`), which `video.storyboard` draws afresh.
    """

    max_caption: int = MAX_CAPTION
    max_overlap: float = MAX_OVERLAP

    def verdict(self, result: Any, instruction: str) -> tuple[float, str, str]:
        """(score 0-10, reasoning, next instruction)."""
        if not isinstance(result, dict):
            return 0.0, "not a storyboard", instruction
        checks, whole = check_scenes(result, self.max_caption, self.max_overlap)
        failed = [c for c in checks if c.problems]
        total = len(checks) + 2
        passed = len(checks) - len(failed) + 2 - min(2, len(whole))
        score = 10 * passed / total if checks else 0.0
        reasons = [f"scene {c.index}: {'; '.join(c.problems)}" for c in failed] + whole
        before = Directions.parse(instruction)
        lines = [before.text] if before.text else []
        lines += [f'Keep scene {c.index}: "{c.caption}"' for c in checks if not c.problems]
        lines += [f"Scene {c.index} (try {before.tries.get(c.index, 1) + 1 if c.index in before.fixes else 2}): "
                  f"{'; '.join(c.problems)}" for c in failed]
        return score, "; ".join(reasons) or "every scene is distinct, short, and on message", "\n".join(lines)


def finish(storyboard: dict[str, Any], facts: Facts, max_caption: int = MAX_CAPTION,
           max_overlap: float = MAX_OVERLAP) -> dict[str, Any]:
    """The storyboard with every caption that still fails replaced by a template caption from the facts."""
    scenes = [dict(s) for s in storyboard.get("scenes") or [] if isinstance(s, dict)]
    if not scenes:
        scenes = [{"index": n + 1, "role": role, "caption": ""} for n, role in enumerate(roles_for(3))]
    fallbacks = template_captions(facts, len(scenes), max_caption)
    board = {**storyboard, "product": facts.product, "call_to_action": facts.cta, "scenes": scenes}
    for _ in range(len(scenes) + 1):
        checks, whole = check_scenes(board, max_caption, max_overlap)
        failing = [n for n, c in enumerate(checks) if c.problems]
        if not failing and not whole:
            break
        targets = failing or [len(scenes) - 1]
        for position in targets:
            scenes[position] = {**scenes[position], "caption": fallbacks[position], "source": "template"}
        if not failing and whole:  # the product or the call is missing: the template call names both
            scenes[-1] = {**scenes[-1], "caption": fallbacks[-1], "source": "template"}
            break
    board["title"] = f"{facts.product}: {scenes[0]['caption']}"
    return board


# -- nodes ------------------------------------------------------------------------------------


class FinishedStoryboard(NamedTuple):
    storyboard: Annotated[dict[str, Any], "the storyboard as shown: {title, product, call_to_action, scenes}"]
    scenes: Annotated[list[Any], List(Json), "the scenes: {index, role, caption, source}"]
    captions: Annotated[list[str], "one caption per scene"]
    replaced: Annotated[int, "how many captions the templates had to replace"]


@node("video.storyboard", output="storyboard", deterministic=True)
def storyboard(
    ctx: NodeContext,
    product: Annotated[str, "the product's name"],
    description: Annotated[str, "what it is and does; each clause becomes a benefit scene"],
    audience: Annotated[str, "who the video speaks to"] = "",
    tone: Annotated[str, "the voice: warm, bold, playful"] = "warm",
    call_to_action: Annotated[str, "what the last scene asks ('Order yours today')"] = "",
    scenes: Annotated[int, Range(1, 8), "how many scenes: a hook, benefits, a call to action"] = 5,
    instruction: Annotated[str, "direction for the writer; `Keep scene N: \"...\"` and `Scene N (try K): ...` lines "
                           "(the storyboard critic's) keep a scene or draw it again"] = "",
    seed: Annotated[int, "the same facts, instruction and seed give the same storyboard"] = 0,
    temperature: Annotated[float, Range(0, 2)] = 0.8,
    provider: Annotated[str, "LLM provider ('' = the run's default: the embedded SmolLM2)"] = "",
    model: str = "",
) -> dict[str, Any]:
    """Write a storyboard: a hook, one scene per benefit, a call to action; the LLM writes each caption."""
    facts = Facts(product, description, audience, tone, call_to_action)
    return write_storyboard(ctx, facts, scenes, instruction, seed, provider=provider, model=model,
                            temperature=temperature)


@node("video.finish_storyboard")
def finish_storyboard(
    storyboard: Annotated[dict[str, Any], "a storyboard from video.storyboard (refined or not)"],
    product: str,
    description: str,
    audience: str = "",
    call_to_action: str = "",
    max_caption: Annotated[int, Range(8, 200), "longest caption that fits on screen"] = MAX_CAPTION,
) -> FinishedStoryboard:
    """Replace every caption that is still empty, too long or a repeat by a template caption from the facts."""
    facts = Facts(product, description, audience, "", call_to_action)
    board = finish(storyboard, facts, max_caption)
    scenes: Sequence[dict[str, Any]] = board["scenes"]
    return FinishedStoryboard(board, list(scenes), [str(s["caption"]) for s in scenes],
                              sum(1 for s in scenes if s.get("source") == "template"))
