"""nodeloom: a graph runtime for AI workflows.

    from nodeloom import Graph, Text, run

    g = Graph("hello")
    name = g.input("name", Text, default="world")
    greet = g.add("text.template", template="Hello {{ name }}!", name=name)
    g.output("greeting", greet["text"])
    print(run(g, {"name": "tea"}).outputs["greeting"])

The public surface is small on purpose: build graphs (`Graph`, `node`, the port types),
load and validate them (`load`, `validate`), run them (`run`, `LocalExecutor`) and write
a run's outputs to a folder (`save_outputs`).
Everything else lives in `nodeloom.core`, `nodeloom.node_registry` and `nodeloom.executors`.
"""

from __future__ import annotations

from nodeloom._outputs import write_outputs as save_outputs
from nodeloom._run import load, run, validate
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

__all__ = [
    "Any",
    "ArtifactRef",
    "Audio",
    "AudioRef",
    "Bool",
    "Choices",
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
    "run",
    "save_outputs",
    "validate",
]
