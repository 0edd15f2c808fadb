"""Branches: `control.branch` (true or false), `control.switch` (one of several cases) and
`control.first` (the join: the first input that arrived).

The output a conditional node does not take carries `NOT_TAKEN`; the executor drops it and
skips the nodes that link to it, for the reason `branch` (see `nodeloom.core.branches`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from nodeloom.core.branches import NOT_TAKEN, SWITCH_CASES, switch_outputs
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.spec import InputProblem, node


class Branched(NamedTuple):
    true: Any
    false: Any


@node("control.branch", category="control")
def control_branch(condition: bool, value: Any) -> Branched:
    """Send `value` out on `true` when `condition` holds, else on `false`; the other output is
    not taken, so the nodes that use it are skipped (reason `branch`), not failed."""
    return Branched(value, NOT_TAKEN) if condition else Branched(NOT_TAKEN, value)


class Switched(NamedTuple):
    case_0: Any
    case_1: Any
    case_2: Any
    case_3: Any
    case_4: Any
    case_5: Any
    case_6: Any
    case_7: Any
    default: Any


def check_switch(values: Mapping[str, Any], catalog: Any) -> Iterator[InputProblem]:
    cases = values.get("cases")
    if cases is None:
        return
    if not isinstance(cases, list) or not all(isinstance(case, str) for case in cases):
        yield InputProblem("type_mismatch", "cases must be a list of texts", "cases")
    elif not 1 <= len(cases) <= SWITCH_CASES:
        yield InputProblem("out_of_range", f"a switch has 1 to {SWITCH_CASES} cases, not {len(cases)}", "cases",
                           "chain a second switch on `default` for more")
    elif len(set(cases)) != len(cases):
        yield InputProblem("invalid_format", "cases must be distinct", "cases")


@node("control.switch", category="control", check=check_switch)
def control_switch(key: str, value: Any, cases: list[str]) -> Switched:
    """Send `value` out on `case_N`, where `cases[N]` equals `key`, or on `default` when no case
    matches. `cases` is a literal list of up to 8 texts; every other output is not taken."""
    names = switch_outputs(SWITCH_CASES)
    chosen = f"case_{cases.index(key)}" if key in cases else "default"
    return Switched(**{name: value if name == chosen else NOT_TAKEN for name in names})


class Arrived(NamedTuple):
    value: Any
    port: str


@node("control.first", category="control")
def control_first(**inputs: Any) -> Arrived:
    """The first of its inputs that arrived, in the order they are written, and that input's
    name: the join after a branch. Inputs whose source was skipped by a branch are left out;
    the node is skipped only when none arrived."""
    for port, value in inputs.items():
        return Arrived(value, port)
    raise NodeExecutionError("control.first got no input", retryable=False)
