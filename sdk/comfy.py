"""ComfyUI workflows in and out: `nodeloom.comfy.load("workflow.json")` and `export(graph)`.

Both of ComfyUI's file formats are read: the API format (`{"3": {"class_type", "inputs"}}`,
what ComfyUI's "Export (API)" and its `/prompt` endpoint use) and the UI format (`nodes`,
`links`, `widgets_values`, as ComfyUI saves a workflow), as well as a PNG whose metadata
carries either. A UI file is first turned into the API form the way ComfyUI queues it
(reroutes and primitive nodes resolved, muted nodes left out, bypassed nodes passed
through, subgraphs expanded, the seed's `control_after_generate` slot skipped), so both
formats of one workflow give the same graph.

Each ComfyUI node becomes the comfy pack's node with the same id. Prompts, seeds, sizes,
step counts and image files become named graph inputs (`positive`, `negative`, `seed`,
`steps`, `width`, `height`, `image`; with the node id appended when a workflow has several),
so an imported workflow is a reusable model: `nodeloom run graph.json --set positive="..."`.
Nodes the comfy pack does not have (custom nodes) are reported all at once; `lenient=True`
imports the rest and lists what was left out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom._comfy_format import Format, comfy_file_issue, workflow_format
from nodeloom.core.errors import GraphFileError, GraphValidationError
from nodeloom.core.graph import Graph, InputRef, Link
from nodeloom.core.ports import REQUIRED
from nodeloom.core.validate import ValidationIssue
from nodeloom.node_registry.comfy.classes import BY_NODE_TYPE, CLASSES, UI_ONLY

#: values of the seed's `control_after_generate` widget
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
#: UI-only node types that hold no computation
_LAYOUT_NODES = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
_SUBGRAPH_INPUT = -10
_SUBGRAPH_OUTPUT = -20
_MUTED, _BYPASSED = 2, 4
_SAMPLERS = ("KSampler", "KSamplerAdvanced")
#: (class, input) -> the name of the graph input it becomes
_PARAMETERS = {
    ("KSampler", "seed"): "seed", ("KSamplerAdvanced", "noise_seed"): "seed",
    ("KSampler", "steps"): "steps", ("KSamplerAdvanced", "steps"): "steps",
    ("EmptyLatentImage", "width"): "width", ("EmptyLatentImage", "height"): "height",
    ("LoadImage", "image"): "image", ("LoadImageMask", "image"): "mask",
}


class ComfyImportError(GraphValidationError):
    """A ComfyUI workflow could not be imported; `issues` lists every problem (every unsupported node)."""

    code = "comfy_import_failed"
    subject = "ComfyUI workflow"


@dataclass
class ComfyImport:
    """An imported workflow: the graph, the format it was read from, and what `lenient` left out."""

    graph: Graph
    format: Format
    skipped: list[ValidationIssue] = field(default_factory=list)


__all__ = ["ComfyImport", "ComfyImportError", "Format", "api_to_graph", "comfy_file_issue", "export",
           "import_workflow", "load", "read_workflow", "ui_to_api", "workflow_format"]


# -- reading files ---------------------------------------------------------------------------
def read_workflow(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Format]:
    """A ComfyUI workflow file (JSON, or a PNG with workflow metadata), parsed, and its format."""
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as error:
        raise GraphFileError(f"cannot read {source}: {error.strerror or error}", details={"path": str(source)}) \
            from None
    texts: list[str | bytes]
    if raw.startswith(b"\x89PNG"):
        texts = _png_workflows(source)
        if not texts:
            raise GraphFileError(f"{source} is a PNG without a ComfyUI workflow in its metadata "
                                 "(no 'prompt' or 'workflow' text chunk)", details={"path": str(source)})
    else:
        texts = [raw]
    for text in texts:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise GraphFileError(f"{source} is not JSON: {error}", details={"path": str(source)}) from None
        found = workflow_format(data)
        if found is not None:
            return dict(data), found
    raise GraphFileError(
        f"{source} is not a ComfyUI workflow: expected the API format ({{\"3\": {{\"class_type\": ..., "
        "\"inputs\": ...}}}}) or the UI format (with \"nodes\" and \"links\")",
        details={"path": str(source)},
    )


def _png_workflows(source: Path) -> list[str | bytes]:
    from PIL import Image

    with Image.open(source) as picture:
        info = dict(picture.info)
    # ComfyUI writes the executed prompt (API format) and the editor's workflow (UI format)
    return [info[key] for key in ("prompt", "workflow") if isinstance(info.get(key), str | bytes)]


def load(
    source: str | os.PathLike[str] | Mapping[str, Any], *, lenient: bool = False, name: str | None = None
) -> Graph:
    """A graph of comfy nodes from a ComfyUI workflow: a file path (JSON or PNG) or parsed JSON.

    Raises `ComfyImportError` listing every node that cannot be imported, unless `lenient`.
    """
    return import_workflow(source, lenient=lenient, name=name).graph


def import_workflow(
    source: str | os.PathLike[str] | Mapping[str, Any], *, lenient: bool = False, name: str | None = None
) -> ComfyImport:
    """Like `load`, also saying the format read and, with `lenient`, what was left out."""
    if isinstance(source, Mapping):
        data, found = dict(source), workflow_format(source)
        if found is None:
            raise ComfyImportError([ValidationIssue(
                code="comfy_not_a_workflow",
                message="not a ComfyUI workflow: expected the API format or the UI format (nodes and links)",
            )])
        graph_name = name or "comfy-workflow"
    else:
        data, found = read_workflow(source)
        graph_name = name or Path(source).name.split(".")[0]
    prompt = ui_to_api(data) if found == "ui" else _api_prompt(data)
    graph, skipped = api_to_graph(prompt, lenient=lenient, name=graph_name)
    return ComfyImport(graph, found, skipped)


def _api_prompt(data: Mapping[str, Any]) -> dict[str, Any]:
    inner = data.get("prompt")
    return dict(inner) if isinstance(inner, Mapping) and workflow_format(inner) == "api" else dict(data)


# -- the UI format -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Output:
    node: str
    slot: int


@dataclass(frozen=True)
class _Value:
    value: Any


@dataclass
class _Scope:
    """One graph of a UI file: the workflow itself, or a subgraph as one instance node uses it."""

    prefix: str
    nodes: dict[int, dict[str, Any]]
    links: dict[int, tuple[int, int, int, int]]
    parent: tuple[_Scope, dict[str, Any]] | None = None


def _links(raw: Iterable[Any]) -> dict[int, tuple[int, int, int, int]]:
    """Links by id, from arrays `[id, origin, slot, target, slot, type]` or objects (subgraphs)."""
    found: dict[int, tuple[int, int, int, int]] = {}
    for link in raw or ():
        if isinstance(link, list) and len(link) >= 5:
            found[int(link[0])] = (int(link[1]), int(link[2]), int(link[3]), int(link[4]))
        elif isinstance(link, Mapping):
            found[int(link["id"])] = (int(link["origin_id"]), int(link["origin_slot"]), int(link["target_id"]),
                                      int(link["target_slot"]))
    return found


def ui_to_api(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The API form of a UI-format workflow, as ComfyUI would queue it."""
    definitions = workflow.get("definitions") or {}
    subgraphs = {str(sub["id"]): sub for sub in definitions.get("subgraphs", ()) if isinstance(sub, Mapping)}
    top = _Scope("", _nodes(workflow.get("nodes", ())), _links(workflow.get("links", ())))
    prompt: dict[str, Any] = {}
    for scope, node in _walk(top, subgraphs):
        prompt[scope.prefix + str(node["id"])] = _api_node(scope, node, subgraphs)
    return prompt


