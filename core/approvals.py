"""Human approval: what a run waiting at a `control.approve` node asks a person to review, and
the decision that lets it go on.

An approve node with no decision for it in the run's `RunConfig.approvals` raises
`ApprovalPending`: its attempt ends there (no thread is held), the node is `waiting`, a
`node.waiting` event carries the review, and the run settles as `waiting` once nothing else
can run. A decision (approve, approve with an edited value, or reject with a reason) is given
to a new execution of the run, in which the node returns the approved value or fails with
`ApprovalRejected`. The API stores the decisions and starts that execution (`RunService.approve`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.errors import NodeExecutionError, NodeloomError
from nodeloom.core.values import revive, value_to_json

#: the node types that wait for a decision
APPROVE_TYPES: Final = frozenset({"control.approve"})

Action = Literal["approve", "reject"]
ACTIONS: Final = ("approve", "reject")


def review_of(value: Any) -> dict[str, Any]:
    """What a person reviews: `{"kind": "text" | "artifact" | "json", "value": <its JSON form>}`."""
    if isinstance(value, ArtifactRef):
        return {"kind": "artifact", "value": value.to_json()}
    if isinstance(value, str):
        return {"kind": "text", "value": value}
    return {"kind": "json", "value": value_to_json(value, describe_unknown=True)}


class ApprovalPending(NodeloomError):
    """Raised by an approve node that has no decision yet: the node waits (not a failure)."""

    code = "approval_pending"

    def __init__(self, node: str, review: dict[str, Any], message: str, timeout: float | None,
                 on_timeout: Action) -> None:
        super().__init__(f"node {node!r} waits for approval", details={"node": node})
        self.node = node
        self.review = review
        self.prompt = message
        self.timeout = timeout
        self.on_timeout = on_timeout

    def event_values(self) -> tuple[Any, ...]:
        """The values of its `node.waiting` event, as `EVENT_FIELDS` orders them."""
        return self.review, self.prompt, self.timeout, self.on_timeout


class ApprovalRejected(NodeExecutionError):
    """The reviewer rejected the node's value; the node fails with their reason (never retried)."""

    code = "approval_rejected"


def decided_value(node: str, value: Any, decision: Mapping[str, Any]) -> Any:
    """The value an approve node returns under `decision`; raises `ApprovalRejected` for a rejection.

    A decision is `{"action": "approve" | "reject", "reason"?: text, "value"?: an edited value}`.
    """
    if decision.get("action") == "reject":
        reason = str(decision.get("reason") or "no reason given")
        raise ApprovalRejected(f"rejected: {reason}", node=node, retryable=False,
                               details={"reason": reason, "decided_by": decision.get("decided_by")})
    if "value" in decision:
        return revive(decision["value"])
    return value
