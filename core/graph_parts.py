"""What a graph is made of: node instances, graph inputs, and the values of node inputs.

A node input is a literal, a `Link` to another node's output `{"node": id, "output": name}`,
or an `InputRef` to a graph input `{"input": name}`. A literal object that has exactly the
shape of a link or a reference is written wrapped, `{"literal": {...}}`, so the round trip
is lossless. `nodeloom.core.document` reads these parts from JSON; `nodeloom.core.graph`
assembles them into a `Graph`. See docs/graph-format.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from nodeloom.core.ports import REQUIRED, Port, constraints_from_json, constraints_to_json
from nodeloom.core.spec import RetryPolicy
from nodeloom.core.types import PortType

FORMAT_VERSION = 1
_LINK_KEYS = frozenset({"node", "output"})
_INPUT_KEYS = frozenset({"input"})
_LITERAL_KEYS = frozenset({"literal"})
NODE_OPTION_KEYS = ("retry", "timeout", "queue", "label")


class Link(NamedTuple):
    """An edge: the value of `output` of node `node`.

    A named tuple of two strings: large graphs hold one per edge, and tuples of strings
    are left alone by the cyclic garbage collector.
    """

    node: str
    output: str

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "output": self.output}


class InputRef(NamedTuple):
    """A reference to the graph input `name`."""

    name: str

    def to_json(self) -> dict[str, str]:
        return {"input": self.name}


def parse_value(raw: Any) -> Any:
    """Read one node input from JSON: a Link, an InputRef, or a literal."""
    if isinstance(raw, dict):
        keys = raw.keys()
        if keys == _LINK_KEYS:
            return Link(raw["node"], raw["output"])
        if keys == _INPUT_KEYS:
            return InputRef(raw["input"])
        if keys == _LITERAL_KEYS:
            return raw["literal"]
    return raw


def literal_to_json(value: Any) -> Any:
    """The JSON form of one node input (a link, a reference, or a literal, wrapped when it looks like one)."""
    if isinstance(value, Link | InputRef):
        return value.to_json()
    if isinstance(value, dict) and value.keys() in (_LINK_KEYS, _INPUT_KEYS, _LITERAL_KEYS):
        return {"literal": value}
    to_json = getattr(value, "to_json", None)
    return to_json() if callable(to_json) else value


@dataclass(frozen=True)
class NodeInstance:
    """One node of a graph: its type, its inputs and per-node options. Immutable."""

    id: str
    type: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: overrides the spec's retry policy, e.g. {"max_attempts": 3}
    retry: Mapping[str, Any] | None = None
    #: overrides the spec's timeout, in seconds
    timeout: float | None = None
    #: overrides the distributed queue
    queue: str | None = None
    label: str | None = None
    #: the dict behind `inputs`, for core's own loops (iterating a mappingproxy is slow)
    _given: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        given = dict(self.inputs)
        object.__setattr__(self, "_given", given)
        object.__setattr__(self, "inputs", MappingProxyType(given))
        if self.retry is not None:
            object.__setattr__(self, "retry", MappingProxyType(dict(self.retry)))

    def links(self) -> list[tuple[str, Link]]:
        return [(port, value) for port, value in self._given.items() if isinstance(value, Link)]

    def retry_policy(self, default: RetryPolicy) -> RetryPolicy:
        if not self.retry:
            return default
        return RetryPolicy(**{**default.to_json(), **self.retry})

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type,
            "inputs": {name: literal_to_json(value) for name, value in self.inputs.items()},
        }
        for key in NODE_OPTION_KEYS:
            option = getattr(self, key)
            if option is not None:
                data[key] = dict(option) if isinstance(option, Mapping) else option
        return data


@dataclass
class GraphInput:
    """A named parameter of the graph, set per run."""

    name: str
    type: PortType
    default: Any = REQUIRED
    description: str = ""
    port: Port = field(init=False, repr=False, compare=False)
    raw_constraints: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.port = Port(
            self.name, self.type, self.default, constraints_from_json(self.raw_constraints), self.description
        )

    def to_json(self) -> dict[str, Any]:
        # a bound Json (or a List of one) is written flat: {"type": "Json", "schema": {...}, ...}
        written = self.type.to_json()
        data: dict[str, Any] = dict(written) if isinstance(written, dict) else {"type": written}
        if self.default is not REQUIRED:
            data["default"] = literal_to_json(self.default)
        if self.description:
            data["description"] = self.description
        data.update(constraints_to_json(self.port.constraints))
        return data
