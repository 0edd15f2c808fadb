"""Reading `--set name=value` from the command line into values of the graph's input types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nodeloom.core.artifacts import ArtifactStore
from nodeloom.core.errors import InputValueError
from nodeloom.core.graph import Graph
from nodeloom.core.types import ArtifactType, JsonType, List, PortType, ScalarType

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _read_file_argument(text: str, name: str) -> str:
    path = Path(text[1:])
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputValueError(f"--set {name}=@{path}: cannot read the file: {error.strerror}") from None


def parse_value(port_type: PortType, text: str, name: str, artifacts: ArtifactStore) -> Any:
    """Read the text of `--set name=text` as a value of `port_type`.

    `@path` reads a Text or Json value from a file; artifact types take a file path.
    """
    if isinstance(port_type, ArtifactType):
        path = Path(text[1:] if text.startswith("@") else text)
        if not path.is_file():
            raise InputValueError(f"--set {name}: {port_type.name} inputs take a file path; {path} is not a file")
        return artifacts.put_file(path)
    if text.startswith("@"):
        text = _read_file_argument(text, name)
    if isinstance(port_type, ScalarType):
        if port_type.schema_type == "string":
            return text
        if port_type.schema_type == "boolean":
            lowered = text.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise InputValueError(f"--set {name}: expected true or false, got {text!r}")
        try:
            return int(text) if port_type.schema_type == "integer" else float(text)
        except ValueError:
            raise InputValueError(f"--set {name}: expected {port_type.name}, got {text!r}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if isinstance(port_type, JsonType | List):
            raise InputValueError(f"--set {name}: expected JSON for {port_type.name}: {error.msg}") from None
        return text  # Any: plain text is a fine value


def parse_assignments(graph: Graph, assignments: list[str], artifacts: ArtifactStore) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputValueError(f"--set takes name=value, got {assignment!r}")
        declared = graph.inputs.get(name)
        if declared is None:
            known = ", ".join(sorted(graph.inputs)) or "(none)"
            raise InputValueError(f"--set {name}: the graph has no input {name!r}; inputs: {known}")
        values[name] = parse_value(declared.type, text, name, artifacts)
    return values