def _nodes(raw: Iterable[Any]) -> dict[int, dict[str, Any]]:
    return {int(node["id"]): dict(node) for node in raw if isinstance(node, Mapping) and "id" in node}


def _walk(scope: _Scope, subgraphs: Mapping[str, Any]) -> Iterator[tuple[_Scope, dict[str, Any]]]:
    """Every node that runs, subgraphs expanded (ids `outer:inner`), muted and bypassed ones left out."""
    for node in scope.nodes.values():
        kind = str(node.get("type"))
        if node.get("mode", 0) in (_MUTED, _BYPASSED) or kind in _LAYOUT_NODES:
            continue
        if kind in subgraphs:
            yield from _walk(_inner(scope, node, subgraphs[kind]), subgraphs)
        else:
            yield scope, node


def _inner(scope: _Scope, instance: dict[str, Any], definition: Mapping[str, Any]) -> _Scope:
    prefix = f"{scope.prefix}{instance['id']}:"
    return _Scope(prefix, _nodes(definition.get("nodes", ())), _links(definition.get("links", ())),
                  (scope, instance))


def _source(scope: _Scope, link_id: Any, subgraphs: Mapping[str, Any]) -> _Output | _Value | None:
    """Where the value on a link comes from, through reroutes, primitives, bypasses and subgraph edges."""
    if link_id is None or int(link_id) not in scope.links:
        return None
    origin, slot, _, _ = scope.links[int(link_id)]
    if origin == _SUBGRAPH_INPUT:
        if scope.parent is None:
            return None
        outer, instance = scope.parent
        inputs = instance.get("inputs") or []
        return _source(outer, inputs[slot].get("link"), subgraphs) if slot < len(inputs) else None
    node = scope.nodes.get(origin)
    if node is None or node.get("mode", 0) == _MUTED:
        return None
    kind = str(node.get("type"))
    if kind == "Reroute":
        return _source(scope, (node.get("inputs") or [{}])[0].get("link"), subgraphs)
    if kind == "PrimitiveNode":
        values = node.get("widgets_values") or [None]
        return _Value(values[0])
    if kind in subgraphs:
        inner = _inner(scope, node, subgraphs[kind])
        for inner_id, (_, _, target, target_slot) in inner.links.items():
            if target == _SUBGRAPH_OUTPUT and target_slot == slot:
                return _source(inner, inner_id, subgraphs)
        return None
    if node.get("mode", 0) == _BYPASSED:
        outputs = node.get("outputs") or []
        wanted = outputs[slot].get("type") if slot < len(outputs) else None
        for given in node.get("inputs") or []:
            if given.get("type") == wanted and given.get("link") is not None:
                return _source(scope, given["link"], subgraphs)
        return None
    return _Output(scope.prefix + str(origin), slot)


