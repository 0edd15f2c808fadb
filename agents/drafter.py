"""The drafting agent: a request in words becomes a graph that validates, or a structured refusal.

A LangGraph state machine::

    compose -+-> finalize                                  (the embedded provider: no LLM call)
             +-> retrieve -> plan -> write -> compile -> validate -> finalize
                                        ^                    |
                                        +------ repair <-----+   (while invalid and rounds remain)

* **compose** analyses the request without the LLM (clauses, slots) and composes a graph from
  the recipe library (`agents.compose`). With the embedded provider that graph is the answer
  (SmolLM2 cannot write graphs, and drafting stays fast); with an OpenAI-compatible provider
  the model writes the program, shown the recipe menu, the nearest example workflows and the
  composed program, and the composition is the fallback: the model's graph is kept only when
  it validates and serves at least as many clauses. When no recipe serves the request the
  planner path below answers alone.

* **retrieve** ranks the catalog's node types by meaning (`agents.retrieve`).
* **plan** asks the type-directed planner for the shortest typed chain that makes what the
  request asks for, and states it as text: which nodes, and why. A request whose outputs no
  chain of catalog nodes can make is refused here.
* **write** has the LLM write the graph as a restricted program (`agents.program`), shown
  the candidate nodes with their ports, two small examples and the plan.
* **compile** turns the program into a graph (never executing it), **validate** checks it
  with the core validator, **repair** feeds the problems back to the LLM.
* **finalize** hands the last draft to the planner, which keeps a valid draft as it is
  (adding a requested output it lacks) and completes an invalid one; so the answer always
  validates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph

from nodeloom.agents.compose import Composition, RecipeIndex, compose
from nodeloom.agents.planner import PlannedGraph, PlanningRefused, PlanRefusal, complete_graph, goal_types
from nodeloom.agents.program import ProgramError, compile_program, decompile
from nodeloom.agents.providers import ProviderChoice, generate
from nodeloom.agents.retrieve import Candidate, RetrievalUnavailable, retrieve
from nodeloom.core.errors import GraphValidationError, NodeloomError
from nodeloom.core.graph import Graph
from nodeloom.core.ports import REQUIRED
from nodeloom.core.spec import NodeSpec
from nodeloom.core.types import Audio, Image, Video
from nodeloom.core.validate import ValidationIssue, validate_graph
from nodeloom.node_registry import NodeRegistry, default_registry

DEFAULT_MAX_REPAIRS = 2
CANDIDATE_LIMIT = 6
#: longest program the LLM may write, in tokens
PROGRAM_TOKENS = 120
#: issues quoted back to the LLM in one repair round
ISSUES_PER_REPAIR = 6

ProgressCallback = Callable[[str, str], None]
#: the issue code of a program that validates but leaves out most of the plan
OFF_PLAN = "off_plan"

RULES = """You write workflow graphs for nodeloom as a tiny restricted Python program.
Rules:
- Each line is one of:
    name = input("name", "Text", default="...")      (a value the user sets)
    name = pack.node(port=value, other=value)          (a node from the list; keyword arguments only)
    output("name", var)                                (a result of the graph)
