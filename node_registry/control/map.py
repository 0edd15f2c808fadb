"""`control.map`: apply one node type to every item of a list, several items at a time.

The target node type is looked up in the run's catalog, and the items and constant
inputs are checked against its ports before anything runs. Each item runs in a thread
of a pool of `concurrency` threads, with a `NodeContext` of its own (node id
`map_id[index]`) and the target's own retry policy; results keep the order of the items.
Items of one run share a cap, `MAX_RUN_ITEMS` running at once across all its maps,
nested ones included: a map inside a map's item runs an item in its own thread (the slot
its item already holds) when no slot is free, so nesting neither multiplies threads nor
deadlocks. The first failing item stops the map: items not started are dropped, running ones see
their context report cancellation, and the error names the item's index.

Each item is cached on its own when the run has a result cache: its key is the one a node
of the target type with the item and the constant inputs as literals would have (type,
version, inputs), so a re-run with one item changed runs only that item, and the map's
progress says how many items came from the cache ("10 of 10 items done: 9 cached, 1 run").
A non-deterministic target is cached per item only when a `seed` is among the constants.
A map whose literal `node` names a deterministic type is itself repeatable, so the executor
caches the whole map like any deterministic node (and a re-run does not start it at all).

One limit of a node running nodes: a `gpu` target runs its items one at a time outside the
executor's GPU lanes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from nodeloom.core.cache import ResultCache, cache_key, static_part
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError, NodeloomError
from nodeloom.core.ports import Port, Range
from nodeloom.core.spec import InputProblem, NodeDefinition, NodePreflight, node
from nodeloom.core.validate import NAME_PATTERN

#: how often the map looks for a cancelled run while its items are running
_POLL_SECONDS = 0.05

#: items running at once in one run, across all its maps (nested maps share it)
MAX_RUN_ITEMS = max(4, os.cpu_count() or 1)


class _RunSlots:
    """The item slots of one run, and how many maps of the run are using them."""

    def __init__(self) -> None:
        self.semaphore = threading.BoundedSemaphore(MAX_RUN_ITEMS)
        self.users = 0


_slots_lock = threading.Lock()
_slots_by_run: dict[str, _RunSlots] = {}
#: the slots whose semaphore the current thread holds while it runs an item
_held = threading.local()


@contextlib.contextmanager
def _run_slots(run_id: str) -> Iterator[_RunSlots]:
    with _slots_lock:
        slots = _slots_by_run.setdefault(run_id, _RunSlots())
        slots.users += 1
    try:
        yield slots
    finally:
        with _slots_lock:
            slots.users -= 1
            if slots.users == 0:
                del _slots_by_run[run_id]


def _failure(message: str, **details: Any) -> NodeExecutionError:
    return NodeExecutionError(f"control.map: {message}", retryable=False, details=details)


def _names(ports: Mapping[str, Port]) -> str:
    return ", ".join(sorted(ports)) or "(none)"


@dataclass(frozen=True, slots=True)
class MapPlan:
    """A checked application: the target, its constant inputs (coerced), where items go."""

    definition: NodeDefinition
    constants: dict[str, Any]
    item_port: Port
    #: the items, coerced to the item port's type
    items: list[Any]
    output: str


def _input_port(definition: NodeDefinition, name: str) -> Port | None:
    spec = definition.spec
    found = spec.input_map.get(name)
    if found is None and spec.variadic is not None and NAME_PATTERN.match(name):
        return Port(name, spec.variadic)
    return found


def _misfit(port: Port, value: Any, where: str, type_name: str, map_port: str) -> InputProblem | None:
    problem = port.check_value(value)
    if problem is None:
        return None
    code, message, hint = problem
    return InputProblem(
        code, f"{where} does not fit input {port.name!r} of {type_name}: {message}" + (f" ({hint})" if hint else ""),
        port=map_port,
    )


def map_problems(
    definition: NodeDefinition,
    item_input: str,
    inputs: Mapping[str, Any],
    items: list[Any] | None,
    output: str | None,
    linked: Iterable[str] = (),
) -> list[InputProblem]:
    """Every problem of applying `definition` to `items` with the constant `inputs`, before any of it
    runs. `items` None: not known yet; `linked`: constants that arrive over links (known at run time).
    Each problem's port is the map's own (`items`, `item_input`, `inputs`, `output`)."""
    spec = definition.spec
    problems: list[InputProblem] = []
    item_port = _input_port(definition, item_input)
    if item_port is None:
        problems.append(InputProblem(
            "unknown_port",
            f"{spec.type} has no input {item_input!r} to receive the items; its inputs: {_names(spec.input_map)}",
            port="item_input",
        ))
    if item_input in inputs:
        problems.append(InputProblem(
            "unknown_port", f"{item_input!r} receives the items, so it cannot also be among `inputs`", port="inputs"
        ))
    for name, value in inputs.items():
        port = _input_port(definition, name)
        if port is None:
            problems.append(InputProblem(
                "unknown_port", f"{spec.type} has no input {name!r}; its inputs: {_names(spec.input_map)}",
                port="inputs",
            ))
        elif name != item_input and (misfit := _misfit(port, value, f"`inputs` value {name!r}", spec.type, "inputs")):
            problems.append(misfit)
    given = {*inputs, *linked, item_input}
    missing = [p.name for p in spec.inputs if p.required and p.name not in given]
    if missing:
        problems.append(InputProblem(
            "missing_input", f"{spec.type} needs inputs {missing}; give them in `inputs`", port="inputs"
        ))
    if output is None:
        if len(spec.outputs) != 1:
            problems.append(InputProblem(
                "unknown_port", f"{spec.type} has outputs {_names(spec.output_map)}; choose one with `output`",
                port="output",
            ))
    elif output not in spec.output_map:
        problems.append(InputProblem(
            "unknown_port", f"{spec.type} has no output {output!r}; its outputs: {_names(spec.output_map)}",
            port="output",
        ))
    if item_port is not None and items is not None:
        for index, item in enumerate(items):
            if (misfit := _misfit(item_port, item, f"item {index}", spec.type, "items")) is not None:
                problems.append(misfit)
    return problems


def plan_map(
    definition: NodeDefinition,
    item_input: str,
    inputs: Mapping[str, Any],
    items: list[Any],
    output: str | None,
) -> MapPlan:
    """Check an application of `definition` to `items` before running any of it."""
    problems = map_problems(definition, item_input, inputs, items, output)
    if problems:
        first = problems[0]
        raise _failure(first.message, port=first.port, reason=first.code)
    item_port = _input_port(definition, item_input)
    assert item_port is not None  # map_problems said so
    constants = {name: _coerced(_input_port(definition, name), value) for name, value in inputs.items()}
    chosen = output if output is not None else definition.spec.outputs[0].name
    return MapPlan(definition, constants, item_port, [_coerced(item_port, item) for item in items], chosen)


def _coerced(port: Port | None, value: Any) -> Any:
    return port.type.coerce(value) if port is not None and value is not None else value


def _retryable(error: BaseException) -> bool:
    """As the executors judge it: our errors say so; a foreign exception may be transient."""
    return bool(getattr(error, "retryable", not isinstance(error, NodeloomError)))


def _item_inputs(plan: MapPlan, index: int) -> dict[str, Any]:
    return {**plan.constants, plan.item_port.name: plan.items[index]}


def item_key(plan: MapPlan, index: int) -> str | None:
    """The cache key of one item: that of a node of the target type given the item and the
    constants as literals; None when the target is not repeatable or a value has no stable form."""
    spec = plan.definition.spec
    inputs = _item_inputs(plan, index)
    if not spec.deterministic and ("seed" not in spec.input_map or inputs.get("seed") is None):
        return None
    try:
        return cache_key([static_part(spec.type, spec.version, inputs)])
    except (TypeError, ValueError):
        return None


def _cached_output(cache: ResultCache, key: str | None, output: str) -> tuple[bool, Any]:
    """(True, the output) when the cache holds the item's outputs, else (False, None)."""
    if key is None:
        return False, None
    hit = cache.get(key)
    if hit is None or output not in hit:
        return False, None
    return True, hit[output]


