"""Node specs and the `@node` decorator.

A node is a typed Python function::

    @node("text.shout", description="Upper-case a text.")
    def shout(text: str, times: Annotated[int, Range(1, 10)] = 1) -> str:
        return text.upper() * times

Parameters become input ports (constraints and a description go in `Annotated`), the
return annotation becomes the output ports: one port named `output` (default "result"),
or several from a `NamedTuple`/`TypedDict`. A parameter annotated `NodeContext` receives
the run context; a `**kwargs` parameter accepts extra, named inputs ("variadic" nodes such
as `text.template`). A class with a `run` method is the stateful form: one instance per
process, created on first use, so a loaded model stays loaded between runs.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import threading
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Generic, Literal, ParamSpec, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from nodeloom.core.context import NodeContext, RunConfig
from nodeloom.core.errors import NodeDefinitionError, NodeExecutionError
from nodeloom.core.issues import InputProblem as InputProblem  # re-exported: node packs take it from here
from nodeloom.core.issues import ValidationIssue
from nodeloom.core.ports import REQUIRED, Choices, Constraint, Pattern, Port, Range
from nodeloom.core.types import Int, PortType, Text, type_from_annotation

TYPE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
ResourceKind = Literal["cpu", "io", "gpu"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing node is tried, and how long to wait between tries.

    The wait before try n+1 is `initial_backoff * backoff_multiplier**(n-1)`, capped at
    `max_backoff`, with up to `jitter` (a fraction) added at random.
    """

    max_attempts: int = 1
    initial_backoff: float = 0.5
    backoff_multiplier: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.backoff_multiplier < 1:
            raise ValueError("backoffs must be >= 0 and the multiplier >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        base = min(self.initial_backoff * self.backoff_multiplier ** (attempt - 1), self.max_backoff)
        return base * (1 + self.jitter * random.random())

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "initial_backoff": self.initial_backoff,
            "backoff_multiplier": self.backoff_multiplier,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
        }


@dataclass(frozen=True, slots=True)
class Resources:
    """What a node needs to run: `cpu`, `io` (waits on the network or disk) or `gpu`.

    `queue` overrides the distributed queue the node is routed to (default `nodeloom.<kind>`).
    """

    kind: ResourceKind = "cpu"
    queue: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "io", "gpu"):
            raise ValueError(f"resources must be 'cpu', 'io' or 'gpu', not {self.kind!r}")

    @property
    def queue_name(self) -> str:
        return self.queue or f"nodeloom.{self.kind}"


@dataclass(frozen=True)
class NodeSpec:
    """Everything known about a node type without running it."""

    type: str
    version: int
    category: str
    description: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    resources: Resources = Resources()
    deterministic: bool = True
    retry: RetryPolicy = RetryPolicy()
    timeout: float | None = None
    #: type of extra, named inputs the node accepts (None: only the declared inputs)
    variadic: PortType | None = None
    input_map: Mapping[str, Port] = field(init=False, repr=False, compare=False)
    output_map: Mapping[str, Port] = field(init=False, repr=False, compare=False)
    #: inputs without a default, which every use of the node must give
    required_inputs: tuple[Port, ...] = field(init=False, repr=False, compare=False)
    #: the names of `required_inputs`, for a quick "is every one given" test
    required_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_map", MappingProxyType({p.name: p for p in self.inputs}))
        object.__setattr__(self, "output_map", MappingProxyType({p.name: p for p in self.outputs}))
        object.__setattr__(self, "required_inputs", tuple(p for p in self.inputs if p.required))
        object.__setattr__(self, "required_names", frozenset(p.name for p in self.required_inputs))


OutputMode = Literal["none", "single", "many"]
P = ParamSpec("P")
R = TypeVar("R")


#: a node's own check of its literal inputs, run by validation before any node runs:
#: (literal inputs by port name, the run's node catalog) -> problems
InputCheck = Callable[[Mapping[str, Any], Any], Iterable[ValidationIssue]]


@dataclass(frozen=True, slots=True)
class NodePreflight:
    """What a node's `preflight` hook sees of one use of the node before its run starts."""

    node_id: str
    #: the inputs known before the run: literals and graph-input values, coerced to their
    #: port types; an input that arrives over a link (known only at run time) is absent
    inputs: Mapping[str, Any]
    #: the run's settings (`allow_private_network`, `out_dir`, ...)
    config: RunConfig
    #: the run's node catalog (a `NodeCatalog`)
    catalog: Any
    #: the inputs that arrive over links: given, but known only at run time
    linked: frozenset[str] = frozenset()


