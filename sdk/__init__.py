"""nodeloom: a graph runtime for AI workflows.

    from nodeloom import Graph, Text, run

    g = Graph("hello")
    name = g.input("name", Text, default="world")
    greet = g.add("text.template", template="Hello {{ name }}!", name=name)
    g.output("greeting", greet["text"])
    print(run(g, {"name": "tea"}).outputs["greeting"])

The public surface is small on purpose: build graphs (`Graph`, `node`, the port types),
load and validate them (`load`, `validate`), use a graph as a node (`register_graph`), run
them (`run`, `LocalExecutor`), write a run's outputs to a folder (`save_outputs`), and talk
to a nodeloom server (`Client`, `AsyncClient`: see docs/api.md).
Everything else lives in `nodeloom.core`, `nodeloom.node_registry` and `nodeloom.executors`.
"""

from __future__ import annotations

from nodeloom._outputs import write_outputs as save_outputs
from nodeloom._run import load, register_graph, run, validate
from nodeloom.core import (
    Any,
    ArtifactRef,
    Audio,
    AudioRef,
    Bool,
    Choices,
    File,
    FileRef,
    Float,
    Graph,
    GraphValidationError,
    Image,
    ImageRef,
    Int,
    Json,
    List,
    NodeContext,
    NodeloomError,
    Pattern,
    Range,
    RetryPolicy,
    RunConfig,
    RunFailedError,
    RunResult,
    Text,
    ValidationIssue,
    Video,
    VideoRef,
    node,
)
from nodeloom.executors import LocalExecutor, RunHandle

__version__ = "0.1.0"

#: the REST client lives beside the API (nodeloom.api.client) and needs only httpx; imported on first use
_CLIENT_NAMES = ("ApiClientError", "AsyncClient", "Client")


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        from nodeloom.api import client

        return getattr(client, name)
    raise AttributeError(f"module 'nodeloom' has no attribute {name!r}")

__all__ = [
    "Any",
    "ApiClientError",
    "ArtifactRef",
    "AsyncClient",
    "Audio",
    "AudioRef",
    "Bool",
    "Choices",
    "Client",
    "File",
    "FileRef",
    "Float",
    "Graph",
    "GraphValidationError",
    "Image",
    "ImageRef",
    "Int",
    "Json",
    "List",
    "LocalExecutor",
    "NodeContext",
    "NodeloomError",
    "Pattern",
    "Range",
    "RetryPolicy",
    "RunConfig",
    "RunFailedError",
    "RunHandle",
    "RunResult",
    "Text",
    "ValidationIssue",
    "Video",
    "VideoRef",
    "__version__",
    "load",
    "node",
    "register_graph",
    "run",
    "save_outputs",
    "validate",
]