def _api_node(scope: _Scope, node: Mapping[str, Any], subgraphs: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(node.get("type"))
    inputs: dict[str, Any] = {}
    known = CLASSES.get(kind)
    values = node.get("widgets_values")
    if known is not None and isinstance(values, Mapping):
        inputs.update({key: value for key, value in values.items() if key in known.inputs})
    elif known is not None and isinstance(values, list):
        remaining = list(values)
        for widget in known.widgets:
            if not remaining:
                break
            if widget == "control_after_generate" and remaining[0] not in CONTROL_VALUES:
                continue  # saved without the control slot
            value = remaining.pop(0)
            if widget not in UI_ONLY:
                inputs[widget] = value
    for given in node.get("inputs") or []:
        name = (given.get("widget") or {}).get("name") or given.get("name")
        if given.get("link") is None:
            continue
        found = _source(scope, given["link"], subgraphs)
        if isinstance(found, _Output):
            inputs[name] = [found.node, found.slot]
        elif isinstance(found, _Value):
            inputs[name] = found.value
        else:
            inputs.pop(name, None)  # linked to nothing that runs (a muted node)
    entry: dict[str, Any] = {"class_type": kind, "inputs": inputs}
    if node.get("title"):
        entry["_meta"] = {"title": node["title"]}
    return entry


# -- the API format ----------------------------------------------------------------------------
def _graph_id(comfy_id: str) -> str:
    return comfy_id.replace(":", ".")  # subgraph nodes are "outer:inner" in ComfyUI


def _comfy_id(node_id: str) -> str:
    return node_id.replace(".", ":")


def _order(comfy_id: str) -> tuple[Any, ...]:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in comfy_id.split(":"))


