"""Checking the values given for a run against the graph's declared inputs.

A value must have the input's type (a `Json` input bound to a JSON Schema checks the value
against the schema) and meet its constraints; an input left out takes its default, or is
reported `missing_input` when it has none; a value for an input the graph does not declare
is `unknown_input`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodeloom.core.graph import Graph
from nodeloom.core.issues import ValidationIssue, json_kind, one_of


def check_run_inputs(graph: Graph, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[ValidationIssue]]:
    """Check the values given for a run against the graph's inputs; apply defaults.

    Returns the values the run uses (coerced to their types) and the problems found.
    """
    issues: list[ValidationIssue] = []
    resolved: dict[str, Any] = {}
    for name in values:
        if name not in graph.inputs:
            issues.append(
                ValidationIssue(
                    "unknown_input",
                    f"the graph has no input {name!r}",
                    port=name,
                    hint=f"inputs: {one_of(graph.inputs)}",
                )
            )
    for name, declared in graph.inputs.items():
        if name in values:
            value = values[name]
        elif declared.port.required:
            issues.append(
                ValidationIssue(
                    "missing_input",
                    f"graph input {name!r} ({declared.type.name}) needs a value",
                    port=name,
                    expected=declared.type.name,
                    hint=declared.description or None,
                )
            )
            continue
        else:
            value = declared.default
        problem = declared.port.check_value(value)
        if problem is not None:
            code, message, hint = problem
            mismatch = code == "type_mismatch"
            issues.append(ValidationIssue(code, f"graph input {name!r}: {message}", port=name, hint=hint,
                                          expected=declared.type.name if mismatch else None,
                                          received=json_kind(value) if mismatch else None))
            continue
        resolved[name] = declared.type.coerce(value) if value is not None else None
    return resolved, issues
