"""LLM nodes: free-form chat (`llm.chat`) and JSON that conforms to a schema (`llm.structured`).

Both stream: each piece of generated text is a cancellation point, and the text arrives as
`node.progress` events (the event's message is the text generated since the previous
event; at most about ten events a second). Both are non-deterministic, so their results
are cached only when a `seed` is set.

Both run on the `cpu` lane. The embedded `local` provider is compute-bound (llama.cpp
threads), and that is where a worker keeps the model loaded; an `openai` call only waits
on the network, and a graph that makes many of them can route those nodes to the io queue
with the node's `queue` field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import jsonschema

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Range
from nodeloom.core.spec import node
from nodeloom.core.types import Json, List
from nodeloom.node_registry.llm.provider import ChatRequest, Completion, open_provider

#: seconds between two progress events of one generation
PROGRESS_INTERVAL = 0.1

MESSAGE_SCHEMA: dict[str, Any] = {
    "title": "ChatMessage",
    "type": "object",
    "properties": {
        "role": {"enum": ["system", "user", "assistant"]},
        "content": {"type": "string"},
    },
    "required": ["role", "content"],
}

ProviderChoice = Annotated[
    Literal["", "local", "openai"],
    "LLM backend; empty: the setting llm.provider, else $NODELOOM_LLM_PROVIDER, else local",
]
ModelName = Annotated[str, "model name for the openai provider; empty: the setting llm.model"]
Seed = Annotated[int, "sampling seed; set it for repeatable output (and caching)"] | None


class ProgressStream:
    """Reports streamed text as progress events, throttled; stops the generation when the run is cancelled."""

    def __init__(self, ctx: NodeContext, total: int | None) -> None:
        self.ctx = ctx
        self.total = total
        self.pieces = 0
        self._pending: list[str] = []
        self._last = float("-inf")

    def on_text(self, delta: str) -> None:
        self.pieces += 1
        self._pending.append(delta)
        if time.monotonic() - self._last >= PROGRESS_INTERVAL:
            self.flush()
        else:
            self.ctx.check_cancelled()

    def flush(self) -> None:
        """Report the text not yet reported (called once more when a generation ends)."""
        if self._pending:
            self.ctx.progress(self.pieces, self.total, "".join(self._pending))
            self._pending.clear()
            self._last = time.monotonic()

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.ctx.check_cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, PROGRESS_INTERVAL))


def _conversation(prompt: str, messages: Sequence[Mapping[str, str]], system: str) -> list[dict[str, str]]:
    conversation = [{"role": "system", "content": system}] if system else []
    conversation += [{"role": m["role"], "content": m["content"]} for m in messages]
    if prompt:
        conversation.append({"role": "user", "content": prompt})
    if not any(m["role"] != "system" for m in conversation):
        raise NodeExecutionError("an LLM node needs a `prompt` or at least one user message", retryable=False)
    return conversation


def _generate(ctx: NodeContext, provider: str, request: ChatRequest, stream: ProgressStream) -> Completion:
    completion = open_provider(provider, ctx).complete(request, stream)
    stream.flush()
    return completion


@node("llm.chat", output="text", deterministic=False)
def llm_chat(
    ctx: NodeContext,
    prompt: Annotated[str, "the user's message (appended after `messages`)"] = "",
    messages: Annotated[
        Sequence[Mapping[str, str]], List(Json(MESSAGE_SCHEMA)), "earlier turns: [{role, content}, ...]"
    ] = (),
    system: Annotated[str, "system prompt"] = "",
    temperature: Annotated[float, Range(0.0, 2.0), "0 picks the likeliest token every time"] = 0.7,
    max_tokens: Annotated[int, Range(1, 32768), "most tokens to generate"] = 512,
    stop: Annotated[Sequence[str], "stop generating at any of these texts"] = (),
    seed: Seed = None,
    provider: ProviderChoice = "",
    model: ModelName = "",
    stream: Annotated[bool, "stream tokens as progress events (and stop at the next token when cancelled)"] = True,
) -> str:
    """Generate a chat reply with an LLM (the embedded SmolLM2 model, or an OpenAI-compatible server)."""
    request = ChatRequest(
        messages=_conversation(prompt, messages, system),
        temperature=temperature,
        max_tokens=max_tokens,
        stop=tuple(stop),
        seed=seed,
        model=model,
        stream=stream,
    )
    return _generate(ctx, provider, request, ProgressStream(ctx, max_tokens)).text


def _json_problem(completion: Completion, validator: jsonschema.protocols.Validator) -> tuple[Any, str | None]:
    """The parsed reply and why it does not conform (None when it does)."""
    try:
        data = json.loads(completion.text, strict=False)  # a raw newline or tab inside a string is kept, not refused
    except ValueError as error:
        cut = " (the reply was cut off at max_tokens)" if completion.finish_reason == "length" else ""
        return None, f"the reply is not valid JSON{cut}: {error}"
    problem = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if problem is None:
        return data, None
    where = "/".join(str(part) for part in problem.absolute_path)
    return data, f"{'at ' + where + ': ' if where else ''}{problem.message}"


@node("llm.structured", output="data", deterministic=False)
def llm_structured(
    ctx: NodeContext,
    prompt: Annotated[str, "what to produce"],
    schema: Annotated[dict[str, Any], "JSON Schema the output must match (in Python: Model.model_json_schema())"],
    system: Annotated[str, "system prompt (the schema instructions are added to it)"] = "",
    temperature: Annotated[float, Range(0.0, 2.0)] = 0.2,
    max_tokens: Annotated[int, Range(1, 32768), "most tokens per try (a reply cut off mid-JSON is asked for again "
                                                 "with twice as many, up to four times this)"] = 1024,
    max_repairs: Annotated[int, Range(0, 10), "retries with the validation error fed back to the model"] = 2,
    seed: Seed = None,
    provider: ProviderChoice = "",
    model: ModelName = "",
    stream: Annotated[bool, "stream tokens as progress events (and stop at the next token when cancelled)"] = True,
) -> Annotated[Any, Json]:
    """Generate JSON that validates against a JSON Schema, repairing invalid output by asking again."""
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise NodeExecutionError(f"`schema` is not a valid JSON Schema: {error.message}", retryable=False) from None
    validator = validator_class(schema)
    instructions = (
        "Reply with one JSON value that conforms to this JSON Schema, and nothing else:\n"
        + json.dumps(schema, separators=(",", ":"))
    )
    conversation = _conversation(prompt, (), f"{system}\n\n{instructions}" if system else instructions)
    progress = ProgressStream(ctx, None)
    tries = max_repairs + 1
    budget = max_tokens
    for attempt in range(1, tries + 1):
        request = ChatRequest(
            messages=conversation,
            temperature=temperature,
            max_tokens=budget,
            seed=seed,
            model=model,
            json_schema=schema,
            stream=stream,
        )
        completion = _generate(ctx, provider, request, progress)
        data, problem = _json_problem(completion, validator)
        if problem is None:
            return data
        if completion.finish_reason == "length" and data is None:
            # cut off mid-JSON: the same question again with twice the tokens (up to four times `max_tokens`);
            # fed back, the cut reply only gets repeated and cut again
            budget = min(budget * 2, max_tokens * 4, 32768)
            continue
        if attempt < tries:
            conversation = [
                *conversation,
                {"role": "assistant", "content": completion.text},
                {"role": "user", "content": f"That reply does not match the schema: {problem}. "
                                            "Reply again with only the corrected JSON."},
            ]
    raise NodeExecutionError(
        f"the LLM's output did not match the schema after {tries} tries: {problem}",
        # the same seed gives the same output again; only fresh sampling can succeed on a retry
        retryable=seed is None and temperature > 0,
        details={"raw_output": completion.text, "validation_error": problem, "attempts": tries},
    )
