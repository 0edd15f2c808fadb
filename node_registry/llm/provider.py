"""The provider interface: what the LLM nodes ask of a backend, and how one is chosen.

A provider turns a `ChatRequest` into a `Completion`, streaming text to a `StreamObserver`
as it is generated (the observer reports progress and raises when the run is cancelled,
which stops generation at the next token). Nodes pick a provider by name: their
`provider` input, else the run setting `llm.provider`, else the environment variable
`NODELOOM_LLM_PROVIDER`, else `local` (the embedded SmolLM2 model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError

ProviderName = Literal["local", "openai"]
PROVIDER_NAMES: tuple[ProviderName, ...] = ("local", "openai")
PROVIDER_ENV = "NODELOOM_LLM_PROVIDER"
DEFAULT_PROVIDER: ProviderName = "local"


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to generate. `json_schema` asks for JSON constrained to that schema."""

    messages: Sequence[Mapping[str, str]]
    temperature: float = 0.7
    max_tokens: int = 512
    stop: Sequence[str] = ()
    seed: int | None = None
    #: the model name, for providers that serve several (ignored by `local`)
    model: str = ""
    json_schema: Mapping[str, Any] | None = None
    stream: bool = True


@dataclass(frozen=True)
class Completion:
    """What a provider generated."""

    text: str
    #: "stop", "length" (cut off at max_tokens), or what the backend reported
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class StreamObserver(Protocol):
    """Receives generated text as it streams; both methods raise to stop the generation."""

    def on_text(self, delta: str) -> None:
        """A piece of generated text (about one token)."""

    def wait(self, seconds: float) -> None:
        """Sleep before a retry, stopping early (by raising) if the run is cancelled."""


class LLMProvider(Protocol):
    """A backend that generates chat completions."""

    name: str

    def complete(self, request: ChatRequest, observer: StreamObserver) -> Completion:
        """Generate one completion, calling `observer.on_text` for each streamed piece."""
        ...


def provider_name(requested: str, ctx: NodeContext) -> ProviderName:
    """The provider a node uses: its input, else setting `llm.provider`, else the environment, else local."""
    source = "the provider input"
    name = requested.strip()
    if not name:
        name, source = str(ctx.config.settings.get("llm.provider") or "").strip(), "the setting llm.provider"
    if not name:
        name, source = os.environ.get(PROVIDER_ENV, "").strip(), f"${PROVIDER_ENV}"
    if not name:
        return DEFAULT_PROVIDER
    for known in PROVIDER_NAMES:
        if name == known:
            return known
    raise NodeExecutionError(
        f"unknown LLM provider {name!r} (from {source}); known providers: {', '.join(PROVIDER_NAMES)}",
        retryable=False,
        details={"provider": name},
    )


def open_provider(requested: str, ctx: NodeContext) -> LLMProvider:
    """The provider chosen for this node execution, configured from the run settings and environment."""
    name = provider_name(requested, ctx)
    # imported here so that a run using one backend never needs the other's libraries
    if name == "openai":
        try:
            from nodeloom.node_registry.llm.openai_compatible import OpenAICompatibleProvider
        except ImportError as error:
            raise NodeExecutionError(
                f"the openai LLM provider needs {error.name}; install it with `pip install 'nodeloom[llm]'`",
                retryable=False,
            ) from None
        return OpenAICompatibleProvider.from_settings(ctx.config.settings)
    from nodeloom.node_registry.llm.local import LocalProvider

    return LocalProvider.from_environment()
