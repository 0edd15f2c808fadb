"""The type-directed planner: completes a draft (or starts from nothing) into a graph that validates.

It works on port types only, never on meaning beyond the retrieved candidates' ranking:

1. From a draft, it keeps what is well formed: nodes of known types, inputs the node has,
   links whose types connect, literals that pass their port's checks. Everything else is
   dropped and recorded, and links that close a loop are cut.
2. Each required input left empty is filled: a value that can be written as a literal
   becomes a graph input (the user sets it per run); a value that only a node makes (an
   image, a diffusion pipeline) is produced by the cheapest chain of nodes.
3. The requested outputs (the types the request asks for: a video, an image, speech, JSON
   or text) are reached by a shortest typed path from what the graph already has (its
   inputs and node outputs) through catalog nodes, preferring the retrieved candidates.
4. Nodes that feed no output are removed. A node that cannot be wired is removed too.

The answer is a graph that `validate_graph` accepts, or a `PlanningRefused` error whose
`refusal` says which requested type no chain of catalog nodes can make.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.core.errors import NodeloomError
from nodeloom.core.graph import Graph, InputRef, Link, NodeInstance
from nodeloom.core.ports import REQUIRED, Choices, Port, Range
from nodeloom.core.spec import NodeSpec
from nodeloom.core.types import (
    AnyType,
    ArtifactType,
    Audio,
    Image,
    Json,
    List,
    PortType,
    Text,
    Video,
    can_connect,
)
from nodeloom.core.validate import find_cycles, validate_graph
from nodeloom.node_registry import NodeRegistry

#: what a node costs on a path: retrieved candidates are cheaper, by rank, than the rest of the catalog
CANDIDATE_COST = 1.0
OTHER_COST = 3.0
#: an artifact (an image, a sound) the user must supply per run; a chain of nodes that makes one is preferred
ARTIFACT_INPUT_COST = 8.0
#: a graph input of no definite type (Any) says little to the user; a typed one is preferred
VAGUE_INPUT_COST = 2.0
#: Text ports the request itself can fill
PROMPT_WORDS = ("prompt", "text", "template", "topic", "subject", "query", "question", "request", "description")
#: verbs that ask for text to be written, which an LLM node writes rather than the user
WRITING = re.compile(
    r"\b(write|writes|compose|summari[sz]e|summary|draft|invent|translate|rewrite|describe|explain|brainstorm|"
    r"suggest|come up with|tell|story|poem|slogan|tagline|script|haiku|caption|pull|extract)\b"
)
#: Text inputs of non-LLM nodes that an LLM's writing feeds when the request asks for writing
WRITTEN_PORTS = frozenset({"text", "prompt"})
WRITER = "llm.chat"
#: the LLM node that writes each kind of output, when the request asks for writing
GOAL_WRITERS: tuple[tuple[PortType, str], ...] = ((Text, "llm.chat"), (Json, "llm.structured"))
#: an LLM's prompt is written with a template node, so the user edits one instruction with variables
PROMPT_WRITER = "text.template"
#: optional inputs the planner still fills, because the node does nothing useful when they stay empty
USEFUL_OPTIONAL = frozenset({"prompt", "text", "template"})
_PASSES = 6

#: words of a request that ask for an output of a type, most specific first
GOAL_WORDS: tuple[tuple[PortType, tuple[str, ...]], ...] = (
    (Video, ("video", "mp4", "clip", "slideshow", "reel", "movie", "film", "trailer", "animation")),
    (Image, ("image", "picture", "poster", "photo", "thumbnail", "illustration", "banner", "card",
             "drawing", "render", "artwork", "logo", "cover")),
    (Audio, ("audio", "voice", "speech", "spoken", "narrat", "podcast", "aloud", "speak", "wav", "sound")),
    (Json, ("as json", "json object", "structured", "fields", "schema", "extract")),
)


@dataclass(frozen=True)
class PlanRefusal:
    """Why no valid graph can be made: what was asked for, and what the catalog lacks."""

    code: str
    message: str
    unmet: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "unmet": list(self.unmet)}


class PlanningRefused(NodeloomError):
    """The planner cannot produce a graph that validates; `refusal` says why."""

    code = "planning_refused"

    def __init__(self, refusal: PlanRefusal) -> None:
        super().__init__(refusal.message, details=refusal.to_dict())
        self.refusal = refusal


@dataclass
class PlannedGraph:
    """The planner's answer: a valid graph and an account of what it kept, added and removed."""

    graph: Graph
    kept: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    #: one line per decision, for the plan text
    notes: list[str] = field(default_factory=list)


