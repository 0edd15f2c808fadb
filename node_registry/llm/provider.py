"""How an LLM provider is chosen and opened.

Nodes pick a provider by name: their `provider` input, else the run setting `llm.provider`,
else the environment variable `NODELOOM_LLM_PROVIDER`, else `local` (the embedded SmolLM2
model). The interface a provider implements is in `nodeloom.node_registry.llm.chat`; the
backends (`local.py`, `openai_compatible.py`) import only that, so none imports this module.
"""

from __future__ import annotations

import os
from typing import Literal

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.node_registry.llm.chat import ChatRequest, Completion, LLMProvider, StreamObserver

#: the interface, importable from here as well (it was defined here before chat.py)
__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDER_ENV",
    "PROVIDER_NAMES",
    "ChatRequest",
    "Completion",
    "LLMProvider",
    "ProviderName",
    "StreamObserver",
    "open_provider",
    "provider_name",
]

ProviderName = Literal["local", "openai"]
PROVIDER_NAMES: tuple[ProviderName, ...] = ("local", "openai")
PROVIDER_ENV = "NODELOOM_LLM_PROVIDER"
DEFAULT_PROVIDER: ProviderName = "local"


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
