"""`llm.critique`: an LLM judges a result against a request and rewrites the instruction.

The answer is JSON constrained to `CRITIQUE_SCHEMA` (as `llm.structured` constrains its
output): `{scores: {quality, alignment}, reasoning, instruction, stop}`, scores 0-10. Any
provider works; the embedded SmolLM2 is the default text critic. Given an image, the
critic sends it inside the chat message as a data URL (OpenAI's `image_url` content part),
so it needs an OpenAI-compatible vision model: `critique_image` talks to one configured by
base URL and model name.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Annotated, Any

import jsonschema

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Range
from nodeloom.core.spec import node
from nodeloom.core.types import ImageRef, Json
from nodeloom.node_registry.llm.nodes import ModelName, ProgressStream, ProviderChoice, Seed, _json_problem
from nodeloom.node_registry.llm.provider import ChatRequest, LLMProvider, open_provider

_SCORE = {"type": "number", "minimum": 0, "maximum": 10}
CRITIQUE_SCHEMA: dict[str, Any] = {
    "title": "Critique",
    "type": "object",
    "properties": {
        "scores": {
            "type": "object",
            "properties": {"quality": _SCORE, "alignment": _SCORE},
            "required": ["quality", "alignment"],
        },
        "reasoning": {"type": "string", "maxLength": 160},
        "instruction": {"type": "string", "maxLength": 160},
        "stop": {"type": "boolean"},
    },
    "required": ["scores", "reasoning", "instruction", "stop"],
}
#: the answer is checked without the scores' range, which a schema grammar does not enforce: a score out of 0-10 is
#: clamped into it rather than failing the critique
_VALIDATOR = jsonschema.Draft202012Validator({**CRITIQUE_SCHEMA, "properties": {
    **CRITIQUE_SCHEMA["properties"],
    "scores": {**CRITIQUE_SCHEMA["properties"]["scores"], "properties": {"quality": {"type": "number"},
                                                                         "alignment": {"type": "number"}}}}})
#: the default token budget of an answer: the schema's longest (two 160-character strings) fits
#: even at one token a character, as a small model writes runs like "1.1.1." (256 cut such an answer off)
CRITIQUE_MAX_TOKENS = 448

CRITIC_SYSTEM = (
    "You are a strict critic. Score the result from 0 to 10 for quality and for alignment with the "
    "request, explain briefly, and write an improved instruction for the next attempt. Set stop to "
    "true only when the result needs no change. Reply with JSON only:\n"
    + json.dumps(CRITIQUE_SCHEMA, separators=(",", ":"))
)


def _prompt(request: str, instruction: str, result: str) -> str:
    return f"Request: {request}\nInstruction used: {instruction}\nResult: {result}"


def _describe(result: Any) -> str:
    if isinstance(result, ArtifactRef):
        return f"(a {result.media_type} artifact of {result.size} bytes)"
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def image_data_url(ctx: NodeContext, image: ArtifactRef) -> str:
    """The image artifact inline, as a `data:` URL."""
    encoded = base64.b64encode(ctx.artifacts.read_bytes(image)).decode("ascii")
    return f"data:{image.media_type};base64,{encoded}"


def ask_critic(
    ctx: NodeContext,
    provider: LLMProvider,
    user_content: str | list[dict[str, Any]],
    *,
    model: str = "",
    temperature: float = 0.2,
    max_tokens: int = CRITIQUE_MAX_TOKENS,
    seed: int | None = None,
    max_repairs: int = 1,
) -> dict[str, Any]:
    """One critique from `provider`, repaired once if it does not match `CRITIQUE_SCHEMA`; scores clamped to 0-10."""
    # a message's content is text or, for images, a list of content parts (OpenAI's format)
    conversation: list[Any] = [{"role": "system", "content": CRITIC_SYSTEM}, {"role": "user", "content": user_content}]
    progress = ProgressStream(ctx, None)
    problem: str | None = None
    text = ""
    for attempt in range(max_repairs + 1):
        request = ChatRequest(messages=conversation, temperature=temperature, max_tokens=max_tokens, seed=seed,
                              model=model, json_schema=CRITIQUE_SCHEMA, stream=False)
        completion = provider.complete(request, progress)
        progress.flush()
        text = completion.text
        data, problem = _json_problem(completion, _VALIDATOR)
        if problem is None:
            scores = data["scores"]
            scores["quality"] = min(10.0, max(0.0, float(scores["quality"])))
            scores["alignment"] = min(10.0, max(0.0, float(scores["alignment"])))
            return dict(data)
        if attempt < max_repairs:
            conversation = [*conversation, {"role": "assistant", "content": text},
                            {"role": "user", "content": f"That reply does not match the schema: {problem}. "
                                                        "Reply again with only the corrected JSON."}]
    raise NodeExecutionError(
        f"the critic's answer did not match the critique schema: {problem}",
        retryable=seed is None and temperature > 0,
        details={"raw_output": text, "validation_error": problem},
    )


def critique_text(
    ctx: NodeContext, result: Any, request: str, instruction: str, *, provider: str = "", model: str = "",
    max_tokens: int = CRITIQUE_MAX_TOKENS, seed: int | None = None,
) -> dict[str, Any]:
    """A text critique by the configured LLM provider (default: the embedded SmolLM2)."""
    return ask_critic(ctx, open_provider(provider, ctx), _prompt(request, instruction, _describe(result)),
                      model=model, max_tokens=max_tokens, seed=seed)


def vision_provider(config: Mapping[str, Any]) -> LLMProvider:
    """An OpenAI-compatible vision model from `{base_url, model, timeout}`; the key from the environment."""
    from nodeloom.node_registry.llm.openai_compatible import OpenAICompatibleProvider

    base_url = str(config.get("base_url") or "")
    if not base_url:
        raise NodeExecutionError("the vision critic needs `base_url` (an OpenAI-compatible server)", retryable=False)
    return OpenAICompatibleProvider(base_url, model=str(config.get("model") or ""),
                                    timeout=float(config.get("timeout", 60.0)))


def critique_image(
    ctx: NodeContext, image: ArtifactRef, request: str, instruction: str, provider: LLMProvider, *,
    model: str = "", max_tokens: int = CRITIQUE_MAX_TOKENS, seed: int | None = None,
) -> dict[str, Any]:
    """A critique of an image by a vision model: the image goes in the user message as a data URL."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": _prompt(request, instruction, "the attached image")},
        {"type": "image_url", "image_url": {"url": image_data_url(ctx, image)}},
    ]
    return ask_critic(ctx, provider, content, model=model, max_tokens=max_tokens, seed=seed)


@node("llm.critique", output="critique", deterministic=False)
def llm_critique(
    ctx: NodeContext,
    result: Annotated[Any, "what to judge (text, JSON)"],
    request: Annotated[str, "what was asked for"],
    instruction: Annotated[str, "the instruction that produced the result (default: the request)"] = "",
    image: Annotated[ImageRef, "an image to judge instead of `result`; needs a vision model (openai)"] | None = None,
    max_tokens: Annotated[int, Range(16, 4096), "most tokens of the answer"] = CRITIQUE_MAX_TOKENS,
    seed: Seed = None,
    provider: ProviderChoice = "",
    model: ModelName = "",
) -> Annotated[Any, Json(CRITIQUE_SCHEMA)]:
    """Judge a result: scores (quality, alignment; 0-10), reasoning, a rewritten instruction, and whether to stop."""
    instruction = instruction or request
    if image is None:
        return critique_text(ctx, result, request, instruction, provider=provider, model=model,
                             max_tokens=max_tokens, seed=seed)
    return critique_image(ctx, image, request, instruction, open_provider(provider, ctx), model=model,
                          max_tokens=max_tokens, seed=seed)