def goal_types(request: str) -> list[PortType]:
    """The output types a request asks for (Text when it names none)."""
    words = request.lower()
    goals = [kind for kind, cues in GOAL_WORDS if any(re.search(rf"\b{re.escape(cue)}", words) for cue in cues)]
    if Video in goals:
        # a video's pictures and voice-over are parts of it, not separate outputs
        goals = [kind for kind in goals if kind not in (Image, Audio)]
    return goals or [Text]


def _vague(source: PortType, target: PortType) -> bool:
    if isinstance(target, AnyType):
        return False
    if isinstance(source, AnyType):
        return True
    return isinstance(source, List) and isinstance(target, List) and _vague(source.item, target.item)


def _untyped(port_type: PortType) -> bool:
    if isinstance(port_type, List):
        return _untyped(port_type.item)
    return isinstance(port_type, AnyType)


@functools.lru_cache(maxsize=4096)
def fits(source: PortType, target: PortType) -> bool:
    """`can_connect`, except that an untyped (Any) output is not taken to make a specific type."""
    return not _vague(source, target) and bool(can_connect(source, target))


def literal_capable(port_type: PortType) -> bool:
    """Whether a graph input holding a literal value can stand for this type."""
    if isinstance(port_type, ArtifactType):
        return False
    if isinstance(port_type, List):
        return literal_capable(port_type.item)
    return bool(port_type.accepts_literal)


def _is_artifact(port_type: PortType) -> bool:
    return isinstance(port_type, ArtifactType) or (isinstance(port_type, List) and _is_artifact(port_type.item))


def sample_value(port: Port, request: str) -> Any:
    """A value for a graph input made for `port`: the node's own default, else one that passes its checks.

    Text ports named for a prompt or text get the request itself; a model, path or URL is left
    for the user (returns REQUIRED).
    """
    if not port.required and port.default not in (None, ""):
        return port.default
    if _is_artifact(port.type):
        return REQUIRED
    for constraint in port.constraints:
        if isinstance(constraint, Choices) and constraint.values:
            return next(iter(constraint.values))
        if isinstance(constraint, Range) and constraint.min is not None:
            return int(constraint.min) if port.type.name == "Int" else float(constraint.min)
    kind = port.type
    name = port.name.lower()
    if kind == Text:
        if any(word in name for word in PROMPT_WORDS) and request.strip():
            return request.strip()
        return REQUIRED
    if kind.name == "Int":
        return 1
    if kind.name == "Float":
        return 1.0
    if kind.name == "Bool":
        return False
    if isinstance(kind, List):
        return []
    if kind == Json:
        return {}
    return REQUIRED


@dataclass(frozen=True)
class _Recipe:
    """The cheapest known way to make a value: a node output, or a graph input."""

    cost: float
    port_type: PortType
    node_type: str | None = None
    output: str | None = None
    existing: Link | InputRef | None = None


