"""How the drafter talks to an LLM: through the LLM pack's own providers, never a second client.

`local` is the embedded SmolLM2 model (`LocalProvider`); `openai` is any OpenAI-compatible
server (`OpenAICompatibleProvider`), its address from `base_url`, else
`$NODELOOM_OPENAI_BASE_URL`, its key from `$NODELOOM_OPENAI_API_KEY` or `$OPENAI_API_KEY`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodeloom.core.errors import NodeloomError
from nodeloom.node_registry.llm.provider import PROVIDER_NAMES, ChatRequest, LLMProvider


class UnknownProviderError(NodeloomError):
    """A provider name that is neither `local` nor `openai`."""


@dataclass(frozen=True)
class ProviderChoice:
    """Which LLM drafts: the provider's name, and for `openai` the server and model."""

    name: str = "local"
    base_url: str | None = None
    model: str = ""

    def open(self) -> LLMProvider:
        """The LLM pack's provider for this choice."""
        if self.name == "local":
            from nodeloom.node_registry.llm.local import LocalProvider

            return LocalProvider.from_environment()
        if self.name == "openai":
            from nodeloom.node_registry.llm.openai_compatible import (
                BASE_URL_ENV,
                DEFAULT_BASE_URL,
                OpenAICompatibleProvider,
            )

            base_url = self.base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
            return OpenAICompatibleProvider(base_url, model=self.model)
        raise UnknownProviderError(
            f"unknown LLM provider {self.name!r}; known providers: {', '.join(PROVIDER_NAMES)}",
            details={"provider": self.name},
        )


class _Relay:
    """A stream observer that hands each generated piece to a callback."""

    def __init__(self, on_text: Callable[[str], None] | None) -> None:
        self.on_text_callback = on_text

    def on_text(self, delta: str) -> None:
        if self.on_text_callback is not None:
            self.on_text_callback(delta)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


def generate(
    provider: LLMProvider,
    messages: Sequence[Mapping[str, str]],
    *,
    max_tokens: int = 400,
    temperature: float = 0.0,
    seed: int | None = 7,
    model: str = "",
    stop: Sequence[str] = (),
    json_schema: Mapping[str, Any] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """One chat completion's text. Raises the provider's `NodeExecutionError` when the backend fails."""
    request = ChatRequest(
        messages=list(messages),
        temperature=temperature,
        max_tokens=max_tokens,
        stop=tuple(stop),
        seed=seed,
        model=model,
        json_schema=json_schema,
        stream=on_text is not None,
    )
    return provider.complete(request, _Relay(on_text)).text

