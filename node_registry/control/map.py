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

Two limits of a node running nodes: the target's results are not cached one by one (and
the map itself is not cached, since the target may not be deterministic), and a `gpu`
target runs its items one at a time outside the executor's GPU lanes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError, NodeloomError
from nodeloom.core.ports import Port, Range
from nodeloom.core.spec import NodeDefinition, node
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


def _checked(port: Port, value: Any, where: str, type_name: str) -> Any:
    problem = port.check_value(value)
    if problem is not None:
        code, message, hint = problem
        raise _failure(
            f"{where} does not fit input {port.name!r} of {type_name}: {message}" + (f" ({hint})" if hint else ""),
            port=port.name,
            reason=code,
        )
    return port.type.coerce(value) if value is not None else None


def plan_map(
    definition: NodeDefinition,
    item_input: str,
    inputs: Mapping[str, Any],
    items: list[Any],
    output: str | None,
) -> MapPlan:
    """Check an application of `definition` to `items` before running any of it."""
    spec = definition.spec
    item_port = _input_port(definition, item_input)
    if item_port is None:
        raise _failure(
            f"{spec.type} has no input {item_input!r} to receive the items; its inputs: {_names(spec.input_map)}",
            port=item_input,
        )
    if item_input in inputs:
        raise _failure(f"{item_input!r} receives the items, so it cannot also be among `inputs`", port=item_input)
    constants: dict[str, Any] = {}
    for name, value in inputs.items():
        port = _input_port(definition, name)
        if port is None:
            raise _failure(f"{spec.type} has no input {name!r}; its inputs: {_names(spec.input_map)}", port=name)
        constants[name] = _checked(port, value, f"`inputs` value {name!r}", spec.type)
    missing = [p.name for p in spec.inputs if p.required and p.name != item_input and p.name not in inputs]
    if missing:
        raise _failure(f"{spec.type} needs inputs {missing}; give them in `inputs`", missing=missing)
    if output is None:
        if len(spec.outputs) != 1:
            raise _failure(
                f"{spec.type} has outputs {_names(spec.output_map)}; choose one with `output`",
            )
        output = spec.outputs[0].name
    elif output not in spec.output_map:
        raise _failure(f"{spec.type} has no output {output!r}; its outputs: {_names(spec.output_map)}", port=output)
    checked = [_checked(item_port, item, f"item {index}", spec.type) for index, item in enumerate(items)]
    return MapPlan(definition, constants, item_port, checked, output)


def _retryable(error: BaseException) -> bool:
    """As the executors judge it: our errors say so; a foreign exception may be transient."""
    return bool(getattr(error, "retryable", not isinstance(error, NodeloomError)))


def _run_item(plan: MapPlan, index: int, parent: NodeContext, stop: threading.Event) -> Any:
    """One item, with the target's retry policy; returns the collected output."""
    definition = plan.definition
    node_id = f"{parent.node_id}[{index}]"
    inputs = {**plan.constants, plan.item_port.name: plan.items[index]}
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


@node("control.map", resources="io", deterministic=False, output="results")
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
    results: list[Any] = [None] * len(items)
    stop = threading.Event()
    # inside another map's item, this thread holds a slot: it runs items itself when none is free
    nested = getattr(_held, "slots", None) is slots
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(concurrency, len(items)), thread_name_prefix=f"map-{ctx.node_id}"
    )
    finished = False
    try:
        futures: dict[concurrent.futures.Future[Any], int] = {}
        pending: set[concurrent.futures.Future[Any]] = set()
        next_index = 0
        while pending or next_index < len(items):
            while next_index < len(items) and len(pending) < concurrency and slots.semaphore.acquire(
                timeout=0 if pending or nested else _POLL_SECONDS
            ):
                future = pool.submit(_run_slotted, slots, plan, next_index, ctx, stop)
                future.add_done_callback(lambda _: slots.semaphore.release())
                futures[future] = next_index
                pending.add(future)
                next_index += 1
            inline: dict[int, BaseException] = {}
            if nested and next_index < len(items) and len(pending) < concurrency:
                try:
                    results[next_index] = _run_item(plan, next_index, ctx, stop)
                except Exception as failed:
                    inline[next_index] = failed
                next_index += 1
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
                count = next_index - len(pending)
                ctx.progress(count, len(items), f"{count} of {len(items)} items done")
        finished = True
    finally:
        stop.set()
        # on failure or cancellation, running items are told to stop but not waited for
        pool.shutdown(wait=finished, cancel_futures=True)
    return results