def _run_item(plan: MapPlan, index: int, parent: NodeContext, stop: threading.Event) -> Any:
    """One item, with the target's retry policy; returns the collected output (and caches the
    item's outputs in the run's cache)."""
    definition = plan.definition
    node_id = f"{parent.node_id}[{index}]"
    inputs = _item_inputs(plan, index)
    policy = definition.spec.retry
    attempt = 1
    while True:
        ctx = NodeContext(
            run_id=parent.run_id,
            node_id=node_id,
            artifacts=parent.artifacts,
            config=parent.config,
            attempt=attempt,
            device=parent.device,
            is_cancelled=lambda: stop.is_set() or parent.cancelled,
            catalog=parent.catalog,
        )
        try:
            if definition.is_async:
                outputs = asyncio.run(definition.invoke_async(node_id, inputs, ctx))
            else:
                outputs = definition.invoke(node_id, inputs, ctx)
            if parent.cache is not None:
                key = item_key(plan, index)
                if key is not None:
                    parent.cache.put(key, outputs)
            return outputs[plan.output]
        except Exception as error:
            if not _retryable(error) or attempt >= policy.max_attempts or stop.wait(policy.delay(attempt)):
                raise
            attempt += 1


def _run_slotted(slots: _RunSlots, plan: MapPlan, index: int, parent: NodeContext, stop: threading.Event) -> Any:
    """An item in a pool thread, holding one of the run's slots (released when its future is done)."""
    _held.slots = slots
    try:
        return _run_item(plan, index, parent, stop)
    finally:
        _held.slots = None


