"""`load`, `validate` and `run`: the SDK's one-call entry points."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nodeloom._comfy_format import comfy_file_issue
from nodeloom.core.artifacts import LocalArtifactStore, default_artifact_root
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import RunConfig
from nodeloom.core.disk_cache import DiskResultCache
from nodeloom.core.errors import GraphFileError, GraphValidationError
from nodeloom.core.events import RunResult
from nodeloom.core.graph import Graph, as_graph
from nodeloom.core.issues import ValidationIssue
from nodeloom.core.preflight import check_before_run
from nodeloom.core.validate import validate_graph
from nodeloom.executors.base import EventCallback, Executor
from nodeloom.executors.local import LocalExecutor

_default_executor: LocalExecutor | None = None
_default_lock = threading.Lock()


def default_executor() -> LocalExecutor:
    """The process-wide local executor `run` and the CLI use.

    Its result cache is the one on disk (`$NODELOOM_HOME/cache.sqlite`), shared by every
    process, so a re-run in a new process recomputes only what changed.
    """
    global _default_executor
    with _default_lock:
        if _default_executor is None:
            artifacts = LocalArtifactStore(default_artifact_root())
            cache = DiskResultCache(artifacts)
            atexit.register(cache.flush)  # the hit counters and last-used times gathered since the last write
            _default_executor = LocalExecutor(artifacts=artifacts, cache=cache)
        return _default_executor


def load(path: str | os.PathLike[str]) -> Graph:
    """Read a graph from a JSON file. Raises `GraphValidationError` for a malformed file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphFileError(f"no graph file at {source}", details={"path": str(source)}) from None
    except (OSError, UnicodeDecodeError) as error:
        raise GraphFileError(f"cannot read {source}: {error}", details={"path": str(source)}) from None
    comfy_file = comfy_file_issue(text, str(source))
    if comfy_file is not None:
        raise GraphValidationError([comfy_file])
    return Graph.loads(text)


def register_graph(name: str, graph: Graph | Mapping[str, Any] | str, version: str | int = 1) -> str:
    """Make a graph usable as a node type in this process: returns `graph:NAME@VERSION`.

    Its input ports are the graph's inputs, its output ports the graph's outputs; a run
    expands it inline (its nodes appear as `NODE/INNER` in events).
    """
    from nodeloom.node_registry import default_registry

    return default_registry().add_graph(name, graph, version)


def validate(
    graph: Graph | Mapping[str, Any] | str | bytes, registry: NodeCatalog | None = None
) -> list[ValidationIssue]:
    """Every problem of a graph (JSON text, parsed JSON or a Graph); empty when it is valid."""
    if registry is None:
        from nodeloom.node_registry import default_registry

        registry = default_registry()
    return validate_graph(graph, registry)


def run(
    graph: Graph | Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
    *,
    executor: Executor | None = None,
    config: RunConfig | None = None,
    on_event: EventCallback | None = None,
    use_cache: bool = True,
    timeout: float | None = None,
    check: bool = True,
) -> RunResult:
    """Run a graph and wait for it.

    Raises `GraphValidationError` before anything runs when the graph or `inputs` are
    invalid, and (with `check=True`) `RunFailedError` when the run fails; the error's
    `result` still holds the outputs of the branches that finished. Results come from the
    executor's cache unless `use_cache=False` or `RunConfig(cache=None)`; `RunConfig(cache=...)`
    also takes another `ResultCache` for this run.
    """
    target = as_graph(graph)
    engine = executor or default_executor()
    check_before_run(target, _catalog_of(engine), inputs, config)
    handle = engine.submit(target, inputs, config=config, on_event=on_event, use_cache=use_cache)
    result = handle.result(timeout)
    return result.raise_for_status() if check else result


def _catalog_of(executor: Executor) -> NodeCatalog:
    """The node catalog `executor` runs with (both built-in executors keep it as `registry`)."""
    found = getattr(executor, "registry", None)
    if found is None:
        from nodeloom.node_registry import default_registry

        return default_registry()
    catalog: NodeCatalog = found
    return catalog
