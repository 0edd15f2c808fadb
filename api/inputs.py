"""Bounds on what a request may carry, checked at the edge so no bad value reaches the database.

JSON values: nesting at most `MAX_DEPTH` levels (a port type such as `List[List[...]]` counts
its brackets), text that is valid Unicode (no lone UTF-16 surrogates, which JSON's `\\udfff`
escapes can produce and which no UTF-8 column, response or template can hold).
Pydantic only, like `nodeloom.api.schemas`, which uses it.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError

#: the deepest nesting of a JSON value (objects, lists, `List[...]` port types) a request may send
MAX_DEPTH = 64
#: the largest integer a version, offset or event seq may be (PostgreSQL INTEGER)
MAX_INT = 2**31 - 1


def _is_valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "]":
            depth = max(0, depth - 1)
    return deepest


def _problem(value: Any, path: str, depth: int, types: bool) -> tuple[str, str, str] | None:
    """(error type, path, message) of the first value out of bounds in `value`, else None;
    `types`: strings may be port types, whose brackets count as nesting."""
    if depth > MAX_DEPTH:
        return "too_deep", path, f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        if not _is_valid_unicode(value):
            return "invalid_unicode", path, "not valid Unicode (a lone UTF-16 surrogate)"
        if types and "[" in value and depth + _bracket_depth(value) > MAX_DEPTH:
            return "too_deep", path, f"brackets nested deeper than {MAX_DEPTH} levels"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not _is_valid_unicode(str(key)):
                return "invalid_unicode", f"{path}.?", "a key is not valid Unicode (a lone UTF-16 surrogate)"
            found = _problem(item, f"{path}.{key}", depth + 1, types)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _problem(item, f"{path}.{index}", depth + 1, types)
            if found is not None:
                return found
    return None


def bounded(field: str, types: bool = False) -> Any:
    """A pydantic after-validator for field `field`: the value within the bounds above, else a
    422 whose issue names the path (`inputs.text`) and the error type (`invalid_unicode`, `too_deep`).
    `types`: the value is a graph document, whose port types (`List[...]`) count their brackets."""

    def check(value: Any) -> Any:
        found = _problem(value, field, 0, types)
        if found is not None:
            kind, path, message = found
            raise PydanticCustomError(kind, "{path}: {problem}", {"path": path, "problem": message})
        return value

    return check
