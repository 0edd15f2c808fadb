"""Preflight: what a run will need from the machine and its policy, checked before any node runs.

Validation asks whether a graph is well formed; preflight asks whether this run of it can
succeed here: the programs its nodes call are installed, the folders it reads exist, the
output folder is writable, the network destinations it names are allowed by the run's
policy, and a `control.map` names a node type that exists and gives it items and inputs
that fit. Every problem is reported at once, as `ValidationIssue`s like validation's, so
a run fails in a moment instead of after the expensive nodes before the one that breaks.

Each node declares its own checks with the `preflight=` hook of `@node` (see
`nodeloom.core.spec.PreflightCheck`); preflight calls it with the inputs known before the
run: literals and graph-input values (given, or the defaults). An input that arrives over
a link is known only at run time, so a hook checks what it can and the node checks the rest
when it runs. `nodeloom validate`, `nodeloom run`, `nodeloom.run` and `POST /v1/runs` run it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import GraphValidationError, NodeloomError
from nodeloom.core.graph import Graph
from nodeloom.core.issues import ValidationIssue
from nodeloom.core.run_inputs import check_run_inputs
from nodeloom.core.spec import InputProblem, NodePreflight
from nodeloom.core.validate import analyze_graph, catalog_for

log = logging.getLogger("nodeloom.preflight")


def check_before_run(
    graph: Graph,
    catalog: NodeCatalog,
    inputs: Mapping[str, Any] | None = None,
    config: RunConfig | None = None,
) -> None:
    """Raise `GraphValidationError` with every problem of the run (`run_problems`) when preflight
    finds one; the graph's own validation is left to the executor otherwise."""
    if preflight(graph, catalog, inputs, config):
        raise GraphValidationError(run_problems(graph, catalog, inputs, config))


def run_problems(
    graph: Graph,
    catalog: NodeCatalog,
    inputs: Mapping[str, Any] | None = None,
    config: RunConfig | None = None,
) -> list[ValidationIssue]:
    """Everything wrong with a run of `graph` before it starts: the graph's validation problems,
    those of the input values, then preflight's. What `nodeloom run` and `nodeloom.run` check."""
    issues, _ = analyze_graph(graph, catalog)
    return issues + check_run_inputs(graph, inputs or {})[1] + preflight(graph, catalog, inputs, config)


def preflight(
    graph: Graph,
    catalog: NodeCatalog,
    inputs: Mapping[str, Any] | None = None,
    config: RunConfig | None = None,
) -> list[ValidationIssue]:
    """Every problem a run of `graph` with `inputs` and `config` would meet that can be seen before
    it starts (empty when there is none). Validation problems are not repeated here: nodes that
    do not validate are left out, and so are graph inputs without a valid value."""
    config = config or RunConfig()
    issues: list[ValidationIssue] = []
    catalog = catalog_for(graph, catalog)
    if config.out_dir is None and not _any_hook(graph, catalog):
        return issues  # the common case, kept cheap: nothing to check
    if config.out_dir is not None:
        problem = out_dir_problem(config.out_dir)
        if problem is not None:
            issues.append(ValidationIssue("out_dir_not_writable", problem, port="out_dir",
                                          hint="choose another folder with --out, or fix its permissions"))
    values, _ = check_run_inputs(graph, inputs or {})
    _, analyses = analyze_graph(graph, catalog, check_cycles=False)
    for node_id, (definition, literals, graph_inputs, links, _checked) in analyses.items():
        if definition.preflight is None:
            continue
        known = dict(literals)
        for port, name in graph_inputs:
            if name in values:
                known[port] = values[name]
        use = NodePreflight(node_id, known, config, catalog, frozenset(port for port, _, _ in links))
        try:
            problems = list(definition.preflight(use))
        except Exception as error:  # a pack's hook that breaks is a problem to report, never a traceback
            log.debug("preflight of %s failed", node_id, exc_info=True)
            problems = [InputProblem("preflight_error",
                                     f"the preflight check of {definition.spec.type} failed: "
                                     f"{type(error).__name__}: {error}")]
        issues.extend(ValidationIssue(p.code, p.message, node=node_id, port=p.port, hint=p.hint) for p in problems)
    return issues


def _any_hook(graph: Graph, catalog: NodeCatalog) -> bool:
    for instance in graph.nodes.values():
        definition = catalog.find(instance.type)
        if definition is not None and definition.preflight is not None:
            return True
    return False


def out_dir_problem(folder: Path) -> str | None:
    """Why files cannot be written to `folder` (or the folder cannot be created there), or None.

    Creates nothing: an existing folder is tried with a temporary file, a missing one by its
    nearest existing parent."""
    folder = Path(folder)
    what = f"cannot write to the output folder {folder}"
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            return f"{what}: no such folder"
        existing = existing.parent
    if not existing.is_dir():
        return f"{what}: {existing} is not a folder"
    if existing == folder:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            return f"{what}: {error.strerror or error}"
    elif not os.access(existing, os.W_OK | os.X_OK):
        return f"{what}: {existing} is not writable"
    return None


def problems_raised(check: Callable[[], object], code: str, port: str | None = None) -> list[InputProblem]:
    """A preflight hook's way to reuse the node's own check (finding a program, reading a folder):
    call `check`; the `NodeloomError` it raises (which says how to fix it) becomes the problem."""
    try:
        check()
    except NodeloomError as error:
        return [InputProblem(code, error.message, port=port)]
    return []
