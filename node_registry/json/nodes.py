"""JSON nodes: pick a value by path, build an object, parse text."""

from __future__ import annotations

import json
from typing import Annotated, Any

from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.spec import node
from nodeloom.core.values import value_to_json


def _walk(data: Any, path: str) -> Any:
    if path in ("", "/", "."):
        return data
    if path.startswith("/"):  # JSON Pointer (RFC 6901)
        segments = [s.replace("~1", "/").replace("~0", "~") for s in path[1:].split("/")]
    else:
        segments = path.split(".")
    current = data
    for depth, segment in enumerate(segments):
        where = ".".join(segments[: depth + 1])
        if isinstance(current, dict):
            if segment not in current:
                keys = ", ".join(sorted(map(str, current))) or "(none)"
                raise KeyError(f"no key {segment!r} at {where!r}; keys there: {keys}")
            current = current[segment]
        elif isinstance(current, list):
            try:
                current = current[int(segment)]
            except (ValueError, IndexError):
                raise KeyError(
                    f"{segment!r} is not an index of the list at {where!r} (length {len(current)})"
                ) from None
        else:
            raise KeyError(f"cannot look up {segment!r} in a {type(current).__name__} at {where!r}")
    return current


@node("json.extract", output="value")
def json_extract(
    data: Annotated[Any, "a JSON value"],
    path: Annotated[str, "dotted path 'scenes.0.caption' or JSON Pointer '/scenes/0/caption'"],
    missing_ok: Annotated[bool, "return null instead of failing when the path is absent"] = False,
) -> Any:
    """Pick one value out of JSON data by path."""
    try:
        return _walk(data, path)
    except KeyError as error:
        if missing_ok:
            return None
        raise NodeExecutionError(f"json.extract: {error.args[0]}", retryable=False) from None


@node("json.object", output="data")
def json_object(**fields: Annotated[Any, "each input becomes a field, in the order given"]) -> dict[str, Any]:
    """Build a JSON object from named inputs (artifacts become their references)."""
    return {name: value_to_json(value, describe_unknown=True) for name, value in fields.items()}


@node("json.parse", output="data")
def json_parse(text: Annotated[str, "JSON text"]) -> Any:
    """Parse JSON text into a value."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise NodeExecutionError(
            f"json.parse: not JSON: {error.msg} at line {error.lineno}, column {error.colno}",
            retryable=False,
        ) from None