class _PathFinder:
    """Cheapest recipes for every type the catalog can make (a generalised shortest path over types)."""

    def __init__(self, registry: NodeRegistry, candidates: Sequence[str], existing: Iterable[_Recipe]) -> None:
        rank = {name: index for index, name in enumerate(candidates)}
        self.specs: dict[str, NodeSpec] = {d.spec.type: d.spec for d in registry}
        self.node_cost = {
            name: CANDIDATE_COST + 0.01 * rank[name] if name in rank else OTHER_COST for name in self.specs
        }
        self.recipes: list[_Recipe] = list(existing)
        self._solve()

    def best(self, target: PortType, *, nodes_only: bool = False) -> _Recipe | None:
        found = [r for r in self.recipes if fits(r.port_type, target) and (r.node_type or not nodes_only)]
        return min(found, key=lambda r: (r.cost, r.node_type or "")) if found else None

    def input_cost(self, port: Port) -> float | None:
        """What filling `port` costs: 0 for a literal graph input, else the cheapest recipe, None if impossible."""
        if literal_capable(port.type):
            return VAGUE_INPUT_COST if _untyped(port.type) else 0.0
        recipe = self.best(port.type)
        if recipe is not None:
            return recipe.cost
        return ARTIFACT_INPUT_COST if _is_artifact(port.type) else None

    def _solve(self) -> None:
        best_node: dict[str, float] = {}
        for _ in range(_PASSES):
            changed = False
            for name, spec in self.specs.items():
                total = self.node_cost[name]
                for port in needed_ports(spec, {}):
                    cost = self.input_cost(port)
                    if cost is None:
                        break
                    total += cost
                else:
                    if total < best_node.get(name, float("inf")):
                        best_node[name] = total
                        self.recipes = [r for r in self.recipes if r.node_type != name or r.existing is not None]
                        # the first output is the node's main one: a hair cheaper
                        self.recipes += [
                            _Recipe(total + 0.001 * index, out.type, name, out.name)
                            for index, out in enumerate(spec.outputs)
                        ]
                        changed = True
            if not changed:
                return


def needed_ports(spec: NodeSpec, given: Mapping[str, Any]) -> list[Port]:
    """The inputs a node must be given: required ones, and the empty text a node is useless without."""
    needed = []
    for port in spec.inputs:
        if port.name in given:
            continue
        if port.required or (port.name in USEFUL_OPTIONAL and port.default in ("", None)):
            needed.append(port)
    return needed