def _describe(error: BaseException) -> tuple[str, dict[str, Any]]:
    if isinstance(error, NodeloomError):
        details = {k: v for k, v in error.details.items() if k != "node" and v is not None}
        return error.message, {"code": error.code, "message": error.message, **details}
    text = f"{type(error).__name__}: {error}"
    return text, {"code": "node_error", "message": text}


def _repeatable(literals: Mapping[str, Any], catalog: Any) -> str | None:
    """A map is repeatable when its literal `node` names a deterministic node type; the target's
    version joins the map's cache key, so a new version of it runs the map again."""
    target = literals.get("node")
    definition = catalog.find(target) if isinstance(target, str) and catalog is not None else None
    if definition is None or not definition.spec.deterministic:
        return None
    return f"{definition.spec.type}@{definition.spec.version}"


#: the map's own inputs; any other input is a constant for the target (`**linked`)
_MAP_PORTS = frozenset({"node", "items", "item_input", "inputs", "concurrency", "output"})


def _preflight(use: NodePreflight) -> list[InputProblem]:
    """Before the run: the target exists, and the items and constants known by then fit its ports."""
    known = use.inputs
    target = known.get("node")
    if not isinstance(target, str) or use.catalog is None:
        return []  # linked: known at run time only
    definition = use.catalog.find(target)
    if definition is None:
        suggestions = use.catalog.suggest(target)
        return [InputProblem(
            "unknown_node_type", f"control.map: unknown node type {target!r}", port="node",
            hint=f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions
            else "run 'nodeloom nodes' to list the node types",
        )]
    item_input = known.get("item_input")
    if not isinstance(item_input, str) or "inputs" in use.linked:
        return []
    constants = {**(known.get("inputs") or {}), **{k: v for k, v in known.items() if k not in _MAP_PORTS}}
    items = known.get("items")
    output = known.get("output")
    problems = map_problems(definition, item_input, constants, items if isinstance(items, list) else None,
                            output if isinstance(output, str) else None,
                            linked=[name for name in use.linked if name not in _MAP_PORTS])
    if "output" in use.linked:
        problems = [p for p in problems if p.port != "output"]
    return [InputProblem(p.code, f"control.map: {p.message}", p.port, p.hint) for p in problems]


@node("control.map", resources="io", deterministic=False, output="results", repeatable=_repeatable,
      preflight=_preflight)
