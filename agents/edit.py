"""Edits of an existing graph from an instruction in words: typed edits, validated, with a readable diff.

Each clause of the instruction becomes one kind of edit:

* **set a value**: sizes and formats ("make it vertical", "1920x1080", "square") set `width`
  and `height` wherever the graph has them; "N seconds" sets a slideshow's durations; "N
  steps" the diffusion steps; a language ("in German instead") rewrites the target language
  of translation prompts;
* **remove** ("remove the voice-over", "drop the thumbnail", "without saving"): the nodes of
  the named capability go, and the links into them;
* **replace** ("replace the title card with a generated picture"): remove, then add;
* **add** (anything else a recipe serves): the recipe's sub-graph is added and wired to the
  graph's outputs of a fitting kind (`agents.compose`); then **rewire**: an optional input of
  an existing node left empty that the new output fits (a slideshow's `audio` for a
  voice-over) is linked to it.

The result validates (or the edit is refused with the validator's issues) and comes with a
diff: one line per added, removed or changed node input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeloom.agents.analysis import read_slots, split_clauses
from nodeloom.agents.compose import ClauseReport, RecipeIndex, Step, _Assembler, _Made, choose_steps, step_slots
from nodeloom.core.errors import GraphValidationError
from nodeloom.core.graph import Graph
from nodeloom.core.types import List, PortType
from nodeloom.core.validate import NodeCatalog, ValidationIssue, validate_graph

_REMOVE = re.compile(r"\b(remove|delete|drop|get rid of|without|no longer|take out|leave out)\b", re.I)
_REPLACE = re.compile(r"\b(replace|swap|instead of)\b(.*)\b(with|by|for)\b(.*)$", re.I)
_STEPS = re.compile(r"\b(\d+)\s+(?:denoising\s+)?steps\b", re.I)
_SET_ONLY = re.compile(r"^(?:make|set|change|render|turn)\s+(?:it|the \w+|them)\b", re.I)
_TRANSLATE = re.compile(r"(Translate (?:the following )?into )([A-Z][a-z]+)")
_KIND_OF_TYPE = {"Text": "text", "Json": "json", "Any": "any", "Image": "image", "Audio": "audio", "Video": "video",
                 "Float": "number", "Int": "number", "List[Image]": "images", "List[Text]": "texts",
                 "List[Video]": "videos"}


@dataclass
class EditResult:
    """The edited graph (None when the edit could not be made valid), what changed, and why not."""

    graph: Graph | None
    diff: list[str]
    clauses: list[ClauseReport]
    issues: list[ValidationIssue] = field(default_factory=list)


def kind_of(port_type: PortType) -> str:
    """The composer's kind for a port type (`any` for a type it has no kind for)."""
    if isinstance(port_type, List):
        return _KIND_OF_TYPE.get(port_type.name, "json")
    return _KIND_OF_TYPE.get(port_type.name, "any")