class _Builder:
    """Edits a graph in place, keeping the account of what changed."""

    def __init__(self, graph: Graph, registry: NodeRegistry, request: str, candidates: Sequence[str]) -> None:
        self.graph = graph
        self.registry = registry
        self.request = request
        self.candidates = list(candidates)
        self.result = PlannedGraph(graph)
        self.writes_text = bool(WRITING.search(request.lower())) and registry.find(WRITER) is not None

    # -- keeping what is sound ----------------------------------------------------
    def clean(self) -> None:
        """Drop unknown nodes, unknown ports, broken links and bad literals; cut loops."""
        for node_id, instance in list(self.graph.nodes.items()):
            if self.registry.find(instance.type) is None:
                self._remove(node_id, f"unknown node type {instance.type!r}")
        for _ in range(len(self.graph.nodes) + 1):
            if not self._clean_inputs():
                break
        for loop in find_cycles(self.graph):
            first, second = loop[0], loop[1]
            instance = self.graph.nodes[second]
            kept = {p: v for p, v in instance.inputs.items() if not (isinstance(v, Link) and v.node == first)}
            self.graph._put_node(NodeInstance(second, instance.type, kept))
            self.result.notes.append(f"cut the link {first} -> {second}, which closed a loop")
        for name, link in list(self.graph.outputs.items()):
            if self._output_type(link) is None:
                self._drop_output(name, "it names no existing node output")

    def _clean_inputs(self) -> bool:
        changed = False
        for node_id, instance in list(self.graph.nodes.items()):
            spec = self.registry.get(instance.type).spec
            kept: dict[str, Any] = {}
            for port_name, value in instance.inputs.items():
                port = spec.input_map.get(port_name)
                why = self._problem(port, spec, port_name, value)
                if why is None:
                    kept[port_name] = value
                else:
                    self.result.notes.append(f"{node_id}.{port_name}: dropped ({why})")
                    changed = True
            if len(kept) != len(instance.inputs):
                self.graph._put_node(NodeInstance(node_id, instance.type, kept, label=instance.label))
        return changed

    def _problem(self, port: Port | None, spec: NodeSpec, name: str, value: Any) -> str | None:
        port_type = port.type if port is not None else spec.variadic
        if port_type is None:
            return f"{spec.type} has no input {name!r}"
        source_type: PortType | None
        if isinstance(value, Link):
            source_type = self._output_type(value)
            if source_type is None:
                return f"no output {value.output!r} of a node {value.node!r}"
        elif isinstance(value, InputRef):
            declared = self.graph.inputs.get(value.name)
            if declared is None:
                return f"no graph input {value.name!r}"
            source_type = declared.type
        else:
            if port is None:
                return port_type.check_value(value)
            problem = port.check_value(value)
            if problem is None and not port.type.accepts_literal:
                return f"{port.type.name} is made by a node, not written as a value"
            return problem[1] if problem is not None else None
        connection = can_connect(source_type, port_type)
        return None if connection else connection.reason

    def _output_type(self, link: Link) -> PortType | None:
        instance = self.graph.nodes.get(link.node)
        if instance is None:
            return None
        definition = self.registry.find(instance.type)
        port = definition.spec.output_map.get(link.output) if definition is not None else None
        return port.type if port is not None else None

    def _remove(self, node_id: str, why: str) -> None:
        self.graph.remove(node_id)
        if node_id in self.result.added:
            self.result.added.remove(node_id)
        self.result.removed.append(node_id)
        self.result.notes.append(f"removed {node_id} ({why})")
        for name, link in list(self.graph.outputs.items()):
            if link.node == node_id:
                self._drop_output(name, f"its node {node_id} was removed")

    def _drop_output(self, name: str, why: str) -> None:
        outputs = dict(self.graph.outputs)
        del outputs[name]
        self.graph._outputs = outputs  # Graph has no public way to remove an output
        self.graph._changed()
        self.result.notes.append(f"dropped output {name!r} ({why})")

    # -- filling what is missing --------------------------------------------------
    def existing_recipes(self, blocked: set[str] | None = None) -> list[_Recipe]:
        """Outputs already in the graph, free to use, except those of `blocked` nodes (which would close a loop)."""
        found = []
        for node_id, instance in self.graph.nodes.items():
            if blocked and node_id in blocked:
                continue
            spec = self.registry.get(instance.type).spec
            for out in spec.outputs:
                found.append(_Recipe(0.0, out.type, spec.type, out.name, Link(node_id, out.name)))
        for name, declared in self.graph.inputs.items():
            found.append(_Recipe(0.0, declared.type, existing=InputRef(name)))
        return found

    def _descendants(self, node_id: str) -> set[str]:
        below = {node_id}
        grew = True
        while grew:
            grew = False
            for other, instance in self.graph.nodes.items():
                if other not in below and any(link.node in below for _, link in instance.links()):
                    below.add(other)
                    grew = True
        return below

    def fill(self) -> None:
        """Give every node its needed inputs; remove a node whose inputs cannot be made."""
        for _ in range(len(self.graph.nodes) * 2 + 4):
            pending = [
                (node_id, port)
                for node_id, instance in self.graph.nodes.items()
                for port in needed_ports(self.registry.get(instance.type).spec, instance.inputs)
            ]
            if not pending:
                return
            node_id, port = pending[0]
            value = self.value_for(port, consumer=node_id)
            if value is None:
                self._remove(node_id, f"nothing in the catalog makes its input {port.name!r} ({port.type.name})")
                self.clean()
            else:
                self.graph.set_inputs(node_id, **{port.name: value})

    def value_for(self, port: Port, *, consumer: str | None, blocked: set[str] | None = None) -> Link | InputRef | None:
        """Wire `port`: an unused existing output of a fitting type, a graph input, or a new chain of nodes.

        `blocked` are the nodes downstream of the consumer, whose outputs would close a loop.
        """
        if blocked is None:
            blocked = self._descendants(consumer) if consumer is not None else set()
        finder = _PathFinder(self.registry, self.candidates, self.existing_recipes(blocked))
        existing = [r for r in finder.recipes if r.existing is not None and fits(r.port_type, port.type)]
        # a node output nobody reads yet is the likeliest intended source
        unused = [r for r in existing if isinstance(r.existing, Link) and not self._consumed(r.existing)]
        if unused:
            return unused[-1].existing
        if self._wants_writer(port, consumer):
            return self.add_node(WRITER, "text", blocked)
        if self._wants_template(port, consumer):
            return self.add_node(PROMPT_WRITER, "text", blocked)
        if literal_capable(port.type):
            same_name = [r for r in existing if isinstance(r.existing, InputRef) and r.existing.name == port.name]
            return same_name[0].existing if same_name else self._graph_input(port)
        recipe = finder.best(port.type)
        if recipe is not None and recipe.existing is not None:
            return recipe.existing
        if recipe is not None and recipe.node_type is not None and recipe.output is not None:
            return self.add_node(recipe.node_type, recipe.output, blocked)
        if _is_artifact(port.type):
            return self._graph_input(port)
        return None

    def _wants_writer(self, port: Port, consumer: str | None) -> bool:
        """Whether an LLM should write this text: the request asks for writing and no LLM node writes yet."""
        if not self.writes_text or port.type != Text or port.name not in WRITTEN_PORTS or consumer is None:
            return False
        instance = self.graph.nodes.get(consumer)
        if instance is None or instance.type.startswith("llm."):
            return False
        return not any(i.type.startswith("llm.") for i in self.graph.nodes.values())

    def _wants_template(self, port: Port, consumer: str | None) -> bool:
        """Whether an LLM node's empty prompt should come from a template (fed by the request)."""
        instance = self.graph.nodes.get(consumer) if consumer is not None else None
        return (
            instance is not None
            and instance.type.startswith("llm.")
            and port.name == "prompt"
            and port.type == Text
            and self.registry.find(PROMPT_WRITER) is not None
        )

    def _consumed(self, link: Link) -> bool:
        read = any(link in dict(i.links()).values() for i in self.graph.nodes.values())
        return read or link in self.graph.outputs.values()

    def _graph_input(self, port: Port) -> InputRef:
        name = port.name
        index = 2
        while name in self.graph.inputs:
            name = f"{port.name}_{index}"
            index += 1
        value = sample_value(port, self.request)
        self.graph.input(name, port.type, default=value, description=port.description)
        self.result.filled.append(name)
        return InputRef(name)

    def add_node(self, node_type: str, output: str, blocked: set[str] | None = None) -> Link:
        """Add a node of `node_type` with its needed inputs wired, and return a link to `output`.

        `blocked` nodes (downstream of where the new node's output goes) are not used as its sources.
        """
        spec = self.registry.get(node_type).spec
        handle = self.graph.add(node_type)
        self.result.added.append(handle.id)
        self.result.notes.append(f"added {handle.id} ({node_type}: {spec.description})")
        for port in needed_ports(spec, {}):
            value = self.value_for(port, consumer=handle.id, blocked={*(blocked or ()), handle.id})
            if value is not None:
                self.graph.set_inputs(handle.id, **{port.name: value})
        return Link(handle.id, output)

    # -- outputs --------------------------------------------------------------------
    def reach_goals(self, goals: Sequence[PortType]) -> None:
        """Make sure each requested type is a graph output, adding the cheapest chain of nodes where needed."""
        unmet: list[str] = []
        for goal in goals:
            made = [self._output_type(link) for link in self.graph.outputs.values()]
            if any(fits(t, goal) or fits(t, List(goal)) for t in made if t):
                continue
            sinks = self._sink_outputs(goal) or self._sink_outputs(List(goal))
            if sinks:
                self._add_output(goal, sinks[-1])
                continue
            writer = self._goal_writer(goal)
            if writer is not None:
                self._add_output(goal, self.add_node(writer, self.registry.get(writer).spec.outputs[0].name))
                continue
            finder = _PathFinder(self.registry, self.candidates, self.existing_recipes())
            # a list of the requested kind (several images) serves too
            found = [r for r in (finder.best(goal, nodes_only=True), finder.best(List(goal), nodes_only=True)) if r]
            recipe = min(found, key=lambda r: r.cost) if found else None
            if recipe is None or recipe.node_type is None or recipe.output is None:
                unmet.append(goal.name)
                continue
            if isinstance(recipe.existing, Link):
                link = recipe.existing
            else:
                link = self.add_node(recipe.node_type, recipe.output)
            self._add_output(goal, link)
        if unmet and not self.graph.outputs:
            raise PlanningRefused(
                PlanRefusal(
                    "unreachable_output",
                    "no chain of catalog nodes makes what the request asks for: " + ", ".join(unmet),
                    tuple(unmet),
                )
            )
        for name in unmet:
            self.result.notes.append(f"no chain of catalog nodes makes {name}; left out")

    def _goal_writer(self, goal: PortType) -> str | None:
        """The LLM node that should write `goal` itself, when the request asks for writing."""
        if not self.writes_text:
            return None
        for kind, writer in GOAL_WRITERS:
            if goal == kind and self.registry.find(writer) is not None:
                return writer
        return None

    def _sink_outputs(self, goal: PortType) -> list[Link]:
        fitting: list[Link] = []
        for node_id, instance in self.graph.nodes.items():
            spec = self.registry.get(instance.type).spec
            for out in spec.outputs:
                link = Link(node_id, out.name)
                if fits(out.type, goal):
                    fitting.append(link)
        unused = [link for link in fitting if not self._consumed(link)]
        return unused or fitting

    def _add_output(self, goal: PortType, link: Link) -> None:
        name = goal.name.lower() if goal.name.lower() not in self.graph.outputs else link.node
        self.graph.output(name, link)
        self.result.notes.append(f"output {name!r} is {link.node}.{link.output} ({goal.name})")

    def prune(self) -> None:
        """Remove nodes (and graph inputs) that feed no output."""
        needed: set[str] = {link.node for link in self.graph.outputs.values()}
        grew = True
        while grew:
            grew = False
            for node_id in list(needed):
                instance = self.graph.nodes.get(node_id)
                for _, link in instance.links() if instance else []:
                    if link.node not in needed:
                        needed.add(link.node)
                        grew = True
        for node_id in list(self.graph.nodes):
            if node_id not in needed:
                self._remove(node_id, "it feeds no output")
        used = {v.name for i in self.graph.nodes.values() for v in i.inputs.values() if isinstance(v, InputRef)}
        unused_inputs = [name for name in self.graph.inputs if name not in used]
        if unused_inputs:
            self.graph._inputs = {n: d for n, d in self.graph.inputs.items() if n in used}  # no public removal
            self.graph._changed()
            self.result.filled = [name for name in self.result.filled if name in used]