def control_map(
    ctx: NodeContext,
    node: Annotated[str, "the node type to apply to each item, e.g. 'text.template'"],
    items: Annotated[list[Any], "the items; the node runs once per item"],
    item_input: Annotated[str, "the input of that node that receives the item"],
    inputs: Annotated[dict[str, Any], "the node's other inputs, the same for every item"] | None = None,
    concurrency: Annotated[int, Range(1, 64), "how many items run at once"] = 4,
    output: Annotated[str, "which output of the node to collect (default: its only output)"] | None = None,
    **linked: Annotated[Any, "any other input is passed to the node for every item, like `inputs` (it may be a link)"],
) -> list[Any]:
    """Run a node type once per item of a list, concurrently; results in item order."""
    if ctx.catalog is None:
        raise _failure("needs the run's node catalog (ctx.catalog); run it through an executor")
    definition = ctx.catalog.find(node)
    if definition is None:
        suggestions = ctx.catalog.suggest(node)
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        raise _failure(f"unknown node type {node!r}{hint}", node_type=node, suggestions=suggestions)
    overlap = sorted(set(linked) & set(inputs or {}))
    if overlap:
        raise _failure(f"inputs {overlap} are given both in `inputs` and as inputs of the map", ports=overlap)
    plan = plan_map(definition, item_input, {**(inputs or {}), **linked}, items, output)
    if not items:
        return []
    if definition.spec.resources.kind == "gpu":
        concurrency = 1  # outside the GPU lanes, one at a time is the only safe share of a device
    with _run_slots(ctx.run_id) as slots:
        return _map_items(ctx, plan, node, concurrency, slots)


def _map_items(ctx: NodeContext, plan: MapPlan, node: str, concurrency: int, slots: _RunSlots) -> list[Any]:
    items = plan.items
    total = len(items)
    results: list[Any] = [None] * total
    # items the run's cache holds are taken from it first; only the others run
    todo: list[int] = []
    cache = ctx.cache
    for index in range(total):
        found, value = (False, None) if cache is None else _cached_output(cache, item_key(plan, index), plan.output)
        if found:
            results[index] = value
        else:
            todo.append(index)
    cached = total - len(todo)
    if cached:
        ctx.progress(cached, total, _progress_text(cached, total, cached))
    if not todo:
        return results
    stop = threading.Event()
    # inside another map's item, this thread holds a slot: it runs items itself when none is free
    nested = getattr(_held, "slots", None) is slots
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(concurrency, len(todo)), thread_name_prefix=f"map-{ctx.node_id}"
    )
    finished = False
    try:
        futures: dict[concurrent.futures.Future[Any], int] = {}
        pending: set[concurrent.futures.Future[Any]] = set()
        next_todo = 0
        while pending or next_todo < len(todo):
            while next_todo < len(todo) and len(pending) < concurrency and slots.semaphore.acquire(
                timeout=0 if pending or nested else _POLL_SECONDS
            ):
                future = pool.submit(_run_slotted, slots, plan, todo[next_todo], ctx, stop)
                future.add_done_callback(lambda _: slots.semaphore.release())
                futures[future] = todo[next_todo]
                pending.add(future)
                next_todo += 1
            inline: dict[int, BaseException] = {}
            if nested and next_todo < len(todo) and len(pending) < concurrency:
                index = todo[next_todo]
                try:
                    results[index] = _run_item(plan, index, ctx, stop)
                except Exception as failed:
                    inline[index] = failed
                next_todo += 1
            done: set[concurrent.futures.Future[Any]] = set()
            if pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=0 if inline else _POLL_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
                )
            ctx.check_cancelled()
            errors = {futures[f]: error for f in done if (error := f.exception()) is not None} | inline
            if errors:
                index = min(errors)
                error = errors[index]
                message, inner = _describe(error)
                raise NodeExecutionError(
                    f"control.map: item {index} ({node}) failed: {message}",
                    retryable=_retryable(error),
                    details={"item": index, "node_type": node, "inner": inner},
                ) from error
            for future in done:
                results[futures[future]] = future.result()
            if done or inline:
                count = cached + next_todo - len(pending)
                ctx.progress(count, total, _progress_text(count, total, cached))
        finished = True
    finally:
        stop.set()
        # on failure or cancellation, running items are told to stop but not waited for
        pool.shutdown(wait=finished, cancel_futures=True)
    return results


def _progress_text(count: int, total: int, cached: int) -> str:
    """"7 of 10 items done: 5 cached, 2 run" (the cached ones were taken from the run's cache)."""
    return f"{count} of {total} items done: {cached} cached, {count - cached} run"