#: a node's check of what its run will need from the machine and the run's policy (a program
#: installed, a folder there, a destination allowed), run by preflight before any node runs
PreflightCheck = Callable[[NodePreflight], Iterable[InputProblem]]
#: whether one use of a node declared non-deterministic gives the same outputs for the same
#: inputs after all, judged from its literal inputs and the run's node catalog (control.map of
#: a deterministic node type): None when not; else a text that joins the use's cache key (the
#: type and version of what it runs, so a new version of that changes the key). Such a use is
#: cached like a deterministic node.
RepeatableCheck = Callable[[Mapping[str, Any], Any], str | None]


class NodeDefinition:
    """A spec plus the code that runs it. Registries hold these; executors call `invoke`."""

    def __init__(
        self,
        spec: NodeSpec,
        func: Callable[..., Any],
        *,
        owner: type | None = None,
        context_param: str | None = None,
        model_params: Mapping[str, type[BaseModel]] | None = None,
        output_mode: OutputMode = "single",
        check: InputCheck | None = None,
        preflight: PreflightCheck | None = None,
        repeatable: RepeatableCheck | None = None,
    ) -> None:
        self.spec = spec
        #: the node's own check of its literal inputs (for example that a named node type exists)
        self.check = check
        #: the node's check of what a run needs from the machine (see `PreflightCheck`)
        self.preflight = preflight
        #: for a non-deterministic node: whether a use of it is repeatable after all (see `RepeatableCheck`)
        self.repeatable = repeatable
        self.func = func
        self.owner = owner
        self.context_param = context_param
        self.model_params = dict(model_params or {})
        self.output_mode = output_mode
        self.is_async = inspect.iscoroutinefunction(func)
        #: a plain function with one output and nothing to convert: called without detours
        self._direct = owner is None and not self.model_params and context_param is None and output_mode == "single"
        self._instance: Any = None
        self._instance_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<node {self.spec.type} v{self.spec.version}>"

    def _bound(self) -> Callable[..., Any]:
        if self.owner is None:
            return self.func
        if self._instance is None:
            with self._instance_lock:
                if self._instance is None:
                    self._instance = self.owner()
        return self.func.__get__(self._instance)  # type: ignore[no-any-return]

    def _arguments(self, node_id: str, inputs: Mapping[str, Any], ctx: NodeContext | None) -> Mapping[str, Any]:
        if not self.model_params and self.context_param is None:
            return inputs
        kwargs = dict(inputs)
        for name, model in self.model_params.items():
            value = kwargs.get(name)
            if isinstance(value, dict):
                try:
                    kwargs[name] = model.model_validate(value)
                except ValidationError as error:
                    raise NodeExecutionError(
                        f"input {name!r} does not match {model.__name__}: {error.errors()[0]['msg']}",
                        node=node_id,
                        retryable=False,
                    ) from None
        if self.context_param is not None:
            if ctx is None:
                raise NodeExecutionError(f"node {node_id!r} needs a NodeContext", node=node_id, retryable=False)
            kwargs[self.context_param] = ctx
        return kwargs

    def invoke(self, node_id: str, inputs: Mapping[str, Any], ctx: NodeContext | None = None) -> dict[str, Any]:
        """Run a synchronous node and return its outputs by name, checked against the spec."""
        if self._direct:  # the common case, kept short: it runs once per node execution
            port = self.spec.outputs[0]
            value = self.func(**inputs)
            convert = port.plain_literals.get(type(value))  # a value that always passes: no check needed
            if convert is not None:
                return {port.name: convert(value)}
            if port.type.check_value(value) is None:
                return {port.name: port.type.coerce(value)}
            return {port.name: self._checked(node_id, port, value)}
        return self.collect_outputs(node_id, self._bound()(**self._arguments(node_id, inputs, ctx)))

    async def invoke_async(
        self, node_id: str, inputs: Mapping[str, Any], ctx: NodeContext | None = None
    ) -> dict[str, Any]:
        """Run an `async def` node (or a sync one, in a thread) and return its checked outputs."""
        call = self._bound()
        arguments = self._arguments(node_id, inputs, ctx)
        if self.is_async:
            result = await call(**arguments)
        else:
            result = await asyncio.to_thread(call, **arguments)
        return self.collect_outputs(node_id, result)

    def collect_outputs(self, node_id: str, result: Any) -> dict[str, Any]:
        """The node's return value as outputs by name, each checked against its port type."""
        outputs = self.spec.outputs
        if self.output_mode == "none":
            return {}
        if self.output_mode == "single":
            port = outputs[0]
            return {port.name: self._checked(node_id, port, result)}
        if isinstance(result, tuple) and hasattr(result, "_asdict"):
            values = result._asdict()
        elif isinstance(result, Mapping):
            values = result
        else:
            raise NodeExecutionError(
                f"node {node_id!r} must return its outputs {[p.name for p in outputs]} "
                f"as a mapping or named tuple, not {type(result).__name__}",
                node=node_id,
                retryable=False,
            )
        missing = [p.name for p in outputs if p.name not in values]
        if missing:
            raise NodeExecutionError(
                f"node {node_id!r} did not return outputs {missing}", node=node_id, retryable=False
            )
        return {port.name: self._checked(node_id, port, values[port.name]) for port in outputs}

    @staticmethod
    def _checked(node_id: str, port: Port, value: Any) -> Any:
        problem = port.type.check_value(value)
        if problem is not None and not (value is None and port.default is None):
            raise NodeExecutionError(
                f"node {node_id!r} returned a bad value for output {port.name!r}: {problem}",
                node=node_id,
                retryable=False,
                details={"port": port.name, "expected": port.type.name},
            )
        return port.type.coerce(value)