def _is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def api_to_graph(prompt: Mapping[str, Any], *, lenient: bool = False, name: str = "comfy-workflow") \
        -> tuple[Graph, list[ValidationIssue]]:
    """A graph of comfy nodes from an API-format prompt, and the issues `lenient` skipped."""
    problems: list[ValidationIssue] = []
    unsupported: list[ValidationIssue] = []
    supported = ", ".join(sorted(CLASSES))
    entries: dict[str, Mapping[str, Any]] = {}
    for comfy_id, entry in prompt.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("class_type"), str) \
                or not isinstance(entry.get("inputs", {}), Mapping):
            problems.append(ValidationIssue(code="comfy_bad_node", node=str(comfy_id),
                                            message='a node is an object with "class_type" and "inputs"'))
            continue
        if entry["class_type"] not in CLASSES:
            unsupported.append(ValidationIssue(
                code="comfy_unsupported_node", node=str(comfy_id),
                message=f"{entry['class_type']} is not supported; supported are: {supported}",
                received=entry["class_type"],
                hint="import with --lenient to keep the rest of the workflow",
            ))
        entries[str(comfy_id)] = entry
    for comfy_id, entry in entries.items():
        for port, value in entry.get("inputs", {}).items():
            if _is_link(value) and str(value[0]) not in entries:
                problems.append(ValidationIssue(code="comfy_bad_link", node=comfy_id, port=port,
                                                message=f"links to node {value[0]}, which the workflow has not"))
    if problems or (unsupported and not lenient):
        raise ComfyImportError([*problems, *unsupported])
    dropped = {issue.node for issue in unsupported if issue.node}
    skipped = list(unsupported)
    changed = True
    while changed:  # a node fed by a node left out cannot run either
        changed = False
        for comfy_id, entry in entries.items():
            if comfy_id in dropped:
                continue
            missing = [str(value[0]) for value in entry.get("inputs", {}).values()
                       if _is_link(value) and str(value[0]) in dropped]
            if missing:
                dropped.add(comfy_id)
                skipped.append(ValidationIssue(
                    code="comfy_node_left_out", node=comfy_id,
                    message=f"{entry['class_type']} left out: it depends on node {missing[0]}, which was not imported",
                ))
                changed = True
    kept = {comfy_id: entries[comfy_id] for comfy_id in sorted(entries, key=_order) if comfy_id not in dropped}
    graph = Graph(name)
    names = _parameter_names(kept)
    for comfy_id, entry in kept.items():
        known = CLASSES[entry["class_type"]]
        inputs: dict[str, Any] = {}
        for port, value in entry.get("inputs", {}).items():
            if port in UI_ONLY:
                continue  # the upload button, a seed's control: UI state, sometimes in API files
            if _is_link(value):
                source_id = str(value[0])
                outputs = CLASSES[kept[source_id]["class_type"]].outputs
                if not 0 <= value[1] < len(outputs):
                    raise ComfyImportError([ValidationIssue(
                        code="comfy_bad_link", node=comfy_id, port=port,
                        message=f"links to output {value[1]} of node {source_id}, which has {len(outputs)}",
                    )])
                inputs[port] = Link(_graph_id(source_id), outputs[value[1]])
            elif (comfy_id, port) in names:
                inputs[port] = _declare(graph, names[(comfy_id, port)], known.node_type, port, value,
                                        f"{entry['class_type']} {comfy_id}: {port}")
            else:
                inputs[port] = value
        graph.add(known.node_type, _graph_id(comfy_id), **inputs)
    _add_outputs(graph, kept)
    return graph, skipped


def _declare(graph: Graph, name: str, node_type: str, port: str, value: Any, description: str) -> InputRef:
    from nodeloom.core.types import Any as AnyType
    from nodeloom.node_registry import default_registry

    definition = default_registry().find(node_type)
    declared = definition.spec.input_map.get(port) if definition is not None else None
    return graph.input(name, declared.type if declared is not None else AnyType, default=value,
                       description=description)