def graph_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Readable lines: `+ id (type)`, `- id (type)`, `~ id.port: old -> new`."""
    old_nodes, new_nodes = before.get("nodes", {}), after.get("nodes", {})
    lines = [f"- {node_id} ({spec['type']})" for node_id, spec in old_nodes.items() if node_id not in new_nodes]
    lines += [f"+ {node_id} ({spec['type']})" for node_id, spec in new_nodes.items() if node_id not in old_nodes]
    for node_id, spec in new_nodes.items():
        if node_id not in old_nodes:
            continue
        old_inputs, new_inputs = old_nodes[node_id].get("inputs", {}), spec.get("inputs", {})
        for port in sorted(set(old_inputs) | set(new_inputs)):
            if old_inputs.get(port) != new_inputs.get(port):
                lines.append(f"~ {node_id}.{port}: {_show(old_inputs.get(port))} -> {_show(new_inputs.get(port))}")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, dict) and "node" in value:
        return f"{value['node']}.{value.get('output')}"
    if isinstance(value, dict) and set(value) == {"input"}:
        return f"input {value['input']}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _set_values(document: dict[str, Any], slots: Mapping[str, Any], clause: str) -> bool:
    """Set sizes, durations, steps and languages the clause names; True when something was set."""
    changed = False
    nodes = document["nodes"]
    if "width" in slots and "height" in slots:
        for spec in nodes.values():
            inputs = spec.setdefault("inputs", {})
            targets = [inputs]
            if spec["type"] == "control.map" and isinstance(inputs.get("inputs"), dict):
                targets.append(inputs["inputs"])
            for target in targets:
                if "width" in target or "height" in target or spec["type"] in ("video.slideshow", "image.title_card"):
                    if target is inputs and spec["type"] not in ("video.slideshow", "image.title_card",
                                                                 "image.generate", "image.resize"):
                        continue
                    target["width"], target["height"] = slots["width"], slots["height"]
                    changed = True
    if "seconds" in slots:
        for spec in nodes.values():
            if spec["type"] == "video.slideshow":
                spec["inputs"]["durations"] = [float(slots["seconds"])]
                changed = True
    if steps := _STEPS.search(clause):
        for spec in nodes.values():
            if spec["type"] in ("image.generate", "image.edit"):
                spec["inputs"]["steps"] = int(steps.group(1))
                changed = True
    if "language" in slots and not _REMOVE.search(clause):
        for spec in nodes.values():
            template = spec.get("inputs", {}).get("template")
            if spec["type"] == "text.template" and isinstance(template, str) and _TRANSLATE.search(template):
                spec["inputs"]["template"] = _TRANSLATE.sub(lambda m: m.group(1) + slots["language"][0], template)
                changed = True
    return changed


def _remove(document: dict[str, Any], node_types: set[str]) -> list[str]:
    """Remove the nodes of these types and the links into them; returns the removed ids."""
    removed = [node_id for node_id, spec in document["nodes"].items() if spec["type"] in node_types]
    for node_id in removed:
        del document["nodes"][node_id]
    for spec in document["nodes"].values():
        for port, value in list(spec.get("inputs", {}).items()):
            if isinstance(value, dict) and value.get("node") in removed:
                del spec["inputs"][port]
    document["outputs"] = {name: ref for name, ref in document.get("outputs", {}).items()
                           if ref.get("node") not in removed}
    return removed


_REWIRED = {"audio", "image", "images", "video"}
#: node types a capability shares with most others: never removed on its behalf
_SHARED = {"text.template", "llm.chat", "json.extract", "json.object", "image.pipeline", "text.join"}


def edit_graph(base: Graph | Mapping[str, Any], instruction: str, catalog: NodeCatalog,
               *, index: RecipeIndex | None = None) -> EditResult:
    """Apply the instruction's edits to `base` (see the module docstring)."""
    index = index if index is not None else RecipeIndex.get()
    before = base.to_json() if isinstance(base, Graph) else Graph.from_json(dict(base)).to_json()
    document: dict[str, Any] = Graph.from_json(before).to_json()
    recipes = [recipe for recipe in index.recipes if recipe.available_in(catalog)]
    clauses = split_clauses(instruction)
    similarity, _ = index.similarities([c.text for c in clauses])
    reports = [ClauseReport(c.index, c.text, [], [], c.slots) for c in clauses]
    for clause, similar, report in zip(clauses, similarity, reports, strict=True):
        replace = _REPLACE.search(clause.text)
        removing = _REMOVE.search(clause.text) and not replace
        if not removing and not replace and _set_values(document, clause.slots, clause.text) \
                and (_SET_ONLY.match(clause.text) or not any(r.cue_hits(clause.text) for r in recipes)):
            report.recipes.append("set_value")
            report.nodes += sorted(document["nodes"])[:0] or ["(values)"]
            continue
        if removing or replace:
            target_text = replace.group(2) if replace else clause.text
            steps = choose_steps([type(clause)(clause.index, target_text, 0, read_slots(target_text))],
                                 [similar], recipes)
            kinds = {t for step in steps for t in step.recipe.node_types} - _SHARED
            gone = _remove(document, kinds)
            report.recipes += [f"remove {step.recipe.name}" for step in steps]
            report.nodes += gone
            if not replace:
                continue
            clause = type(clause)(clause.index, replace.group(4), 0, read_slots(replace.group(4)))
        steps = choose_steps([clause], [similar], recipes)
        if not steps:
            continue
        assembler = _Assembler(catalog, document.get("name", "draft"))
        assembler.document = document
        assembler.pipeline = next((n for n, s in document["nodes"].items() if s["type"] == "image.pipeline"), None)
        graph_now = Graph.from_json(document)
        for ref in document.get("outputs", {}).values():
            node = graph_now.nodes.get(ref["node"])
            definition = catalog.find(node.type) if node is not None else None
            port = next((p for p in definition.spec.outputs if p.name == ref["output"]), None) if definition else None
            if port is not None:
                assembler.made.append(_Made(kind_of(port.type), dict(ref), -1))
        for number, step in enumerate(steps):
            for copy in step_slots(step.recipe, clause.text, clause.slots):
                report.nodes += assembler.add(Step(step.recipe, clause.index), copy, number, clause.text)
            report.recipes.append(step.recipe.name)
        _rewire(document, assembler, catalog, before_ids=set(graph_now.nodes))
        document["outputs"] = {**document.get("outputs", {}),
                               **{m.ref["node"]: dict(m.ref) for m in assembler.made if m.family >= 0 and not m.taken}}
        used = {v["input"] for spec in document["nodes"].values() for v in spec["inputs"].values()
                if isinstance(v, dict) and set(v) == {"input"}}
        document["inputs"] = {k: v for k, v in document["inputs"].items() if k in used}
    try:
        graph = Graph.from_json(document)
    except GraphValidationError as error:  # a malformed result is reported as an issue, never raised
        return EditResult(None, [], reports, [ValidationIssue("malformed_edit", str(error))])
    issues = validate_graph(graph, catalog)
    if issues:
        return EditResult(None, graph_diff(before, document), reports, issues)
    return EditResult(graph, graph_diff(before, graph.to_json()), reports)