class NodeFunction(NodeDefinition, Generic[P, R]):
    """What `@node` returns for a function: a definition that can still be called directly."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)  # type: ignore[no-any-return]


def definition_of(obj: Any) -> NodeDefinition | None:
    """The node definition behind a decorated function or class, or None."""
    if isinstance(obj, NodeDefinition):
        return obj
    found = getattr(obj, "__nodeloom_node__", None)
    return found if isinstance(found, NodeDefinition) else None


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, metadata
    return annotation, []


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _port_from_annotation(name: str, annotation: Any, default: Any, where: str) -> Port:
    base, metadata = _split_annotated(annotation)
    base, optional = _unwrap_optional(base)
    if optional:  # Annotated[X, ...] | None
        base, inner = _split_annotated(base)
        metadata = [*metadata, *inner]
    constraints: list[Constraint] = []
    description = ""
    port_type: PortType | None = None
    for item in metadata:
        if isinstance(item, Range | Choices | Pattern):
            constraints.append(item)
        elif isinstance(item, str):
            description = item
        elif isinstance(item, PortType):
            port_type = item
    if typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
        kinds = {type(choice) for choice in choices}
        if kinds not in ({str}, {int}):
            raise NodeDefinitionError(f"{where}: Literal choices must be all strings or all ints")
        constraints.append(Choices(*choices))
        port_type = port_type or (Text if kinds == {str} else Int)
    if port_type is None:
        try:
            port_type = type_from_annotation(base)
        except TypeError as error:
            raise NodeDefinitionError(f"{where}: {error}") from None
    if optional and default is REQUIRED:
        raise NodeDefinitionError(f"{where}: an optional ({annotation!r}) input needs a default")
    return Port(name, port_type, default, tuple(constraints), description)


def _is_context(annotation: Any) -> bool:
    return annotation is NodeContext


def _output_ports(
    return_annotation: Any, output: str, where: str
) -> tuple[tuple[Port, ...], OutputMode]:
    if return_annotation is None or return_annotation is type(None):
        return (), "none"
    base, _ = _split_annotated(return_annotation)
    fields: dict[str, Any] | None = None
    if (isinstance(base, type) and issubclass(base, tuple) and hasattr(base, "_fields")) or typing.is_typeddict(base):
        fields = get_type_hints(base, include_extras=True)
    if fields is not None:
        ports = tuple(
            _port_from_annotation(name, hint, REQUIRED, f"{where} output {name!r}")
            for name, hint in fields.items()
        )
        return ports, "many"
    return (_port_from_annotation(output, return_annotation, REQUIRED, f"{where} output"),), "single"


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ").strip()


def build_definition(
    target: Callable[..., Any] | type,
    type_name: str,
    *,
    version: int = 1,
    category: str | None = None,
    description: str | None = None,
    resources: ResourceKind | Resources = "cpu",
    deterministic: bool = True,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    output: str = "result",
    check: InputCheck | None = None,
    preflight: PreflightCheck | None = None,
    repeatable: RepeatableCheck | None = None,
) -> NodeDefinition:
    """Build the definition of a node from a function or a class with a `run` method."""
    where = f"node {type_name!r}"
    if not TYPE_NAME_PATTERN.match(type_name):
        raise NodeDefinitionError(
            f"{where}: a node type is dotted lower-case words such as 'text.template'"
        )
    owner: type | None = None
    if isinstance(target, type):
        owner = target
        func = getattr(target, "run", None)
        if not callable(func):
            raise NodeDefinitionError(f"{where}: a node class needs a 'run' method")
    else:
        func = target
    try:
        hints = get_type_hints(func, include_extras=True)
    except Exception as error:  # unresolvable forward references
        raise NodeDefinitionError(f"{where}: cannot read type hints: {error}") from None
    params = list(inspect.signature(func).parameters.values())
    if owner is not None:
        params = params[1:]  # self
    inputs: list[Port] = []
    variadic: PortType | None = None
    context_param: str | None = None
    model_params: dict[str, type[BaseModel]] = {}
    for param in params:
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if annotation is inspect.Parameter.empty:
            raise NodeDefinitionError(f"{where}: parameter {param.name!r} needs a type annotation")
        if _is_context(annotation):
            context_param = param.name
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            variadic = _port_from_annotation(param.name, annotation, REQUIRED, where).type
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise NodeDefinitionError(f"{where}: parameter {param.name!r} must be passable by name")
        default = REQUIRED if param.default is inspect.Parameter.empty else param.default
        port = _port_from_annotation(param.name, annotation, default, f"{where} input {param.name!r}")
        if not port.required and port.default is not None:
            problem = port.check_value(port.default)
            if problem is not None:
                raise NodeDefinitionError(f"{where}: default of {param.name!r}: {problem[1]}")
        base = _unwrap_optional(_split_annotated(annotation)[0])[0]
        if isinstance(base, type) and issubclass(base, BaseModel):
            model_params[param.name] = base
        inputs.append(port)
    outputs, mode = _output_ports(hints.get("return"), output, where)
    spec = NodeSpec(
        type=type_name,
        version=version,
        category=category or type_name.rsplit(".", 1)[0],
        description=description if description is not None else _first_paragraph(target.__doc__),
        inputs=tuple(inputs),
        outputs=outputs,
        resources=resources if isinstance(resources, Resources) else Resources(resources),
        deterministic=deterministic,
        retry=retry or RetryPolicy(),
        timeout=timeout,
        variadic=variadic,
    )
    cls = NodeFunction if owner is None else NodeDefinition
    return cls(
        spec,
        func,
        owner=owner,
        context_param=context_param,
        model_params=model_params,
        output_mode=mode,
        check=check,
        preflight=preflight,
        repeatable=repeatable,
    )


def node(
    type_name: str | None = None,
    *,
    version: int = 1,
    category: str | None = None,
    description: str | None = None,
    resources: ResourceKind | Resources = "cpu",
    deterministic: bool = True,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    output: str = "result",
    check: InputCheck | None = None,
    preflight: PreflightCheck | None = None,
    repeatable: RepeatableCheck | None = None,
) -> Callable[[Any], Any]:
    """Declare a node. Use on a function (returns a callable `NodeFunction`) or a class.

    `type_name` defaults to `custom.<function name>`. Bump `version` whenever the node's
    behaviour changes: it is part of every cache key. `check` is the node's own check of
    its literal inputs, which validation runs (see `InputCheck`); `preflight` checks what a
    run of it needs from the machine (a program, a folder, an allowed destination) before
    any node runs (see `PreflightCheck`); `repeatable` lets a non-deterministic node be
    cached where its literal inputs make it deterministic (see `RepeatableCheck`).
    """

    def decorate(target: Any) -> Any:
        name = type_name or f"custom.{target.__name__.lower()}"
        definition = build_definition(
            target,
            name,
            version=version,
            category=category,
            description=description,
            resources=resources,
            deterministic=deterministic,
            retry=retry,
            timeout=timeout,
            output=output,
            check=check,
            preflight=preflight,
            repeatable=repeatable,
        )
        if isinstance(target, type):
            target.__nodeloom_node__ = definition  # type: ignore[attr-defined]
            return target
        return definition

    return decorate
