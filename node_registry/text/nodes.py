"""Text nodes. Templates render in Jinja2's sandbox: a graph file cannot run code."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Annotated, Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.spec import node

#: the longest rendered text, in characters
MAX_TEMPLATE_OUTPUT = 1_000_000
#: the largest integer an operator may produce, in bits (about 1233 decimal digits)
MAX_TEMPLATE_INT_BITS = 4096
#: the longest string or list an operator, filter or method may produce
MAX_TEMPLATE_SEQUENCE = 1_000_000
#: loop iterations plus calls in one render: nested loops that print nothing still stop
MAX_TEMPLATE_STEPS = 1_000_000


class TemplateTooLarge(SecurityError):
    """A template operation refused because its result (or the render's work) would be too large."""

    def __init__(self, what: str) -> None:
        super().__init__(f"template operation too large: {what}")


class _Budget:
    """The work one render may still do (loop iterations and calls)."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def step(self, cost: int = 1) -> None:
        self.left -= cost
        if self.left < 0:
            raise TemplateTooLarge(f"more than {MAX_TEMPLATE_STEPS} loop iterations and calls in one render")


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _step(cost: int = 1) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step(cost)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _check_length(length: int, what: str) -> None:
    if length > MAX_TEMPLATE_SEQUENCE:
        raise TemplateTooLarge(f"{what} would have {length} items (the limit is {MAX_TEMPLATE_SEQUENCE})")


def _bounded(value: Any, what: str) -> Any:
    """`value`, provided it is no longer than the limit: keeps every intermediate string small."""
    if _sized(value):
        _check_length(len(value), what)
    return value


def _concat(parts: list[Any]) -> str:
    """The `~` operator, with its result bounded."""
    texts = [str(part) for part in parts]
    _check_length(sum(map(len, texts)), "joining with '~'")
    return "".join(texts)


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)  # keeps Jinja's pass_context / pass_environment markers
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        return _bounded(original(*args, **kwargs), f"the {name} filter's result")

    return bounded


#: a printf width or precision: `%*d`, `%.*f`, `%10000000s`
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
#: a str.format width or precision: `{:>10000000}`
_FORMAT_FIELD = re.compile(r"\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


def _check_printf(template: str) -> None:
    for match in _PRINTF_FIELD.finditer(template):
        for size in match.groups():
            if size == "*" or (size is not None and int(size) > MAX_TEMPLATE_SEQUENCE):
                raise TemplateTooLarge(f"format field {match.group(0)!r} may be wider than {MAX_TEMPLATE_SEQUENCE}")


def _multiply(left: Any, right: Any) -> Any:
    if _sized(left) and isinstance(right, int):
        _check_length(len(left) * right, "repeating a sequence")
    elif _sized(right) and isinstance(left, int):
        _check_length(len(right) * left, "repeating a sequence")
    elif _int_bits(left) + _int_bits(right) > MAX_TEMPLATE_INT_BITS:  # both ints: _int_bits of anything else is 0
        raise TemplateTooLarge(f"a product would exceed {MAX_TEMPLATE_INT_BITS} bits")
    return left * right


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and _int_bits(base) > 1 and exponent > 0:
        bits = _int_bits(base) * exponent  # a bound on the result's size, computed without computing it
        if bits > MAX_TEMPLATE_INT_BITS:
            raise TemplateTooLarge(f"a {_int_bits(base)}-bit number to the power {exponent} would exceed "
                                   f"{MAX_TEMPLATE_INT_BITS} bits")
    return base**exponent


def _add(left: Any, right: Any) -> Any:
    if _sized(left) and _sized(right):
        _check_length(len(left) + len(right), "joining two sequences")
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_printf(left)
    return left % right


class _Bounding(NodeTransformer):
    """Rewrites a parsed template so loops spend the render's budget and `~` checks its result."""

    def visit_For(self, loop: nodes.For) -> nodes.Node:
        self.generic_visit(loop)
        loop.iter = nodes.Filter(loop.iter, "_counted", [], [], None, None, lineno=loop.lineno)
        return loop

    def visit_Concat(self, concat: nodes.Concat) -> nodes.Node:
        self.generic_visit(concat)
        return nodes.Filter(nodes.List(concat.nodes), "_concat", [], [], None, None, lineno=concat.lineno)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": _multiply,
    "**": _power,
    "+": _add,
    "%": _modulo,
    "//": operator.floordiv,
    "/": operator.truediv,
    "-": operator.sub,
}

