"""`control.approve`: a person approves (or edits, or rejects) a value before the run goes on.

With no decision yet the node waits (see `nodeloom.core.approvals`): its attempt ends, the
run settles as `waiting` and holds no worker or thread until the decision comes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from nodeloom.core.approvals import ApprovalPending, decided_value, review_of
from nodeloom.core.context import NodeContext
from nodeloom.core.ports import Range
from nodeloom.core.spec import node


@node("control.approve", category="control", deterministic=False, output="value")
def control_approve(
    ctx: NodeContext,
    value: Annotated[Any, "what the reviewer sees and approves: a text, JSON, or an artifact"],
    message: Annotated[str, "what to tell the reviewer"] = "",
    timeout: Annotated[float, Range(0, 365 * 86400), "seconds to wait for a decision; 0 waits for ever"] = 0,
    on_timeout: Annotated[Literal["approve", "reject"], "the decision taken when the timeout passes"] = "reject",
) -> Any:
    """Pause the run until a person approves `value` (passed on as it is), approves an edited
    value (passed on instead), or rejects it (the node fails with their reason). The run waits
    without holding a worker, and goes on through `POST /v1/runs/{id}/approvals/{node}`,
    `Client.approve` or `nodeloom approve`."""
    decision = ctx.config.approvals.get(ctx.node_id)
    if decision is None:
        raise ApprovalPending(ctx.node_id, review_of(value), message, timeout or None, on_timeout)
    return decided_value(ctx.node_id, value, decision)
