"""Turning command-line text into input values, and run outputs into files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nodeloom.core.artifacts import ArtifactRef, ArtifactStore
from nodeloom.core.errors import InputValueError
from nodeloom.core.events import RunResult
from nodeloom.core.graph import Graph
from nodeloom.core.types import ArtifactType, JsonType, List, PortType, ScalarType
from nodeloom.core.values import value_to_json

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


def _write_value(name: str, value: Any, out_dir: Path, artifacts: ArtifactStore) -> str | list[str]:
    if isinstance(value, ArtifactRef):
        target = out_dir / f"{name}{value.extension}"
        shutil.copyfile(artifacts.path(value), target)
        return target.name
    if isinstance(value, list) and value and all(isinstance(item, ArtifactRef) for item in value):
        return [_write_value(f"{name}_{index}", item, out_dir, artifacts) for index, item in enumerate(value)]  # type: ignore[misc]
    if isinstance(value, str):
        target = out_dir / f"{name}.txt"
        target.write_text(value, encoding="utf-8")
        return target.name
    target = out_dir / f"{name}.json"
    target.write_text(_dump(value), encoding="utf-8")
    return target.name


def _dump(value: Any) -> str:
    return json.dumps(value_to_json(value, describe_unknown=True), indent=2, ensure_ascii=False)


def write_outputs(result: RunResult, out_dir: Path, artifacts: ArtifactStore) -> dict[str, str | list[str]]:
    """Write each graph output into `out_dir` (text as .txt, JSON as .json, artifacts as files)
    and the whole run record as `run.json`. Returns output name -> file name(s)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: _write_value(name, value, out_dir, artifacts) for name, value in result.outputs.items()}
    record = result.to_json()
    record["files"] = files
    (out_dir / "run.json").write_text(_dump(record), encoding="utf-8")
    return files
