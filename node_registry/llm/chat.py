"""The provider interface: what the LLM nodes ask of a backend.

A provider turns a `ChatRequest` into a `Completion`, streaming text to a `StreamObserver`
as it is generated (the observer reports progress and raises when the run is cancelled,
which stops generation at the next token). `nodeloom.node_registry.llm.provider` chooses
and opens one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


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