def _rewire(document: dict[str, Any], assembler: _Assembler, catalog: NodeCatalog, before_ids: set[str]) -> None:
    """Link new outputs into empty optional inputs of existing nodes that they fit (a voice-over into a slideshow)."""
    for made in assembler.made:
        # only media are rewired (a voice-over into a video); a text would find many optional text ports
        if made.family < 0 or made.taken or made.kind not in _REWIRED:
            continue
        source = assembler._output_type(made.ref)
        if source is None:
            continue
        upstream = _ancestors(document, made.ref["node"])
        for node_id in sorted((before_ids & set(document["nodes"])) - upstream):
            spec = document["nodes"][node_id]
            definition = catalog.find(spec["type"])
            if definition is None:
                continue
            for port in definition.spec.inputs:
                if port.required or port.name in spec.get("inputs", {}) or port.type.name in ("Any", "Json"):
                    continue
                if port.type == source:
                    spec.setdefault("inputs", {})[port.name] = dict(made.ref)
                    made.taken += 1
                    break
            if made.taken:
                break


def _ancestors(document: Mapping[str, Any], node_id: str) -> set[str]:
    """The node and every node it depends on (linking into one of them would make a cycle)."""
    seen: set[str] = set()
    todo = [node_id]
    while todo:
        current = todo.pop()
        if current in seen or current not in document["nodes"]:
            continue
        seen.add(current)
        todo += [v["node"] for v in document["nodes"][current].get("inputs", {}).values()
                 if isinstance(v, dict) and "node" in v]
    return seen


__all__ = ["EditResult", "edit_graph", "graph_diff", "kind_of"]
