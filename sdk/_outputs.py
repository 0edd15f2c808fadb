"""Writing a run's outputs into a folder: text as .txt, JSON as .json, artifacts as files, and run.json.

(`--set name=value` is read by `nodeloom._inputs`.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nodeloom.core.artifacts import ArtifactRef, ArtifactStore
from nodeloom.core.events import RunResult
from nodeloom.core.values import value_to_json


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