#: str methods whose integer arguments are the width of the result
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}


class TemplateSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus bounds on work: big powers, products and repetitions are refused,
    loops and calls share a step budget, and the rendered text has a maximum length."""

    intercepted_binops = frozenset(_BINOPS)

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.filters["center"] = self._width_filter(self.filters["center"])
        self.filters["indent"] = self._width_filter(self.filters["indent"])
        self.filters["format"] = self._format_filter(self.filters["format"])
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["_counted"] = _counted
        self.filters["_concat"] = _concat

    @staticmethod
    def _width_filter(original: Callable[..., str]) -> Callable[..., str]:
        def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> str:
            size = len(width) if isinstance(width, str) else width
            if isinstance(size, int):
                lines = str(value).count("\n") + 1
                _check_length(size * lines + len(str(value)), f"the {original.__name__} filter's result")
            return original(value, width, *args, **kwargs)

        return bounded

    @staticmethod
    def _format_filter(original: Callable[..., str]) -> Callable[..., str]:
        def bounded(value: Any, *args: Any, **kwargs: Any) -> str:
            _check_printf(str(value))
            return original(value, *args, **kwargs)

        return bounded

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Bounding().visit(super()._parse(source, name, filename))
        assert isinstance(tree, nodes.Template)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return _bounded(_BINOPS[operator](left, right), f"the result of {operator!r}")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str):  # `'{:>1000000000}'.format(1)`: refuse the width before formatting
            for match in _FORMAT_FIELD.finditer(owner):
                _check_length(int(match.group(1)), "a str.format field")
        return super().wrap_str_format(value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step(100 if isinstance(__obj, Macro) else 1)  # a macro call is far dearer than a loop iteration
        owner = getattr(__obj, "__self__", None)
        method = getattr(__obj, "__name__", "")
        if isinstance(owner, str):  # refuse before allocating: the result is checked again after
            widths = [a for a in args if isinstance(a, int)]
            if method in _WIDTH_METHODS and widths:
                _check_length(max(widths) + len(owner) * 8, f"str.{method}'s result")
            if method == "replace" and len(args) >= 2 and isinstance(args[1], str):
                _check_length((len(owner) + 1) * len(args[1]) + len(owner), "str.replace's result")
        return _bounded(super().call(__context, __obj, *args, **kwargs), "a call's result")

    def render(self, template: str, context: dict[str, Any]) -> str:
        """Render `template` within the limits; raises TemplateTooLarge when it would exceed one."""
        token = _budget.set(_Budget(MAX_TEMPLATE_STEPS))
        try:
            parts: list[str] = []
            length = 0
            for part in self.from_string(template).generate(context):
                length += len(part)
                if length > MAX_TEMPLATE_OUTPUT:
                    raise TemplateTooLarge(f"the rendered text would exceed {MAX_TEMPLATE_OUTPUT} characters")
                parts.append(part)
            return "".join(parts)
        except OverflowError as error:  # Jinja's own range limit, or a float overflow
            raise TemplateTooLarge(str(error)) from None
        finally:
            _budget.reset(token)


_templates = TemplateSandbox()


@node("text.template", output="text")
def text_template(
    template: Annotated[str, "a Jinja2 template, e.g. 'Hello {{ name }}'"],
    values: Annotated[dict[str, Any], "variables as one JSON object"] | None = None,
    **variables: Annotated[Any, "any extra input is a template variable"],
) -> str:
    """Render a Jinja2 template (sandboxed) with the `values` object and any extra inputs."""
    context = {**(values or {}), **variables}
    try:
        return _templates.render(template, context)
    except TemplateTooLarge as error:
        raise NodeExecutionError(
            str(error.message), retryable=False, details={"reason": "template_limit"}
        ) from None
    except TemplateError as error:
        known = ", ".join(sorted(context)) or "(none)"
        raise NodeExecutionError(
            f"template error: {error.message}; variables given: {known}",
            retryable=False,
            details={"variables": sorted(context)},
        ) from None


@node("text.join", output="text")
def text_join(
    items: Annotated[Sequence[str], "texts to join, in order"] = (),
    separator: Annotated[str, "put between items"] = "\n",
    **parts: Annotated[str, "extra texts, joined after items in the order given"],
) -> str:
    """Join texts with a separator."""
    return separator.join([*items, *parts.values()])
