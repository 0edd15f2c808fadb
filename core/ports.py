"""Ports: a name, a type, a default, constraints and a description.

Constraints are small frozen values used in `Annotated` hints of node functions:
`steps: Annotated[int, Range(1, 150), "denoising steps"] = 20`.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.core.types import PortType


class _Required:
    """Marker for a port without a default: the graph must give it a value."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive numeric bounds; either side may be open (None)."""

    min: float | None = None
    max: float | None = None

    def check(self, value: Any) -> tuple[str, str] | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None  # the type check reports non-numbers
        if self.min is not None and value < self.min:
            return "out_of_range", f"{value} is below the minimum {self.min}"
        if self.max is not None and value > self.max:
            return "out_of_range", f"{value} is above the maximum {self.max}"
        return None

    def describe(self) -> str:
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "+inf" if self.max is None else f"{self.max:g}"
        return f"allowed range [{low}, {high}]"


@dataclass(frozen=True, slots=True)
class Choices:
    """The value must be one of these."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        flat = values[0] if len(values) == 1 and isinstance(values[0], list | tuple) else values
        object.__setattr__(self, "values", tuple(flat))

    def check(self, value: Any) -> tuple[str, str] | None:
        if value in self.values:
            return None
        return "not_in_choices", f"{value!r} is not one of {list(self.values)!r}"

    def describe(self) -> str:
        return f"allowed values {list(self.values)!r}"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A text value must match this regular expression (whole string)."""

    regex: str
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.regex))

    def check(self, value: Any) -> tuple[str, str] | None:
        if not isinstance(value, str) or self._compiled.fullmatch(value):
            return None
        return "pattern_mismatch", f"{value!r} does not match the pattern {self.regex!r}"

    def describe(self) -> str:
        return f"pattern {self.regex!r}"


Constraint = Range | Choices | Pattern


@dataclass(frozen=True)
class Port:
    """One input or output of a node (or one input of a graph)."""

    name: str
    type: PortType
    default: Any = REQUIRED
    constraints: tuple[Constraint, ...] = ()
    description: str = ""

    #: literals that need no check: their Python type -> the conversion `type.coerce` would do
    plain_literals: Mapping[builtins.type, Callable[[Any], Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.constraints:
            object.__setattr__(self, "plain_literals", getattr(self.type, "literal_converters", {}))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check_value(self, value: Any) -> tuple[str, str, str | None] | None:
        """Check a value for this port: `(code, message, hint)` for the first problem, or None."""
        if value is None and self.default is None:
            return None  # an optional port explicitly left empty
        problem = self.type.check_value(value)
        if problem is not None:
            return "type_mismatch", problem, None
        for constraint in self.constraints:
            found = constraint.check(value)
            if found is not None:
                return found[0], found[1], constraint.describe()
        return None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = dict(self.type.json_schema())
        schema["x-nodeloom-type"] = self.type.to_json()
        if self.description:
            schema["description"] = self.description
        if not self.required:
            schema["default"] = _json_default(self.default)
        for constraint in self.constraints:
            if isinstance(constraint, Range):
                if constraint.min is not None:
                    schema["minimum"] = constraint.min
                if constraint.max is not None:
                    schema["maximum"] = constraint.max
            elif isinstance(constraint, Choices):
                schema["enum"] = list(constraint.values)
            else:
                schema["pattern"] = constraint.regex
        return schema


def _json_default(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    return to_json() if callable(to_json) else value


def constraints_from_json(data: dict[str, Any]) -> tuple[Constraint, ...]:
    """Read `min`/`max`/`choices`/`pattern` keys of a graph input declaration."""
    found: list[Constraint] = []
    if "min" in data or "max" in data:
        found.append(Range(data.get("min"), data.get("max")))
    if "choices" in data:
        found.append(Choices(*data["choices"]))
    if "pattern" in data:
        found.append(Pattern(data["pattern"]))
    return tuple(found)


def constraints_to_json(constraints: Sequence[Constraint]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for constraint in constraints:
        if isinstance(constraint, Range):
            if constraint.min is not None:
                data["min"] = constraint.min
            if constraint.max is not None:
                data["max"] = constraint.max
        elif isinstance(constraint, Choices):
            data["choices"] = list(constraint.values)
        else:
            data["pattern"] = constraint.regex
    return data
