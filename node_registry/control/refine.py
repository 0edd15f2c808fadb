"""`control.refine`: run a generator node type, critique its result, rewrite its instruction, repeat.

The loop is `refine_loop.refine` beside this node (node packs import nothing from `agents`;
`nodeloom.agents.refine` re-exports it); this node runs the generator (any node type
with an instruction input) through the run's catalog, each turn with a context of its own
(node id `refine_id[turn n]`), and builds the critic from `critic`:

    {"rules": {"max_length": 80, "required_words": ["launch"], "json_schema": {...},
               "distinct_items": true, "image_min_size": [512, 512], "image_brightness": [60, 200]},
     "llm": {"provider": "", "model": "", "max_tokens": 448,    # text critic; {} = embedded SmolLM2
             "rewrite": true},                                  # false: it scores, the rules rewrite
     "vision": {"base_url": "http://host/v1", "model": "..."},  # image critic (OpenAI-compatible)
     "combine": "mean"}                                         # or "min"

No `critic` means the embedded LLM critic. The generator type, its instruction input and
the critic's rules are checked by validation when they are literals (`check_refine`), and
again before the first turn otherwise. Each turn is a progress event whose message is the
turn's score and reasoning. Like control.map, the node is not cached (the generator and
critics need not be deterministic) and a `gpu` generator runs outside the executor's lanes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, NamedTuple

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Range
from nodeloom.core.spec import InputProblem, NodeDefinition, node
from nodeloom.core.types import Json, List
from nodeloom.core.validate import NAME_PATTERN
from nodeloom.node_registry.control.refine_loop import (
    RULE_NAMES,
    Attempt,
    Critic,
    Critique,
    RefineOptions,
    Turn,
    combine,
    refine,
    rule_critics,
)


class Refined(NamedTuple):
    result: Annotated[Any, "the kept result (the best-scoring one, or the last)"]
    score: Annotated[float, "the kept result's deciding score (0-10)"]
    trajectory: Annotated[list[Any], List(Json), "every turn: instruction, scores, reasoning, result, score"]


def _problems(catalog: Any, values: Mapping[str, Any]) -> Iterator[InputProblem]:
    generator = values.get("generator")
    if isinstance(generator, str) and catalog is not None:
        definition = catalog.find(generator)
        if definition is None:
            suggestions = catalog.suggest(generator)
            yield InputProblem("unknown_node_type", f"unknown generator node type {generator!r}", "generator",
                               f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else None)
        else:
            yield from _generator_problems(definition, values)
    critic = values.get("critic")
    if isinstance(critic, Mapping):
        unknown = sorted(set(critic.get("rules") or {}) - set(RULE_NAMES))
        if unknown:
            yield InputProblem("invalid_format", f"unknown critic rules {unknown}", "critic",
                               f"rules: {', '.join(RULE_NAMES)}")
        extra = sorted(set(critic) - {"rules", "llm", "vision", "combine"})
        if extra:
            yield InputProblem("invalid_format", f"unknown critic keys {extra}", "critic",
                               "keys: rules, llm, vision, combine")
        if critic.get("combine", "mean") not in ("mean", "min"):
            yield InputProblem("not_in_choices", "critic combine must be 'mean' or 'min'", "critic")


def _generator_problems(definition: NodeDefinition, values: Mapping[str, Any]) -> Iterator[InputProblem]:
    spec = definition.spec
    port_name = values.get("instruction_port", "prompt")
    if not isinstance(port_name, str):
        return
    port = spec.input_map.get(port_name)
    if port is None and not (spec.variadic is not None and NAME_PATTERN.match(port_name)):
        yield InputProblem("unknown_port", f"generator {spec.type} has no instruction input {port_name!r}",
                           "instruction_port", f"inputs of {spec.type}: {', '.join(sorted(spec.input_map))}")
    inputs = values.get("inputs") or {}
    if isinstance(inputs, Mapping) and "inputs" in values:  # absent: linked, checked when the node runs
        for name in inputs:
            if name not in spec.input_map and spec.variadic is None:
                yield InputProblem("unknown_port", f"generator {spec.type} has no input {name!r}", "inputs")
        missing = [p.name for p in spec.inputs if p.required and p.name != port_name and p.name not in inputs]
        if missing:
            yield InputProblem("missing_input", f"generator {spec.type} needs inputs {missing}", "inputs",
                               "give them in `inputs`")
    output = values.get("output")
    if output is None and len(spec.outputs) != 1:
        yield InputProblem("missing_input", f"{spec.type} has outputs {', '.join(sorted(spec.output_map))}; "
                           "choose one with `output`", "output")
    elif isinstance(output, str) and output not in spec.output_map:
        yield InputProblem("unknown_port", f"{spec.type} has no output {output!r}", "output")


def check_refine(values: Mapping[str, Any], catalog: Any) -> list[InputProblem]:
    """Validation's check of control.refine's literal inputs (ranges and choices are the ports' own)."""
    return list(_problems(catalog, values))


def _critic(ctx: NodeContext, config: Mapping[str, Any]) -> Critic:
    from nodeloom.node_registry.llm.critique import (
        CRITIQUE_MAX_TOKENS,
        critique_image,
        critique_text,
        vision_provider,
    )

    critics: list[Critic] = rule_critics(config.get("rules") or {})
    text_config = config.get("llm")
    vision_config = config.get("vision")
    vision = vision_provider(vision_config) if vision_config is not None else None

    if text_config is not None:
        def llm_critic(attempt: Attempt) -> Critique:
            if vision is not None and isinstance(attempt.result, ArtifactRef):
                return Critique(10, 10, "", attempt.instruction, stop=True)  # images are the vision critic's
            verdict = Critique.from_json(critique_text(
                ctx, attempt.result, attempt.request, attempt.instruction,
                provider=str(text_config.get("provider", "")), model=str(text_config.get("model", "")),
                max_tokens=int(text_config.get("max_tokens", CRITIQUE_MAX_TOKENS)), seed=text_config.get("seed"),
            ))
            if text_config.get("rewrite", True) is False:  # a scorer only: the rules own the instruction and stop
                return Critique(verdict.quality, verdict.alignment, verdict.reasoning, attempt.instruction, True)
            return verdict
        critics.append(llm_critic)
    if vision is not None and vision_config is not None:
        vision_settings: Mapping[str, Any] = vision_config

        def vision_critic(attempt: Attempt) -> Critique:
            if not isinstance(attempt.result, ArtifactRef):
                raise NodeExecutionError("the vision critic needs an image result", retryable=False)
            return Critique.from_json(critique_image(
                ctx, attempt.result, attempt.request, attempt.instruction, vision,
                model=str(vision_settings.get("model", "")),
                max_tokens=int(vision_settings.get("max_tokens", CRITIQUE_MAX_TOKENS)),
            ))
        critics.append(vision_critic)
    if not critics:
        raise NodeExecutionError("`critic` configures no critic: give rules, llm or vision", retryable=False)
    return combine(critics, config.get("combine", "mean"))


def _generate(ctx: NodeContext, definition: NodeDefinition, inputs: Mapping[str, Any], port: str,
              output: str, counter: list[int]) -> Any:
    counter[0] += 1
    turn_ctx = NodeContext(
        run_id=ctx.run_id, node_id=f"{ctx.node_id}[turn {counter[0]}]", artifacts=ctx.artifacts, config=ctx.config,
        device=ctx.device, is_cancelled=lambda: ctx.cancelled, catalog=ctx.catalog,
    )
    ctx.check_cancelled()
    node_id = turn_ctx.node_id
    if definition.is_async:
        outputs = asyncio.run(definition.invoke_async(node_id, inputs, turn_ctx))
    else:
        outputs = definition.invoke(node_id, inputs, turn_ctx)
    return outputs[output]


@node("control.refine", resources="io", deterministic=False, check=check_refine)
def control_refine(
    ctx: NodeContext,
    generator: Annotated[str, "the node type that produces the result, e.g. 'llm.chat'"],
    request: Annotated[str, "what the user asked for; the critic judges against it"],
    inputs: Annotated[dict[str, Any], "the generator's other inputs, the same every turn"] | None = None,
    instruction: Annotated[str, "the first instruction (default: the request)"] = "",
    instruction_port: Annotated[str, "the generator input that receives the instruction"] = "prompt",
    output: Annotated[str, "the generator output to refine (default: its only output)"] | None = None,
    critic: Annotated[dict[str, Any], "critic configuration: rules, llm, vision, combine"] | None = None,
    threshold: Annotated[float, Range(0, 10), "stop once the deciding score reaches this"] = 8.0,
    max_turns: Annotated[int, Range(1, 20), "most generate-critique turns"] = 3,
    decide_by: Literal["quality", "alignment", "mean"] = "mean",
    keep: Annotated[Literal["best", "last"], "which turn's result to return"] = "best",
    seed: Annotated[int, "makes the loop repeatable: given to a generator that has a seed input (unless "
                    "`inputs` sets one), and a re-run with the same inputs and seed is served from the cache"]
    | None = None,
) -> Refined:
    """Refine a generator's result: critique it, rewrite the instruction, repeat until good enough."""
    if ctx.catalog is None:
        raise NodeExecutionError("control.refine needs the run's node catalog (ctx.catalog)", retryable=False)
    values = {"generator": generator, "inputs": inputs, "instruction_port": instruction_port, "output": output,
              "critic": critic}
    problems = check_refine(values, ctx.catalog)
    if problems:
        raise NodeExecutionError(f"control.refine: {problems[0].message}", retryable=False,
                                 details={"port": problems[0].port, "reason": problems[0].code})
    definition = ctx.catalog.find(generator)
    assert definition is not None  # checked above
    chosen_output = output or definition.spec.outputs[0].name
    constants = {name: definition.spec.input_map[name].type.coerce(value) if name in definition.spec.input_map
                 else value for name, value in (inputs or {}).items()}
    if seed is not None and "seed" in definition.spec.input_map and "seed" not in constants:
        constants["seed"] = seed
    counter = [0]
    options = RefineOptions(threshold=threshold, max_turns=max_turns, decide_by=decide_by, keep=keep)

    def report(turn: Turn) -> None:
        ctx.progress(turn.index, max_turns, f"turn {turn.index}: score {turn.score:.1f}: {turn.critique.reasoning}")

    refinement = refine(
        lambda text: _generate(ctx, definition, {**constants, instruction_port: text}, instruction_port,
                               chosen_output, counter),
        _critic(ctx, critic if critic is not None else {"llm": {}}),
        request,
        instruction or None,
        options,
        artifacts=ctx.artifacts,
        on_turn=report,
    )
    return Refined(refinement.result, refinement.score, [turn.to_json() for turn in refinement.trajectory])