- A value is a string, a number, True/False, a list, a variable, or var["port"] for a named output.
- Variable names end with _ and a digit: story_1, card_2.
- Use only the nodes listed below. No imports, no other statements, no comments.
Reply with the program only."""

EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Write a short poem about a topic and read it aloud",
        'topic_1 = input("topic", "Text", default="the sea")\n'
        'prompt_1 = text.template(template="Write a short poem about {{ topic }}.", topic=topic_1)\n'
        "poem_1 = llm.chat(prompt=prompt_1, max_tokens=120)\n"
        "speech_1 = audio.speak(text=poem_1)\n"
        'output("poem", poem_1)\n'
        'output("speech", speech_1)\n',
    ),
    (
        "Make a title card announcing a product launch",
        'product_1 = input("product", "Text", default="Loom Lamp")\n'
        'headline_1 = text.template(template="Introducing {{ product }}", product=product_1)\n'
        "card_1 = image.title_card(text=headline_1, width=1280, height=720)\n"
        'output("card", card_1)\n',
    ),
)

_LINE = re.compile(r"line (\d+)")
_STATEMENT = re.compile(r"^\s*(?:[A-Za-z_]\w*\s*=\s*[A-Za-z_][\w.]*\(|output\()")


@dataclass(frozen=True)
class GraphInputInfo:
    """A graph input of a draft: what the user sets per run."""

    name: str
    type: str
    default: Any
    required: bool
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "required": self.required,
            "description": self.description,
        }


@dataclass
class Draft:
    """The drafter's answer: a graph that validates (or a refusal), and how it was made."""

    request: str
    graph: Graph | None
    plan: str
    inputs: list[GraphInputInfo]
    repair_rounds: int
    provider: str
    #: "recipes" when composed from the recipe library, "model" when the LLM's program validated,
    #: "planner" when the planner completed it
    source: Literal["recipes", "model", "planner", "refused"]
    program: str = ""
    #: completions the LLM returned (the first draft and each repair)
    llm_replies: int = 0
    refusal: PlanRefusal | None = None
    candidates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: per clause of the request: its text, the recipes and nodes serving it, the slots read
    clauses: list[dict[str, Any]] = field(default_factory=list)
    #: the example workflow adapted, if one was near enough
    example: str | None = None
    #: for an edit: one line per added (+), removed (-) or changed (~) node or input
    diff: list[str] | None = None

    @property
    def unserved(self) -> list[str]:
        """The clauses of the request that no node of the graph serves."""
        return [clause["text"] for clause in self.clauses if not clause["served"]]

    @property
    def coverage(self) -> float:
        """Share of the request's clauses served by some node (1.0 when the request was not analysed)."""
        return sum(c["served"] for c in self.clauses) / len(self.clauses) if self.clauses else 1.0

    @property
    def ok(self) -> bool:
        return self.graph is not None

    @property
    def inputs_to_fill(self) -> list[GraphInputInfo]:
        """The graph inputs that have no default: the user must give them a value to run the graph."""
        return [info for info in self.inputs if info.required]

    def to_json(self) -> dict[str, Any]:
        """The draft as JSON: the graph document, plan, inputs, rounds, provider and any refusal."""
        return {
            "request": self.request,
            "ok": self.ok,
            "graph": self.graph.to_json() if self.graph is not None else None,
            "program": self.program,
            "plan": self.plan,
            "inputs": [info.to_dict() for info in self.inputs],
            "repair_rounds": self.repair_rounds,
            "provider": self.provider,
            "source": self.source,
            "llm_replies": self.llm_replies,
            "refusal": self.refusal.to_dict() if self.refusal is not None else None,
            "candidates": self.candidates,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
            "clauses": self.clauses,
            "unserved": self.unserved,
            "coverage": round(self.coverage, 4),
            "example": self.example,
            "diff": self.diff,
        }


class DraftState(TypedDict, total=False):
    """What flows through the state machine."""

    request: str
    composition: Composition | None
    candidates: list[Candidate]
    skeleton: PlannedGraph | None
    plan: str
    refusal: PlanRefusal | None
    messages: list[dict[str, str]]
    program: str
    graph: Graph | None
    issues: list[ValidationIssue]
    repairs: int
    #: completions the LLM returned
    replies: int
    valid: bool
    notes: list[str]
    result: Draft


def signature(spec: NodeSpec, optional: int = 3) -> str:
    """A node as one short prompt line: `type(required: Type, optional=default, ...) -> output: Type  # what it does`.

    Only the first `optional` optional inputs are listed, to keep the prompt short for a small model.
    """
    required = [f"{port.name}: {port.type.name}" for port in spec.inputs if port.required]
    extra = [f"{port.name}={port.default!r}" for port in spec.inputs if not port.required][:optional]
    if spec.variadic is not None:
        extra.append("**more")
    outputs = ", ".join(f"{p.name}: {p.type.name}" for p in spec.outputs)
    return f"{spec.type}({', '.join(required + extra)}) -> {outputs}  # {spec.description.split(';')[0]}"


def _depth_change(line: str) -> int:
    """How much a line opens brackets (outside string literals)."""
    depth, quote, escaped = 0, "", False
    for char in line:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
    return depth