def complete_graph(
    request: str,
    registry: NodeRegistry,
    *,
    candidates: Sequence[str] = (),
    draft: Graph | None = None,
    goals: Sequence[PortType] | None = None,
) -> PlannedGraph:
    """Complete `draft` (or start from an empty graph) into a graph that validates against `registry`.

    `candidates` are node types ranked by relevance (retrieval); they are preferred on typed paths.
    `goals` are the output types to reach; by default read from the request (`goal_types`).
    Raises `PlanningRefused` when no requested output type can be made from the catalog.
    """
    graph = Graph.from_json(draft.to_json()) if draft is not None else Graph("draft")
    builder = _Builder(graph, registry, request, candidates)
    builder.result.kept = list(graph.nodes)
    builder.clean()
    builder.fill()
    builder.reach_goals(goals if goals is not None else goal_types(request))
    builder.fill()
    builder.prune()
    builder.result.kept = [node_id for node_id in builder.result.kept if node_id in graph.nodes]
    issues = validate_graph(graph, registry)
    if issues:
        raise PlanningRefused(
            PlanRefusal(
                "unresolved_issues",
                "the planner could not make the draft valid: " + "; ".join(str(issue) for issue in issues[:5]),
                tuple(str(issue) for issue in issues),
            )
        )
    return builder.result