def _parameter_names(kept: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """Which literal inputs become graph inputs, and their names (`seed`, or `seed_3` when several)."""
    roles: dict[tuple[str, str], str] = {}
    for comfy_id, entry in kept.items():
        kind = entry["class_type"]
        for port, value in entry.get("inputs", {}).items():
            if _is_link(value):
                continue
            if kind == "CLIPTextEncode" and port == "text":
                roles[(comfy_id, port)] = _prompt_role(comfy_id, kept)
            elif (kind, port) in _PARAMETERS:
                roles[(comfy_id, port)] = _PARAMETERS[(kind, port)]
    counts: dict[str, int] = {}
    for role in roles.values():
        counts[role] = counts.get(role, 0) + 1
    return {
        key: role if counts[role] == 1 else f"{role}_{re.sub(r'[^A-Za-z0-9_]', '_', key[0])}"
        for key, role in roles.items()
    }


def _prompt_role(comfy_id: str, kept: Mapping[str, Mapping[str, Any]]) -> str:
    """"positive" or "negative" when the prompt reaches samplers only through that input, else "prompt"."""
    found: set[str] = set()
    frontier, seen = [comfy_id], {comfy_id}
    while frontier:
        current = frontier.pop()
        for other_id, entry in kept.items():
            for port, value in entry.get("inputs", {}).items():
                if not (_is_link(value) and str(value[0]) == current):
                    continue
                if entry["class_type"] in _SAMPLERS:
                    found.add(port)
                elif entry["class_type"] == "ConditioningCombine" and other_id not in seen:
                    seen.add(other_id)
                    frontier.append(other_id)
    return found.pop() if len(found) == 1 and found <= {"positive", "negative"} else "prompt"


def _add_outputs(graph: Graph, kept: Mapping[str, Mapping[str, Any]]) -> None:
    for kind, stem in (("SaveImage", "images"), ("PreviewImage", "preview")):
        ids = [comfy_id for comfy_id, entry in kept.items() if entry["class_type"] == kind]
        for comfy_id in ids:
            name = stem if len(ids) == 1 else f"{stem}_{re.sub(r'[^A-Za-z0-9_]', '_', comfy_id)}"
            graph.output(name, Link(_graph_id(comfy_id), "images"))


# -- export ------------------------------------------------------------------------------------
def export(graph: Graph, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The API format of a graph of comfy nodes (graph inputs as their default, or as `values` sets them).

    Raises `ComfyImportError` naming every node that is not a comfy node and every graph
    input without a value.
    """
    given = dict(values or {})
    problems: list[ValidationIssue] = []
    prompt: dict[str, Any] = {}
    for node_id, node in graph.nodes.items():
        known = BY_NODE_TYPE.get(node.type)
        if known is None:
            problems.append(ValidationIssue(
                code="comfy_no_class", node=node_id,
                message=f"{node.type} has no ComfyUI counterpart; only comfy.* nodes export",
                received=node.type,
            ))
            continue
        inputs: dict[str, Any] = {}
        for port, value in node.inputs.items():
            if isinstance(value, Link):
                source = graph.nodes.get(value.node)
                source_class = BY_NODE_TYPE.get(source.type) if source is not None else None
                if source_class is None or value.output not in source_class.outputs:
                    problems.append(ValidationIssue(
                        code="comfy_bad_link", node=node_id, port=port,
                        message=f"links to {value.node}.{value.output}, not a comfy output"))
                    continue
                inputs[port] = [_comfy_id(value.node), source_class.outputs.index(value.output)]
            elif isinstance(value, InputRef):
                declared = graph.inputs.get(value.name)
                if value.name in given:
                    inputs[port] = given[value.name]
                elif declared is not None and declared.default is not REQUIRED:
                    inputs[port] = declared.default
                else:
                    problems.append(ValidationIssue(code="comfy_input_without_value", node=node_id, port=port,
                                                    message=f"graph input {value.name!r} has no default: "
                                                            "give its value to export"))
            else:
                inputs[port] = value
        prompt[_comfy_id(node_id)] = {"class_type": known.class_type, "inputs": inputs,
                                      "_meta": {"title": node.label or known.display_name}}
    if problems:
        raise ComfyImportError(problems)
    return prompt
