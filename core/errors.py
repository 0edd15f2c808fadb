"""The exception hierarchy: one root, `NodeloomError`, so callers can catch broadly or precisely.

Every error carries a stable `code` and can render itself as the uniform error body
`{"error": {"code", "message", "details"}}` used by the CLI and the REST API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodeloom.core.events import RunResult
    from nodeloom.core.issues import ValidationIssue


class NodeloomError(Exception):
    """Root of every error nodeloom raises on purpose."""

    code = "nodeloom_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class GraphValidationError(NodeloomError):
    """A graph (or the values given for its inputs) failed validation; `issues` lists every problem."""

    code = "graph_invalid"
    #: what was invalid, for the message (a subclass checks something else than a graph)
    subject = "graph"

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        first = self.issues[0].message if self.issues else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(
            f"{self.subject} is invalid: {first}{more}",
            details={"issues": [issue.to_dict() for issue in self.issues]},
        )


class UnknownNodeTypeError(NodeloomError):
    """A node type name is not in the registry."""

    code = "unknown_node_type"

    def __init__(self, type_name: str, suggestions: Sequence[str] = ()) -> None:
        self.type_name = type_name
        self.suggestions = list(suggestions)
        hint = f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown node type {type_name!r}{hint}",
            details={"type": type_name, "suggestions": self.suggestions},
        )


class NodeDefinitionError(NodeloomError):
    """A node was declared incorrectly (bad type name, unsupported annotation, ...)."""

    code = "node_definition_invalid"


class NodeExecutionError(NodeloomError):
    """A node raised, returned a value that does not match its outputs, or got an invalid input."""

    code = "node_failed"

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        retryable: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        merged = {"node": node, **(details or {})}
        super().__init__(message, details=merged)
        self.node = node
        self.retryable = retryable


class NodeTimeoutError(NodeExecutionError):
    """A node ran past its timeout."""

    code = "node_timeout"


class RunCancelledError(NodeloomError):
    """Raised inside a node (at its next progress check) when its run was cancelled."""

    code = "run_cancelled"


class RunNotFoundError(NodeloomError):
    """No run with this id is known to the executor."""

    code = "run_not_found"


class RunFailedError(NodeloomError):
    """A run ended failed or cancelled; `result` holds what it produced."""

    code = "run_failed"

    def __init__(self, result: RunResult) -> None:
        self.result = result
        super().__init__(result.failure_message(), details={"run_id": result.run_id, "status": result.status.value,
                                                            "errors": result.errors()})


class RunTimeoutError(NodeloomError, TimeoutError):
    """Waiting for a run (or its next event) took longer than the caller's timeout; the run goes on."""

    code = "run_timeout"

    def __init__(self, message: str, *, run_id: str, timeout: float | None) -> None:
        super().__init__(message, details={"run_id": run_id, "timeout": timeout})
        self.run_id = run_id


class GraphFileError(NodeloomError):
    """A graph file is missing or cannot be read."""

    code = "graph_file_unreadable"


class UsageError(NodeloomError):
    """A command was used wrongly: an option's value, an output folder that cannot be written, a missing extra."""

    code = "usage_error"


class InputValueError(NodeloomError):
    """A value given for a graph input on the command line (`--set name=value`) cannot be read."""

    code = "invalid_input_value"


class NodeNotRegisteredError(NodeloomError):
    """A graph uses node types the executor's workers cannot run (defined locally, not registered)."""

    code = "node_not_registered"


def error_record(error: BaseException) -> tuple[dict[str, Any], bool]:
    """The JSON record of a failed node attempt, and whether trying again may help.

    nodeloom's own errors say whether they are retryable; a foreign exception may be
    transient, so it is; a cancellation never is.
    """
    if isinstance(error, NodeloomError):
        info: dict[str, Any] = {"code": error.code, "message": error.message}
        info.update({k: v for k, v in error.details.items() if k != "node" and v is not None})
        retryable = bool(getattr(error, "retryable", False)) and not isinstance(error, RunCancelledError)
        return info, retryable
    kind = type(error).__name__
    return {"code": "node_error", "message": f"{kind}: {error}", "exception": kind}, True


class ArtifactNotFoundError(NodeloomError):
    """An artifact reference points at content the store does not hold."""

    code = "artifact_not_found"


class ArtifactStoreError(NodeloomError):
    """An artifact store cannot be opened or holds content that does not match its digest."""

    code = "artifact_store_error"
