"""The @node decorator: specs from typed functions and classes."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, TypedDict

import pytest
from pydantic import BaseModel

from nodeloom.core import (
    Choices,
    Float,
    Image,
    ImageRef,
    Int,
    Json,
    List,
    NodeContext,
    NodeDefinitionError,
    NodeExecutionError,
    Pattern,
    Range,
    Resources,
    RetryPolicy,
    Text,
    node,
)
from nodeloom.core.ports import REQUIRED
from nodeloom.core.spec import NodeDefinition, definition_of


@node("demo.generate", version=3, resources="gpu", deterministic=False, timeout=60,
      retry=RetryPolicy(max_attempts=2))
def generate(
    prompt: Annotated[str, "what to draw"],
    steps: Annotated[int, Range(1, 150), "denoising steps"] = 20,
    sampler: Literal["euler", "ddim"] = "euler",
    name: Annotated[str, Pattern(r"[a-z]+")] = "img",
    negative: str | None = None,
    seed: int | None = None,
) -> ImageRef:
    """Draw a picture.

    Longer text that is not part of the description.
    """
    raise NotImplementedError


def test_function_signature_becomes_the_spec() -> None:
    spec = generate.spec
    assert (spec.type, spec.version, spec.category) == ("demo.generate", 3, "demo")
    assert spec.description == "Draw a picture."
    assert spec.resources == Resources("gpu") and spec.resources.queue_name == "nodeloom.gpu"
    assert not spec.deterministic and spec.timeout == 60 and spec.retry.max_attempts == 2
    ports = spec.input_map
    assert ports["prompt"].type == Text and ports["prompt"].default is REQUIRED
    assert ports["prompt"].description == "what to draw"
    assert ports["steps"].constraints == (Range(1, 150),) and ports["steps"].default == 20
    assert ports["sampler"].type == Text and ports["sampler"].constraints == (Choices("euler", "ddim"),)
    assert ports["name"].constraints == (Pattern("[a-z]+"),)
    assert ports["negative"].type == Text and ports["negative"].default is None
    assert [p.name for p in spec.outputs] == ["result"] and spec.outputs[0].type == Image


def test_constraints_check_values() -> None:
    ports = generate.spec.input_map
    assert ports["steps"].check_value(0) == ("out_of_range", "0 is below the minimum 1", "allowed range [1, 150]")
    assert ports["sampler"].check_value("heun")[0] == "not_in_choices"  # type: ignore[index]
    assert ports["name"].check_value("Bad1")[0] == "pattern_mismatch"  # type: ignore[index]
    assert ports["negative"].check_value(None) is None


class Stats(NamedTuple):
    words: int
    chars: int


class Parts(TypedDict):
    head: str
    tail: list[str]


@node("demo.stats")
def stats(text: str) -> Stats:
    return Stats(len(text.split()), len(text))


@node("demo.parts")
def parts(text: str) -> Parts:
    words = text.split()
    return {"head": words[0], "tail": words[1:]}


def test_named_tuple_and_typed_dict_give_several_outputs() -> None:
    assert [(p.name, p.type) for p in stats.spec.outputs] == [("words", Int), ("chars", Int)]
    assert [(p.name, p.type) for p in parts.spec.outputs] == [("head", Text), ("tail", List(Text))]
    assert stats.invoke("n", {"text": "a bc"}) == {"words": 2, "chars": 4}
    assert parts.invoke("n", {"text": "a b c"}) == {"head": "a", "tail": ["b", "c"]}


def test_decorated_function_is_still_callable() -> None:
    assert stats("one two") == Stats(2, 7)


def test_output_name_and_bad_output_type_is_a_node_error() -> None:
    @node("demo.bad", output="number")
    def bad() -> float:
        return "x"  # type: ignore[return-value]

    assert bad.spec.outputs[0].name == "number"
    with pytest.raises(NodeExecutionError, match="bad value for output 'number': expected Float"):
        bad.invoke("n1", {})


class Scene(BaseModel):
    caption: str


def test_pydantic_inputs_are_validated_and_outputs_dumped() -> None:
    @node("demo.scene")
    def scene(data: Scene) -> Scene:
        return Scene(caption=data.caption.upper())

    assert scene.spec.input_map["data"].type == Json(Scene)
    assert scene.invoke("n", {"data": {"caption": "hi"}}) == {"result": {"caption": "HI"}}
    with pytest.raises(NodeExecutionError, match="does not match Scene"):
        scene.invoke("n", {"data": {"nope": 1}})


def test_context_parameter_is_not_a_port() -> None:
    @node("demo.ctx")
    def with_ctx(ctx: NodeContext, x: int) -> int:
        return x

    assert list(with_ctx.spec.input_map) == ["x"] and with_ctx.context_param == "ctx"


def test_variadic_keyword_parameter_accepts_extra_inputs() -> None:
    @node("demo.concat")
    def concat(sep: str = "", **parts: str) -> str:
        return sep.join(parts.values())

    assert concat.spec.variadic == Text
    assert concat.invoke("n", {"a": "x", "b": "y", "sep": "-"}) == {"result": "x-y"}


def test_class_form_keeps_one_instance() -> None:
    created: list[int] = []

    @node("demo.counter")
    class Counter:
        """Counts calls on one instance."""

        def __init__(self) -> None:
            created.append(1)
            self.calls = 0

        def run(self, step: int = 1) -> int:
            self.calls += step
            return self.calls

    definition = definition_of(Counter)
    assert isinstance(definition, NodeDefinition)
    assert definition.spec.description == "Counts calls on one instance."
    assert [definition.invoke("n", {"step": 2})["result"] for _ in range(3)] == [2, 4, 6]
    assert len(created) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: node("Bad Name")(lambda x: x), "dotted lower-case"),
        (lambda: node("demo.noann")(_no_annotation), "needs a type annotation"),
        (lambda: node("demo.union")(_union), "union"),
        (lambda: node("demo.optional")(_optional_without_default), "needs a default"),
        (lambda: node("demo.baddefault")(_bad_default), "default of 'steps'"),
        (lambda: node("demo.noclassrun")(type("NoRun", (), {})), "needs a 'run' method"),
    ],
)
def test_declaration_errors_are_clear(make: object, message: str) -> None:
    with pytest.raises(NodeDefinitionError, match=message):
        make()  # type: ignore[operator]


def _no_annotation(x):  # type: ignore[no-untyped-def]
    return x


def _union(x: int | str) -> int:
    return 1


def _optional_without_default(x: int | None) -> int:
    return 1


def _bad_default(steps: Annotated[int, Range(1, 10)] = 50) -> int:
    return steps


def test_retry_policy_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=1.0, backoff_multiplier=3.0, max_backoff=5.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_float_default_port_type_is_float() -> None:
    @node("demo.float")
    def f(x: float = 1) -> float:
        return x

    assert f.spec.input_map["x"].type == Float
