"""The refine loop (EditThinker): generate, critique, rewrite the instruction, repeat.

A generator turns an instruction into a result; a critic reads the result beside the
original request and the instruction, and answers a `Critique`: scores for quality and
alignment (0-10), its reasoning, a rewritten instruction, and whether to stop. The loop
repeats with the rewritten instruction until the deciding score reaches the threshold,
the critic says stop, or the turns run out, and returns the best result (or the last)
with the whole trajectory.

Rule critics need no model: `MaxLength`, `RequiredWords`, `MatchesSchema`,
`DistinctItems`, `ImageSize` and `ImageBrightness`. A failed rule scores low and writes a
concrete instruction ("Use the words: launch."). `combine` merges several critics' answers
(the mean or the minimum of their scores); LLM and vision critics live in the LLM pack
(`nodeloom.node_registry.llm.critique`) and answer the same shape as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

from nodeloom.core.artifacts import ArtifactRef, ArtifactStore
from nodeloom.core.errors import NodeExecutionError

DecideBy = Literal["quality", "alignment", "mean"]
Keep = Literal["best", "last"]
Combine = Literal["mean", "min"]


@dataclass(frozen=True, slots=True)
class RefineOptions:
    """How the loop decides: `threshold` on the `decide_by` score, at most `max_turns`, which result to `keep`."""

    threshold: float = 8.0
    max_turns: int = 3
    decide_by: DecideBy = "mean"
    keep: Keep = "best"

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 10:
            raise ValueError(f"threshold must be between 0 and 10, not {self.threshold}")
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, not {self.max_turns}")
        if self.decide_by not in ("quality", "alignment", "mean"):
            raise ValueError(f"decide_by must be quality, alignment or mean, not {self.decide_by!r}")
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be best or last, not {self.keep!r}")


def _score(value: Any) -> float:
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    return min(10.0, max(0.0, number))


@dataclass(frozen=True, slots=True)
class Critique:
    """A critic's answer. Scores are clamped to 0-10; an empty instruction keeps the current one."""

    quality: float
    alignment: float
    reasoning: str = ""
    instruction: str = ""
    stop: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "quality", _score(self.quality))
        object.__setattr__(self, "alignment", _score(self.alignment))

    def score(self, decide_by: DecideBy) -> float:
        if decide_by == "mean":
            return (self.quality + self.alignment) / 2
        return self.quality if decide_by == "quality" else self.alignment

    def to_json(self) -> dict[str, Any]:
        return {
            "scores": {"quality": self.quality, "alignment": self.alignment},
            "reasoning": self.reasoning,
            "instruction": self.instruction,
            "stop": self.stop,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Critique:
        """The critic JSON shape `{scores: {quality, alignment}, reasoning, instruction, stop}`."""
        scores = data.get("scores") or {}
        return cls(
            quality=scores.get("quality", 0),
            alignment=scores.get("alignment", 0),
            reasoning=str(data.get("reasoning") or ""),
            instruction=str(data.get("instruction") or ""),
            stop=bool(data.get("stop")),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a critic reads: the result, the original request, the instruction that produced it."""

    result: Any
    request: str
    instruction: str
    #: where image results (artifact references) can be read; None when there is none
    artifacts: ArtifactStore | None = None


Critic = Callable[[Attempt], Critique]
Generator = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of the trajectory: the instruction used, the result (artifacts by reference), the critique."""

    index: int
    instruction: str
    result: Any
    critique: Critique
    score: float

    def to_json(self) -> dict[str, Any]:
        result = self.result.to_json() if isinstance(self.result, ArtifactRef) else self.result
        critique = self.critique
        return {"turn": self.index, "instruction": self.instruction, "result": result, "score": self.score,
                "scores": {"quality": critique.quality, "alignment": critique.alignment},
                "reasoning": critique.reasoning, "next_instruction": critique.instruction, "stop": critique.stop}


@dataclass(frozen=True, slots=True)
class Refinement:
    """What the loop returns: the kept result, its score and turn, why it stopped, every turn."""

    result: Any
    score: float
    turn: int
    stopped_by: Literal["threshold", "critic", "max_turns"]
    trajectory: list[Turn] = field(default_factory=list)


def refine(
    generate: Generator,
    critic: Critic,
    request: str,
    instruction: str | None = None,
    options: RefineOptions = RefineOptions(),
    *,
    artifacts: ArtifactStore | None = None,
    on_turn: Callable[[Turn], None] | None = None,
) -> Refinement:
    """Run generate → critique → rewrite until the score passes, the critic stops, or the turns run out."""
    current = request if instruction is None else instruction
    trajectory: list[Turn] = []
    stopped_by: Literal["threshold", "critic", "max_turns"] = "max_turns"
    for index in range(1, options.max_turns + 1):
        result = generate(current)
        critique = critic(Attempt(result, request, current, artifacts))
        turn = Turn(index, current, result, critique, critique.score(options.decide_by))
        trajectory.append(turn)
        if on_turn is not None:
            on_turn(turn)
        if turn.score >= options.threshold:
            stopped_by = "threshold"
            break
        if critique.stop:
            stopped_by = "critic"
            break
        current = critique.instruction or current
    # the earliest of equal scores wins: it cost fewer turns
    kept = trajectory[-1] if options.keep == "last" else max(trajectory, key=lambda t: (t.score, -t.index))
    return Refinement(kept.result, kept.score, kept.index, stopped_by, trajectory)


# -- combining critics ----------------------------------------------------------------


def combine(critics: Sequence[Critic], how: Combine = "mean") -> Critic:
    """One critic from several: mean or minimum of scores; failed critics' instructions joined; stop if all stop.

    A critic that gives no usable answer (a model's reply that is not the critique JSON, a
    server that fails) is left out of that turn, and the reasoning says so; the turn fails
    only when no critic answers. So a rule-backed loop is not lost to one bad model reply.
    """
    if not critics:
        raise ValueError("combine needs at least one critic")
    if len(critics) == 1:
        return critics[0]
    merge: Callable[[list[float]], float] = min if how == "min" else (lambda xs: sum(xs) / len(xs))

    def combined(attempt: Attempt) -> Critique:
        answers: list[Critique] = []
        silent: list[NodeExecutionError] = []
        for critic in critics:
            try:
                answers.append(critic(attempt))
            except NodeExecutionError as error:
                silent.append(error)
        if not answers:
            raise silent[0]
        notes = [f"(a critic gave no usable answer: {error.message})" for error in silent]
        rewrites = [a.instruction for a in answers if a.instruction and a.instruction != attempt.instruction]
        return Critique(
            quality=merge([a.quality for a in answers]),
            alignment=merge([a.alignment for a in answers]),
            reasoning=" ".join([*(a.reasoning for a in answers if a.reasoning), *notes]),
            instruction=_merged_instruction(attempt.instruction, rewrites),
            stop=all(a.stop for a in answers),
        )

    return combined


def _merged_instruction(current: str, rewrites: list[str]) -> str:
    """Rule rewrites extend the current instruction; a free rewrite (an LLM's) replaces it, keeping rule additions."""
    merged = current
    for rewrite in rewrites:
        if rewrite.startswith(current):
            addition = rewrite[len(current):]
            if addition not in merged:
                merged += addition
        else:
            merged = rewrite + merged[len(current):]
            current = rewrite
    return merged


# -- rule critics: no model -------------------------------------------------------------


def _rule(passed: bool, attempt: Attempt, reasoning: str, fix: str, partial: float = 0.0) -> Critique:
    if passed:
        return Critique(10, 10, reasoning, attempt.instruction, stop=True)
    score = 10 * partial
    return Critique(score, score, reasoning, f"{attempt.instruction.rstrip()} {fix}".strip())


def _text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class MaxLength:
    """The result's text is at most `limit` characters."""

    limit: int

    def __call__(self, attempt: Attempt) -> Critique:
        length = len(_text(attempt.result))
        return _rule(length <= self.limit, attempt, f"{length} characters (at most {self.limit})",
                     f"Keep it under {self.limit} characters.", min(1.0, self.limit / max(length, 1)))


@dataclass(frozen=True, slots=True)
class RequiredWords:
    """The result's text contains every word (case-insensitive)."""

    words: tuple[str, ...]

    def __call__(self, attempt: Attempt) -> Critique:
        text = _text(attempt.result).lower()
        missing = [w for w in self.words if w.lower() not in text]
        found = len(self.words) - len(missing)
        reasoning = f"missing words: {', '.join(missing)}" if missing else "every required word is there"
        return _rule(not missing, attempt, reasoning, f"Use the words: {', '.join(missing)}.",
                     found / len(self.words) if self.words else 1.0)


@dataclass(frozen=True, slots=True)
class MatchesSchema:
    """The result (or its text parsed as JSON) conforms to a JSON Schema."""

    schema: Mapping[str, Any]

    def __call__(self, attempt: Attempt) -> Critique:
        data = attempt.result
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as error:
                return _rule(False, attempt, f"not JSON: {error}", "Reply with JSON only.")
        problem = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(self.schema)(
            self.schema).iter_errors(data))
        if problem is None:
            return _rule(True, attempt, "matches the schema", "")
        where = "/".join(str(p) for p in problem.absolute_path)
        message = f"{'at ' + where + ': ' if where else ''}{problem.message}"
        return _rule(False, attempt, message, f"Fix the JSON: {message}.", 0.3)


@dataclass(frozen=True, slots=True)
class DistinctItems:
    """A list result (or lines of a text) has no repeated item (compared case-insensitively)."""

    def __call__(self, attempt: Attempt) -> Critique:
        result = attempt.result
        items = result if isinstance(result, list) else [x for x in _text(result).splitlines() if x.strip()]
        keys = [_text(item).strip().lower() for item in items]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        distinct = len(set(keys)) / len(keys) if keys else 1.0
        return _rule(not repeated, attempt, f"repeated items: {', '.join(repeated)}" if repeated else "all distinct",
                     f"Make every item different; do not repeat: {', '.join(repeated)}.", distinct)


def _image(attempt: Attempt) -> Any:
    from PIL import Image

    if not isinstance(attempt.result, ArtifactRef) or attempt.artifacts is None:
        raise ValueError("an image critic needs an image artifact and the run's artifact store")
    with Image.open(attempt.artifacts.path(attempt.result)) as opened:
        return opened.convert("RGB")


@dataclass(frozen=True, slots=True)
class ImageSize:
    """The image is at least `min_width` x `min_height` pixels."""

    min_width: int
    min_height: int

    def __call__(self, attempt: Attempt) -> Critique:
        width, height = _image(attempt).size
        passed = width >= self.min_width and height >= self.min_height
        partial = min(1.0, width / self.min_width) * min(1.0, height / self.min_height)
        return _rule(passed, attempt, f"{width}x{height} pixels (at least {self.min_width}x{self.min_height})",
                     f"Make it at least {self.min_width}x{self.min_height} pixels.", partial)


@dataclass(frozen=True, slots=True)
class ImageBrightness:
    """The image's mean luminance (0-255) lies between `low` and `high`."""

    low: float = 0.0
    high: float = 255.0

    def __call__(self, attempt: Attempt) -> Critique:
        from PIL import ImageStat

        mean = float(ImageStat.Stat(_image(attempt).convert("L")).mean[0])
        if mean < self.low:
            return _rule(False, attempt, f"too dark: brightness {mean:.0f} (at least {self.low:.0f})",
                         "Make it brighter.", mean / self.low)
        if mean > self.high:
            return _rule(False, attempt, f"too bright: brightness {mean:.0f} (at most {self.high:.0f})",
                         "Make it darker.", (255 - mean) / max(255 - self.high, 1))
        return _rule(True, attempt, f"brightness {mean:.0f}", "")


@dataclass(frozen=True, slots=True)
class StoryboardCritic:
    """A video storyboard (`video.storyboard`): captions present, short, distinct; product and call to action named.

    Its instruction keeps the good scenes verbatim and names what to fix in the others
    (`nodeloom.node_registry.video.storyboard.StoryboardRules`).
    """

    max_caption: int = 42
    max_overlap: float = 0.5

    def __call__(self, attempt: Attempt) -> Critique:
        from nodeloom.node_registry.video.storyboard import StoryboardRules

        score, reasoning, instruction = StoryboardRules(self.max_caption, self.max_overlap).verdict(
            attempt.result, attempt.instruction)
        return Critique(score, score, reasoning, instruction, stop=score >= 10)


def rule_critics(rules: Mapping[str, Any]) -> list[Critic]:
    """Rule critics from configuration: max_length, required_words, json_schema, distinct_items,
    image_min_size [w, h], image_brightness [low, high], storyboard {max_caption, max_overlap}.
    Raises `ValueError` for an unknown rule."""
    critics: list[Critic] = []
    for name, value in rules.items():
        if name == "max_length":
            critics.append(MaxLength(int(value)))
        elif name == "required_words":
            critics.append(RequiredWords(tuple(str(w) for w in value)))
        elif name == "json_schema":
            critics.append(MatchesSchema(dict(value)))
        elif name == "distinct_items":
            if value:
                critics.append(DistinctItems())
        elif name == "image_min_size":
            critics.append(ImageSize(int(value[0]), int(value[1])))
        elif name == "image_brightness":
            critics.append(ImageBrightness(float(value[0]), float(value[1])))
        elif name == "storyboard":
            critics.append(StoryboardCritic(**dict(value or {})))
        else:
            raise ValueError(f"unknown rule {name!r}; rules: {', '.join(RULE_NAMES)}")
    return critics


RULE_NAMES = ("max_length", "required_words", "json_schema", "distinct_items", "image_min_size", "image_brightness",
              "storyboard")
