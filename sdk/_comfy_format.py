"""Recognising a ComfyUI workflow file, kept light: every graph file read passes through it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from nodeloom.core.validate import ValidationIssue

Format = Literal["api", "ui"]


def workflow_format(data: Any) -> Format | None:
    """"api" or "ui" when `data` (parsed JSON) is a ComfyUI workflow, else None."""
    if not isinstance(data, Mapping) or not data:
        return None
    if isinstance(data.get("nodes"), list) and isinstance(data.get("links"), list):
        return "ui"
    inner = data.get("prompt")
    prompt: Mapping[Any, Any] = inner if isinstance(inner, Mapping) else data
    entries = list(prompt.values())
    if entries and all(isinstance(entry, Mapping) and isinstance(entry.get("class_type"), str) for entry in entries):
        return "api"
    return None


def comfy_file_issue(text: str | bytes, source: str) -> ValidationIssue | None:
    """The problem to report when a graph command is given a ComfyUI file (None for other files)."""
    raw = text.encode() if isinstance(text, str) else text
    if b"class_type" not in raw and b"widgets_values" not in raw:  # cheap: most graph files are not parsed twice
        return None
    try:
        found = workflow_format(json.loads(text))
    except ValueError:
        return None
    if found is None:
        return None
    return ValidationIssue(
        code="comfyui_workflow",
        message=f"this is a ComfyUI workflow ({found.upper() if found == 'api' else 'UI'} format): "
                "import it with `nodeloom import-comfy`",
        hint=f"nodeloom import-comfy {source} -o graph.json",
    )
