"""The issue model: one problem of a graph or of a run's inputs, as data.

Validation (`nodeloom.core.validate`), the document reader (`nodeloom.core.document`),
the run-input check (`nodeloom.core.run_inputs`) and a node's own check of its literal
inputs (`@node(check=...)`) all report `ValidationIssue`s; this module imports nothing else
of nodeloom, so every layer can take it. Issue codes:

| code | meaning |
|---|---|
| `malformed_json` | the text is not JSON (line and column in the message) |
| `invalid_format` | a part of the document has the wrong shape |
| `unsupported_format_version` | written by a newer nodeloom |
| `invalid_id` | a node id or input name has characters that are not allowed |
| `invalid_type` | a graph input declares an unknown type (or an invalid JSON Schema) |
| `unknown_node_type` | no node of this type is registered (hint: nearest names) |
| `unknown_port` | an input given that the node does not have, or a link to an output it does not have |
| `missing_input` | a required input has no value |
| `dangling_link` | a link to a node, or a reference to a graph input, that does not exist |
| `type_mismatch` | a value or link of the wrong type (expected and received are set) |
| `out_of_range`, `not_in_choices`, `pattern_mismatch` | a value breaks a constraint |
| `cycle` | nodes depend on each other in a loop (the loop is in the message) |
| `no_outputs` | the graph declares no outputs |
| `unknown_input` | a run was given a value for an input the graph does not declare |
| `branch_dependent_output` | a graph output not marked optional is absent for some choice of the branches |
| `unknown_graph` | a `graph:NAME@VERSION` node names a graph or version that no graph source has |
| `graph_recursion` | a graph used as a node contains itself, directly or through other graphs |
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ISSUE_CODES = frozenset(
    {
        "malformed_json",
        "invalid_format",
        "unsupported_format_version",
        "invalid_id",
        "invalid_type",
        "unknown_node_type",
        "unknown_port",
        "missing_input",
        "dangling_link",
        "type_mismatch",
        "out_of_range",
        "not_in_choices",
        "pattern_mismatch",
        "cycle",
        "no_outputs",
        "unknown_input",
        "branch_dependent_output",
        "unknown_graph",
        "graph_recursion",
    }
)


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem: what (`code`, `message`), where (`node`, `port`), and how to fix it (`hint`)."""

    code: str
    message: str
    node: str | None = None
    port: str | None = None
    hint: str | None = None
    expected: str | None = None
    received: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "node": self.node,
            "port": self.port,
            "hint": self.hint,
            "expected": self.expected,
            "received": self.received,
        }

    def __str__(self) -> str:
        where = ".".join(part for part in (self.node, self.port) if part)
        text = f"[{self.code}] {where + ': ' if where else ''}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class InputProblem(ValidationIssue):
    """A problem a node's own `check` finds in its literal inputs; validation places it at the node."""

    __slots__ = ()

    def __init__(self, code: str, message: str, port: str | None = None, hint: str | None = None) -> None:
        super().__init__(code, message, port=port, hint=hint)


def for_node(issue: ValidationIssue, node: str) -> ValidationIssue:
    """`issue`, placed at `node` (a node's own check reports issues without knowing its id)."""
    return ValidationIssue(issue.code, issue.message, node, issue.port, issue.hint, issue.expected, issue.received)


def nearest(word: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The names among `candidates` closest to `word`, for a "did you mean" hint."""
    return difflib.get_close_matches(word, list(candidates), n=limit, cutoff=0.5)


def one_of(names: Iterable[str]) -> str:
    """`names` sorted and comma-separated, for a hint that lists what exists."""
    listed = sorted(names)
    return ", ".join(listed) if listed else "(none)"


def json_kind(value: Any) -> str:
    """The type name of a JSON value, for an issue's `received`."""
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "Text"
    if isinstance(value, list):
        return "List"
    if value is None:
        return "null"
    return "Json"
