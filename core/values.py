"""Run values in JSON: their JSON form, and storage outside the process that made them.

`value_to_json` is the JSON form of any run value (artifacts as references). Values stored
outside the process that made them are JSON inline when small, an artifact when large.

Used by the Celery executor (values travel between workers through Redis) and by the API's
durable result cache (values outlive the API process in its database). Artifact references
inside values are stored as their JSON form and come back as `ArtifactRef`. A node's outputs
whose JSON is larger than the inline limit are written to the artifact store as one JSON
document, and what is kept is `{"$spilled": <artifact reference>}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nodeloom.core.artifacts import ArtifactRef, ArtifactStore
from nodeloom.core.errors import NodeExecutionError

_SPILLED = "$spilled"


def value_to_json(value: Any, *, describe_unknown: bool = False) -> Any:
    """The JSON form of a run value: artifacts as references, containers recursively.

    A value with no JSON form (an in-process model handle) is returned as is, or, with
    `describe_unknown`, replaced by its `repr` so a record can always be written.
    """
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, list | tuple):
        return [value_to_json(item, describe_unknown=describe_unknown) for item in value]
    if isinstance(value, dict):
        return {key: value_to_json(item, describe_unknown=describe_unknown) for key, item in value.items()}
    if describe_unknown and not (value is None or isinstance(value, str | int | float | bool)):
        return repr(value)
    return value


def to_json_text(values: Mapping[str, Any], node_id: str | None = None) -> str:
    """JSON text of named values; a value with no JSON form (an in-process model handle) is refused."""
    try:
        return json.dumps(value_to_json(dict(values)), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise NodeExecutionError(
            f"a value has no JSON form, so it cannot travel between Celery workers: {error}",
            node=node_id,
            retryable=False,
            details={"hint": "return artifacts (ctx.put_bytes) or JSON values from nodes run on Celery"},
        ) from error


def revive(value: Any) -> Any:
    """Turn artifact references in parsed JSON back into `ArtifactRef` values."""
    if isinstance(value, dict):
        if ArtifactRef.looks_like_json(value):
            return ArtifactRef.from_json(value)
        return {key: revive(item) for key, item in value.items()}
    if isinstance(value, list):
        return [revive(item) for item in value]
    return value


def encode_outputs(outputs: Mapping[str, Any], artifacts: ArtifactStore, inline_limit: int, node_id: str) -> str:
    """What the run store keeps for a node's outputs: the JSON itself, or a reference to it when large."""
    text = to_json_text(outputs, node_id)
    if len(text) <= inline_limit:
        return text
    ref = artifacts.put_bytes(text.encode(), "application/json")
    return json.dumps({_SPILLED: ref.to_json()})


def decode_outputs(text: str, artifacts: ArtifactStore) -> dict[str, Any]:
    data = json.loads(text)
    if _SPILLED in data:
        data = json.loads(artifacts.read_bytes(ArtifactRef.from_json(data[_SPILLED])))
    revived: dict[str, Any] = revive(data)
    return revived
