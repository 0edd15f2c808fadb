"""Webhook triggers: a delivery signed with the trigger's secret starts a run of its graph.

A sender signs the raw body as GitHub does: `X-Nodeloom-Signature: sha256=<hex HMAC-SHA256>`
keyed with the secret the trigger was created with; the comparison takes constant time. An
optional `X-Nodeloom-Delivery` id makes a delivery idempotent: sent again, it answers the run
it started the first time (a different body under the same id is refused with 409).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

import jsonpointer

from nodeloom.api.auth import Identity
from nodeloom.api.errors import ApiError
from nodeloom.api.schemas import Scope
from nodeloom.api.signing import SIGNATURE_HEADER, signature
from nodeloom.api.tables import TriggerRow
from nodeloom.core import ValidationIssue
from nodeloom.core.errors import GraphValidationError


def new_secret() -> str:
    """256 random bits, as hex: the HMAC key of a new trigger."""
    return secrets.token_hex(32)


def check_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise 401 unless `header` is the signature of `body` under `secret`."""
    if not header:
        raise ApiError(401, "signature_required", f"sign the body: {SIGNATURE_HEADER}: "
                       "sha256=<hex HMAC-SHA256 of the body with the trigger's secret>")
    if not hmac.compare_digest(signature(secret, body).encode(), header.strip().encode()):
        raise ApiError(401, "signature_mismatch",
                       f"{SIGNATURE_HEADER} does not match the body and the trigger's secret")


def parse_body(body: bytes) -> Any:
    """The delivery's JSON; 422 when it is not JSON."""
    try:
        return json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(422, "invalid_json", f"the delivery body is not JSON: {error}") from None


def delivery_inputs(trigger: TriggerRow, body: Any) -> dict[str, Any]:
    """The graph inputs a delivery gives: its object's keys, or the trigger's JSON pointers into it.

    Raises `GraphValidationError` listing every pointer that finds nothing (422); whether the
    values fit the graph's inputs is checked when the run is submitted.
    """
    if trigger.input_map is None:
        if not isinstance(body, Mapping):
            raise GraphValidationError([ValidationIssue(
                "invalid_body", f"the body must be a JSON object of graph inputs, not {type(body).__name__}",
                hint="or create the trigger with an input_map of JSON pointers")])
        return dict(body)
    inputs: dict[str, Any] = {}
    issues: list[ValidationIssue] = []
    for name, pointer in trigger.input_map.items():
        try:
            inputs[name] = jsonpointer.resolve_pointer(body, pointer)
        except jsonpointer.JsonPointerException as error:
            issues.append(ValidationIssue("missing_field", f"input {name!r}: the body has nothing at {pointer!r}",
                                          port=name, hint=str(error)))
    if issues:
        raise GraphValidationError(issues)
    return inputs


def check_input_map(input_map: Mapping[str, str], graph_inputs: Mapping[str, Any]) -> None:
    """422 listing each mapped name that is not a graph input and each malformed pointer."""
    issues: list[ValidationIssue] = []
    for name, pointer in input_map.items():
        if name not in graph_inputs:
            issues.append(ValidationIssue("unknown_input", f"the graph has no input {name!r}", port=name,
                                          hint=f"inputs: {', '.join(sorted(graph_inputs)) or 'none'}"))
        try:
            jsonpointer.JsonPointer(pointer)
        except jsonpointer.JsonPointerException as error:
            issues.append(ValidationIssue("invalid_pointer", f"input {name!r}: {pointer!r} is not a JSON pointer",
                                          port=name, hint=f"{error}; e.g. /product/title"))
    if issues:
        raise GraphValidationError(issues)


def trigger_identity(trigger: TriggerRow) -> Identity:
    """Who a delivery acts as: the trigger, in its project, allowed to start runs."""
    return Identity(key_id=f"trigger:{trigger.id}", project=trigger.project, scopes=frozenset({Scope.RUN}))