def extract_program(reply: str) -> str:
    """The program in an LLM reply: the fenced code if any, keeping only statements of the program's forms
    (a statement may go on over several lines while its brackets are open)."""
    fenced = re.findall(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", reply, flags=re.DOTALL)
    text = fenced[0] if fenced else reply
    kept: list[str] = []
    depth = 0
    for line in text.splitlines():
        if depth > 0 or _STATEMENT.match(line):
            kept.append(line.rstrip())
            depth = max(depth + _depth_change(line), 0)
    return "\n".join(kept)


def _sketch(graph: Graph, registry: NodeRegistry) -> str:
    """The planner's graph as a compact program for the prompt: no descriptions, one line per statement."""
    document = graph.to_json()
    for declared in document["inputs"].values():
        declared.pop("description", None)
    return decompile(document, catalog=registry)


def _inputs_of(graph: Graph) -> list[GraphInputInfo]:
    return [
        GraphInputInfo(
            name,
            declared.type.name,
            None if declared.default is REQUIRED else declared.default,
            declared.default is REQUIRED,
            declared.description,
        )
        for name, declared in graph.inputs.items()
    ]


def _served(composition: Composition, graph: Graph) -> int:
    """How many of the composition's clauses `graph` serves: it has every node type their recipes use."""
    types = {instance.type for instance in graph.nodes.values()}
    needed: dict[int, set[str]] = {}
    for step in composition.steps:
        needed.setdefault(step.clause, set()).update(
            t for t in step.recipe.node_types if composition.graph is None or
            any(i.type == t for i in composition.graph.nodes.values()))
    return sum(bool(kinds) and kinds <= types for kinds in needed.values())


def _clause_reports(composition: Composition | None, graph: Graph | None) -> list[dict[str, Any]]:
    """The composition's per-clause account, its node lists narrowed to the nodes of the final graph."""
    if composition is None:
        return []
    reports = []
    for clause in composition.clauses:
        report = clause.to_dict()
        if graph is not composition.graph:
            kinds = {composition.graph.nodes[n].type for n in clause.nodes} if composition.graph else set()
            report["nodes"] = sorted(n for n, i in graph.nodes.items() if i.type in kinds) if graph else []
            report["served"] = bool(report["nodes"])
        reports.append(report)
    return reports


class Drafter:
    """The compiled state machine for one catalog and one LLM provider."""

    def __init__(
        self,
        registry: NodeRegistry,
        provider: ProviderChoice,
        *,
        max_repairs: int = DEFAULT_MAX_REPAIRS,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        if max_repairs < 0:
            raise ValueError("max_repairs must be 0 or more")
        self.registry = registry
        self.choice = provider
        self.max_repairs = max_repairs
        self.on_progress = on_progress
        self._llm = provider.open()
        machine = StateGraph(DraftState)
        machine.add_node("compose", self.compose)
        machine.add_node("retrieve", self.retrieve)
        machine.add_node("plan", self.plan)
        machine.add_node("write", self.write)
        machine.add_node("compile", self.compile)
        machine.add_node("validate", self.validate)
        machine.add_node("repair", self.repair)
        machine.add_node("finalize", self.finalize)
        machine.add_edge(START, "compose")
        machine.add_conditional_edges("compose", self._after_compose, {"retrieve": "retrieve", "finalize": "finalize"})
        machine.add_edge("retrieve", "plan")
        machine.add_conditional_edges("plan", self._after_plan, {"write": "write", "finalize": "finalize"})
        machine.add_edge("write", "compile")
        machine.add_edge("compile", "validate")
        machine.add_conditional_edges("validate", self._after_validate, {"repair": "repair", "finalize": "finalize"})
        machine.add_edge("repair", "compile")
        machine.add_edge("finalize", END)
        self.machine = machine.compile()

    def _say(self, step: str, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(step, message)

    # -- steps ---------------------------------------------------------------------
    def compose(self, state: DraftState) -> DraftState:
        request = state["request"]
        notes = list(state.get("notes", []))
        try:
            composition: Composition | None = compose(request, self.registry)
        except RetrievalUnavailable as error:
            notes.append(f"recipe composition unavailable ({error})")
            return {"composition": None, "notes": notes}
        assert composition is not None
        if composition.graph is None or composition.issues or self._unmakeable(request):
            why = "no recipe serves the request" if composition.graph is None else (
                f"{len(composition.issues)} validation problem(s)" if composition.issues else
                "the request asks for an output no recipe makes")
            notes.append(f"recipe composition not used: {why}")
            self._say("compose", why)
            return {"composition": None if composition.graph is None or composition.issues else composition,
                    "notes": notes}
        steps = ", ".join(step.recipe.name for step in composition.steps)
        self._say("compose", f"{steps} (coverage {composition.coverage:.2f})")
        return {"composition": composition, "notes": notes}

    def _unmakeable(self, request: str) -> bool:
        """The request names a media output (video, image, audio) that no available recipe makes."""
        kinds = {Video: {"video"}, Image: {"image", "images"}, Audio: {"audio"}}
        recipes = [r for r in RecipeIndex.get().recipes if r.available_in(self.registry)]
        return any(goal in kinds and not any(r.produces in kinds[goal] for r in recipes)
                   for goal in goal_types(request))

    def retrieve(self, state: DraftState) -> DraftState:
        try:
            found = retrieve(state["request"], self.registry, CANDIDATE_LIMIT)
            note: list[str] = []
        except RetrievalUnavailable as error:  # drafting still works, by the registry's word search
            found = [Candidate(spec, 0.0) for spec in self.registry.search(state["request"], CANDIDATE_LIMIT)]
            note = [f"retrieval by meaning unavailable ({error}); used word search"]
        self._say("retrieve", ", ".join(c.type for c in found))
        return {"candidates": found, "notes": [*state.get("notes", []), *note]}

    def plan(self, state: DraftState) -> DraftState:
        request = state["request"]
        names = [c.type for c in state["candidates"]]
        try:
            skeleton = complete_graph(request, self.registry, candidates=names)
        except PlanningRefused as refused:
            self._say("plan", f"refused: {refused.refusal.message}")
            return {"skeleton": None, "refusal": refused.refusal, "plan": refused.refusal.message}
        goals = ", ".join(goal.name for goal in goal_types(request))
        lines = [f"The request asks for: {goals}."]
        for node_id in skeleton.added:
            node_type = skeleton.graph.nodes[node_id].type
            spec = self.registry.get(node_type).spec
            rank = names.index(node_type) + 1 if node_type in names else None
            why = f"retrieved as candidate {rank}" if rank else "needed to make an input of the next node"
            lines.append(f"- {node_id} = {node_type}: {spec.description} ({why})")
        plan = "\n".join(lines)
        self._say("plan", plan)
        return {"skeleton": skeleton, "plan": plan, "refusal": None}

    def write(self, state: DraftState) -> DraftState:
        listed = [c.spec for c in state["candidates"]]
        skeleton = state.get("skeleton")
        if skeleton is not None:
            for instance in skeleton.graph.nodes.values():
                spec = self.registry.get(instance.type).spec
                if spec not in listed:
                    listed.append(spec)
        composition = state.get("composition")
        if composition is not None and composition.graph is not None:
            for node_type in {instance.type for instance in composition.graph.nodes.values()}:
                spec = self.registry.get(node_type).spec
                if spec not in listed:
                    listed.append(spec)
        catalog = "\n".join(signature(spec) for spec in listed)
        if composition is not None and composition.graph is not None:
            sketch = _sketch(composition.graph, self.registry)
        else:
            sketch = _sketch(skeleton.graph, self.registry) if skeleton is not None else ""
        messages = [{"role": "system", "content": f"{RULES}\n\nNodes:\n{catalog}{self._menu(composition)}"}]
        for request, program in EXAMPLES:  # few-shot, as earlier turns of the conversation
            messages += [{"role": "user", "content": f"Request: {request}"},
                         {"role": "assistant", "content": program}]
        messages.append({
            "role": "user",
            "content": f"Request: {state['request']}\nPlan:\n{state['plan']}\n"
                       f"A program that follows the plan; write it again, with values that fit the request:\n{sketch}",
        })
        return self._ask(state, messages)

    def _menu(self, composition: Composition | None) -> str:
        """The recipe menu for a capable model: the recipes the composition chose, with their typed interfaces
        (kept short: the prompt's length is the model's time)."""
        if composition is None:
            return ""
        chosen = {step.recipe.name: step.recipe for step in composition.steps}
        lines = [recipe.menu_line() for recipe in chosen.values()]
        return "\n\nRecipes (tested building blocks) for this request:\n" + "\n".join(lines)

    def _ask(self, state: DraftState, messages: list[dict[str, str]], round_: int = 0) -> DraftState:
        notes = list(state.get("notes", []))
        # the first try is greedy; a repair samples, or it would write the same program again
        temperature, seed = (0.0, 7) if round_ == 0 else (0.8, 7 + round_)
        try:
            reply = generate(self._llm, messages, max_tokens=PROGRAM_TOKENS, model=self.choice.model,
                             temperature=temperature, seed=seed)
        except NodeloomError as error:  # the LLM is unreachable or refused: the planner answers alone
            notes.append(f"the LLM failed: {error}")
            reply = None
        program = extract_program(reply or "")
        self._say("write", program or "(no program)")
        return {
            "messages": [*messages, {"role": "assistant", "content": reply or ""}],
            "program": program,
            "notes": notes,
            "replies": state.get("replies", 0) + (reply is not None),
        }

    def compile(self, state: DraftState) -> DraftState:
        try:
            graph = compile_program(state["program"], self.registry)
        except ProgramError as error:
            self._say("compile", f"{len(error.issues)} problem(s)")
            return {"graph": None, "issues": error.issues, "valid": False}
        return {"graph": graph}

    def validate(self, state: DraftState) -> DraftState:
        graph = state.get("graph")
        if graph is None:
            return {"valid": False}
        issues = validate_graph(graph, self.registry) or self._off_plan(graph, state.get("skeleton"))
        self._say("validate", "valid" if not issues else f"{len(issues)} problem(s)")
        return {"issues": issues, "valid": not issues}

    @staticmethod
    def _off_plan(graph: Graph, skeleton: PlannedGraph | None) -> list[ValidationIssue]:
        """A valid program that leaves out most of the plan's nodes is taken as off the request."""
        if skeleton is None:
            return []
        planned = {instance.type for instance in skeleton.graph.nodes.values()}
        missing = sorted(planned - {instance.type for instance in graph.nodes.values()})
        if len(missing) * 2 <= len(planned):
            return []
        return [ValidationIssue(OFF_PLAN, "the program leaves out the planned nodes " + ", ".join(missing),
                                hint="use the nodes of the plan")]

    def repair(self, state: DraftState) -> DraftState:
        rounds = state.get("repairs", 0) + 1
        self._say("repair", f"round {rounds}")
        problems = "\n".join(f"- {issue}" for issue in state.get("issues", [])[:ISSUES_PER_REPAIR])
        feedback = (
            f"The program has these problems:\n{problems}\n"
            "Reply with the whole corrected program only, using only the listed nodes."
        )
        messages = [*state["messages"], {"role": "user", "content": feedback}]
        return {**self._ask(state, messages, rounds), "repairs": rounds}

    def finalize(self, state: DraftState) -> DraftState:
        request = state["request"]
        names = [c.type for c in state.get("candidates", [])]
        notes = list(state.get("notes", []))
        refusal = state.get("refusal")
        graph: Graph | None = None
        source: Literal["recipes", "model", "planner", "refused"] = "refused"
        composition = state.get("composition")
        composed = composition.graph if composition is not None else None
        if composition is not None and composed is not None:
            model_graph = state.get("graph") if state.get("valid") else None
            if model_graph is not None and _served(composition, model_graph) >= _served(composition, composed):
                graph, source = model_graph, "model"
            else:
                graph, source = composed, "recipes"
                if model_graph is None and state.get("program"):
                    notes.append("the LLM's program did not validate; the recipe composition answers")
            graph.description = request
            self._say("finalize", f"{len(graph.nodes)} nodes, from the {source}")
        elif refusal is None:
            valid = bool(state.get("valid"))
            off_plan = any(issue.code == OFF_PLAN for issue in state.get("issues", []))
            # an off-plan program is dropped: the planner's own chain serves the request better
            draft = state.get("graph") if valid else None if off_plan else self._partial(state)
            try:
                completed = complete_graph(request, self.registry, candidates=names, draft=draft)
            except PlanningRefused as refused:
                refusal = refused.refusal
            else:
                notes.extend(completed.notes)
                graph = completed.graph
                graph.description = request
                source = "model" if valid else "planner"
                self._say("finalize", f"{len(graph.nodes)} nodes, from the {source}")
        result = Draft(
            request=request,
            graph=graph,
            plan=state.get("plan", ""),
            inputs=_inputs_of(graph) if graph is not None else [],
            repair_rounds=state.get("repairs", 0),
            provider=self.choice.name,
            source=source,
            program=state.get("program", ""),
            llm_replies=state.get("replies", 0),
            refusal=refusal,
            candidates=names,
            notes=notes,
            clauses=_clause_reports(composition, graph),
            example=composition.example if composition is not None else None,
        )
        return {"result": result}

    def _partial(self, state: DraftState) -> Graph | None:
        """The last draft that compiled, even if invalid; else what compiles of the program once the
        statements the compiler names are left out (the planner completes either)."""
        graph = state.get("graph")
        if graph is not None:
            return graph
        lines = state.get("program", "").splitlines()
        for _ in range(4):
            try:
                return compile_program("\n".join(lines), self.registry)
            except ProgramError as error:
                bad = {int(m.group(1)) for issue in error.issues if (m := _LINE.match(issue.message))}
                if not bad:
                    return None
                lines = [line if number not in bad else "" for number, line in enumerate(lines, 1)]
        return None

    # -- routing -------------------------------------------------------------------
    def _after_compose(self, state: DraftState) -> str:
        composition = state.get("composition")
        if composition is not None and composition.graph is not None and not composition.issues \
                and self.choice.name == "local":
            return "finalize"
        return "retrieve"

    @staticmethod
    def _after_plan(state: DraftState) -> str:
        return "finalize" if state.get("refusal") is not None else "write"

    def _after_validate(self, state: DraftState) -> str:
        if state.get("valid") or state.get("repairs", 0) >= self.max_repairs:
            return "finalize"
        return "repair"

    def run(self, request: str, base: Graph | Mapping[str, Any] | None = None) -> Draft:
        """Draft a graph for `request`; with `base`, edit that graph as the request says (`agents.edit`)."""
        if base is not None:
            return self.edit(request, base)
        start = time.perf_counter()
        final = self.machine.invoke(
            {"request": request, "repairs": 0, "notes": []},
            {"recursion_limit": 10 + 4 * self.max_repairs},  # each repair round is three steps
        )
        result: Draft = final["result"]
        result.seconds = time.perf_counter() - start
        return result


    def edit(self, instruction: str, base: Graph | Mapping[str, Any]) -> Draft:
        """Edit `base` as the instruction says: the new graph and a readable diff, or a refusal with the issues."""
        from nodeloom.agents.edit import edit_graph

        start = time.perf_counter()
        try:
            result = edit_graph(base, instruction, self.registry)
        except (GraphValidationError, ValueError, TypeError) as error:
            unreadable = PlanRefusal("invalid_base", f"the base graph cannot be read: {error}")
            return Draft(instruction, None, "", [], 0, self.choice.name, "refused", refusal=unreadable,
                         seconds=time.perf_counter() - start)
        refusal: PlanRefusal | None = None
        if result.graph is None:
            refusal = PlanRefusal("invalid_edit", "the edited graph does not validate: " +
                                  "; ".join(str(issue) for issue in result.issues[:5]),
                                  tuple(str(issue) for issue in result.issues))
        self._say("edit", "; ".join(result.diff) or "no change")
        reports = [clause.to_dict() for clause in result.clauses]
        return Draft(
            instruction, result.graph, "\n".join(result.diff), _inputs_of(result.graph) if result.graph else [],
            0, self.choice.name, "recipes" if result.graph is not None else "refused", refusal=refusal,
            clauses=reports, diff=result.diff, seconds=time.perf_counter() - start,
        )


def draft(
    text: str,
    *,
    provider: str = "local",
    base_url: str | None = None,
    model: str = "",
    registry: NodeRegistry | None = None,
    max_repairs: int = DEFAULT_MAX_REPAIRS,
    on_progress: ProgressCallback | None = None,
    base: Graph | Mapping[str, Any] | None = None,
) -> Draft:
    """Draft a graph for a request in words: a `Draft` whose graph validates, or whose `refusal` says why not.

    `provider` is `local` (the embedded SmolLM2 model) or `openai` (an OpenAI-compatible server at
    `base_url`, serving `model`). `max_repairs` bounds the rounds of feeding validation errors
    back to the LLM. With `base` (a graph or its JSON document), the request is an instruction to
    edit that graph (`agents.edit`): the answer holds the edited graph and a readable `diff`.
    `Draft.to_json()` is the JSON answer (the REST API's `POST /v1/drafts`).
    """
    if not text.strip():
        refusal = PlanRefusal("empty_request", "the request is empty; describe the workflow in a sentence")
        return Draft(text, None, "", [], 0, provider, "refused", refusal=refusal)
    drafter = Drafter(
        registry if registry is not None else default_registry(),
        ProviderChoice(provider, base_url, model),
        max_repairs=max_repairs,
        on_progress=on_progress,
    )
    return drafter.run(text, base=base)


__all__: Sequence[str] = ("Draft", "Drafter", "GraphInputInfo", "draft", "extract_program", "signature")
