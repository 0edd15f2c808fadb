"""Numeric nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from nodeloom.core.ports import Choices
from nodeloom.core.spec import node


@node("math.add")
def add(a: float, b: float = 0.0) -> float:
    """a + b."""
    return a + b


@node("math.multiply")
def multiply(a: float, b: float = 1.0) -> float:
    """a × b."""
    return a * b


@node("math.sum")
def total(
    values: Annotated[Sequence[float], "numbers to add up"] = (),
    **terms: Annotated[float, "extra numbers, one input each"],
) -> float:
    """The sum of `values` and of every extra input."""
    return float(sum(values) + sum(terms.values()))


@node("math.clamp")
def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    """`value` limited to [low, high]."""
    return min(max(value, low), high)


_COMPARISONS = {
    "<": float.__lt__, "<=": float.__le__, "==": float.__eq__,
    "!=": float.__ne__, ">=": float.__ge__, ">": float.__gt__,
}


@node("math.compare")
def compare(a: float, b: float = 0.0, op: Annotated[str, Choices(*_COMPARISONS)] = ">") -> bool:
    """Whether `a op b` holds (op: <, <=, ==, !=, >=, >): a condition for `control.branch`."""
    return bool(_COMPARISONS[op](float(a), float(b)))
