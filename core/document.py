"""Reading a graph document: JSON text or parsed JSON into the parts of a graph, every problem of shape at once.

`read_document` checks the document's shape only (names, node objects, input
declarations, links); `nodeloom.core.validate` checks the graph against a node catalog.
`nodeloom.core.graph.Graph.from_json` assembles what this reads into a `Graph`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nodeloom.core.graph_parts import GraphInput, InputRef, Link, NodeInstance, parse_value
from nodeloom.core.issues import ValidationIssue
from nodeloom.core.ports import REQUIRED
from nodeloom.core.spec import RetryPolicy
from nodeloom.core.types import PortType, parse_type

#: the version of the graph document format this nodeloom writes (and the newest it reads)
FORMAT_VERSION = 1
#: a node id; `/` separates the path of a graph node's inner node (`ad/storyboard`)
NODE_ID_PATTERN = re.compile(r"^(?=.{1,200}$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})*$")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: the keys a graph input declaration may have (`schema` binds a Json type, `item` a List's item type)
INPUT_KEYS = ("type", "schema", "item", "default", "description", "min", "max", "choices", "pattern")


@dataclass
class GraphDocument:
    """What a graph document holds, read and checked for shape."""

    name: str = "graph"
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: list[GraphInput] = field(default_factory=list)
    nodes: list[NodeInstance] = field(default_factory=list)
    outputs: dict[str, Link] = field(default_factory=dict)
    #: outputs marked `"optional": true`: absent from a result when a branch skipped their source
    optional_outputs: set[str] = field(default_factory=set)


def parse_json_text(text: str | bytes) -> tuple[Any, list[ValidationIssue]]:
    try:
        return json.loads(text), []
    except json.JSONDecodeError as error:
        return None, [
            ValidationIssue(
                "malformed_json",
                f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                hint="check for a missing comma, quote or bracket near that position",
            )
        ]
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return None, [ValidationIssue("malformed_json", f"not valid JSON: {error}")]


def _format_issue(message: str, node: str | None = None, port: str | None = None) -> ValidationIssue:
    return ValidationIssue("invalid_format", message, node=node, port=port)


def _read_graph_input(name: str, raw: Any, issues: list[ValidationIssue]) -> GraphInput | None:
    where = f"graph input {name!r}"
    if not NAME_PATTERN.match(name):
        issues.append(
            ValidationIssue(
                "invalid_id", f"{where}: names are letters, digits and underscores", port=name
            )
        )
        return None
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        issues.append(_format_issue(f'{where} must be an object such as {{"type": "Text"}}', port=name))
        return None
    unknown_keys = set(raw) - set(INPUT_KEYS)
    if unknown_keys:
        issues.append(_format_issue(f"{where}: unknown keys {sorted(unknown_keys)}; allowed: {', '.join(INPUT_KEYS)}",
                                    port=name))
        return None
    port_type = _read_input_type(where, raw, name, issues)
    if port_type is None:
        return None
    description = raw.get("description", "")
    if not isinstance(description, str):
        issues.append(_format_issue(f"{where}: description must be a string", port=name))
        description = ""
    constraints = {k: raw[k] for k in ("min", "max", "choices", "pattern") if k in raw}
    for key in ("min", "max"):
        if key in constraints and (
            not isinstance(constraints[key], int | float) or isinstance(constraints[key], bool)
        ):
            issues.append(_format_issue(f"{where}: {key} must be a number", port=name))
            return None
    if "choices" in constraints and not isinstance(constraints["choices"], list):
        issues.append(_format_issue(f"{where}: choices must be a list", port=name))
        return None
    if "pattern" in constraints:
        try:
            re.compile(constraints["pattern"])
        except (re.error, TypeError) as error:
            issues.append(_format_issue(f"{where}: pattern is not a regular expression: {error}", port=name))
            return None
    try:
        declared = GraphInput(name, port_type, parse_value(raw["default"]) if "default" in raw else REQUIRED,
                              description, constraints)
    except (TypeError, ValueError) as error:
        issues.append(_format_issue(f"{where}: {error}", port=name))
        return None
    if not declared.port.required and declared.default is not None:
        problem = declared.port.check_value(declared.default)
        if problem is not None:
            code, message, hint = problem
            issues.append(ValidationIssue(code, f"{where}: default {message}", port=name, hint=hint))
    return declared


def _read_input_type(where: str, raw: dict[str, Any], name: str, issues: list[ValidationIssue]) -> PortType | None:
    """A graph input's type: `"type"` is a name or a type object; `schema` (of a `Json`) and `item` (of a `List`)
    may stand beside the name, the form the writer uses."""
    kind = raw.get("type", "Any")
    spec: Any = kind
    for key, owner in (("schema", "Json"), ("item", "List")):
        if key in raw:
            if kind != owner:
                issues.append(_format_issue(f'{where}: "{key}" belongs to a {owner} type, not {kind!r}', port=name))
                return None
            spec = {"type": kind, key: raw[key]}
    try:
        return parse_type(spec)
    except ValueError as error:
        issues.append(ValidationIssue("invalid_type", f"{where}: {error}", port=name))
        return None


_RETRY_FIELDS = set(RetryPolicy.__dataclass_fields__)


def _is_text(value: object) -> bool:
    """isinstance(value, str), for fields typed str that JSON may have filled with anything."""
    return isinstance(value, str)


def _read_node(node_id: str, raw: Any, issues: list[ValidationIssue]) -> NodeInstance | None:
    if not NODE_ID_PATTERN.match(node_id):
        issues.append(
            ValidationIssue(
                "invalid_id",
                f"node id {node_id!r}: use letters, digits, '_', '.', '-' (at most 128; '/' only in the path "
                "of a graph node's inner node)",
                node=node_id,
            )
        )
        return None
    if not isinstance(raw, dict):
        issues.append(_format_issue('a node must be an object {"type": ..., "inputs": {...}}', node=node_id))
        return None
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        issues.append(_format_issue('a node needs a "type" string such as "text.template"', node=node_id))
        return None
    raw_inputs = raw.get("inputs", {})
    if not isinstance(raw_inputs, dict):
        issues.append(_format_issue('"inputs" must be an object of input name to value', node=node_id))
        return None
    unknown_keys = set(raw) - {"type", "inputs", "retry", "timeout", "queue", "label"}
    if unknown_keys:
        issues.append(
            _format_issue(
                f"unknown node keys {sorted(unknown_keys)}; allowed: type, inputs, retry, timeout, queue, label",
                node=node_id,
            )
        )
    inputs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for port, value in raw_inputs.items():
        parsed = parse_value(value)
        if isinstance(parsed, Link) and not (_is_text(parsed.node) and _is_text(parsed.output)):
            issues.append(_format_issue("a link's node and output must be strings", node=node_id, port=port))
            continue
        if isinstance(parsed, InputRef) and not _is_text(parsed.name):
            issues.append(_format_issue("a graph input reference names a string", node=node_id, port=port))
            continue
        inputs[port] = parsed
    retry = raw.get("retry")
    if retry is not None:
        if not isinstance(retry, dict) or not set(retry) <= _RETRY_FIELDS:
            allowed = sorted(_RETRY_FIELDS)
            issues.append(_format_issue(f"retry must be an object with keys among {allowed}", node=node_id))
        else:
            try:
                RetryPolicy(**retry)
                options["retry"] = retry
            except (TypeError, ValueError) as error:
                issues.append(_format_issue(f"retry: {error}", node=node_id))
    timeout = raw.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            issues.append(_format_issue("timeout must be a positive number of seconds", node=node_id))
        else:
            options["timeout"] = float(timeout)
    for key in ("queue", "label"):
        option = raw.get(key)
        if option is not None:
            if isinstance(option, str):
                options[key] = option
            else:
                issues.append(_format_issue(f"{key} must be a string", node=node_id))
    return NodeInstance(node_id, node_type, inputs, **options)


def read_document(data: Any) -> tuple[GraphDocument | None, list[ValidationIssue]]:
    """Read parsed JSON into a `GraphDocument`, reporting every problem of shape at once."""
    issues: list[ValidationIssue] = []
    if not isinstance(data, dict):
        return None, [_format_issue('a graph is a JSON object with "nodes" and "outputs"')]
    version = data.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        issues.append(_format_issue("format_version must be an integer"))
    elif version > FORMAT_VERSION:
        issues.append(
            ValidationIssue(
                "unsupported_format_version",
                f"format_version {version} is newer than this nodeloom reads ({FORMAT_VERSION})",
                hint="upgrade nodeloom",
            )
        )
        return None, issues
    name = data.get("name", "graph")
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        issues.append(_format_issue("name and description must be strings"))
        name, description = "graph", ""
    document = GraphDocument(name, description)
    metadata = data.get("metadata", {})
    if isinstance(metadata, dict):
        document.metadata = metadata
    else:
        issues.append(_format_issue("metadata must be an object"))
    sections: dict[str, dict[str, Any]] = {}
    for section in ("inputs", "nodes", "outputs"):
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            issues.append(_format_issue(f'"{section}" must be an object keyed by name'))
            raw = {}
        sections[section] = raw
    for input_name, raw in sections["inputs"].items():
        declared = _read_graph_input(input_name, raw, issues)
        if declared is not None:
            document.inputs.append(declared)
    for node_id, raw in sections["nodes"].items():
        instance = _read_node(node_id, raw, issues)
        if instance is not None:
            document.nodes.append(instance)
    for output_name, raw in sections["outputs"].items():
        optional = isinstance(raw, dict) and raw.get("optional") is True
        if optional:
            raw = {key: value for key, value in raw.items() if key != "optional"}
        link = parse_value(raw)
        if not isinstance(link, Link) or not _is_text(link.node) or not _is_text(link.output):
            issues.append(
                _format_issue(
                    f'graph output {output_name!r} must be a link {{"node": id, "output": name}}',
                    port=output_name,
                )
            )
            continue
        document.outputs[output_name] = link
        if optional:
            document.optional_outputs.add(output_name)
    return document, issues
