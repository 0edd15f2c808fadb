"""Port types: compatibility, parsing, annotations and value checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated
from typing import Any as AnyHint

import pytest
from pydantic import BaseModel

from nodeloom.core import (
    Any,
    ArtifactRef,
    Audio,
    Bool,
    DiffusionPipe,
    File,
    Float,
    Image,
    ImageRef,
    Int,
    Json,
    Latent,
    List,
    LLMHandle,
    Tensor,
    Text,
    Video,
    can_connect,
    parse_type,
)
from nodeloom.core.types import type_from_annotation


class Scene(BaseModel):
    caption: str
    seconds: float


class Other(BaseModel):
    name: str


IMAGE_REF = ArtifactRef("a" * 64, "image/png", 10, "image")
AUDIO_REF = ArtifactRef("b" * 64, "audio/wav", 10, "audio")


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (Text, Text),
        (Int, Float),
        (Image, File),
        (Audio, File),
        (Video, File),
        (Latent, Tensor),
        (List(Int), List(Float)),
        (List(Image), List(File)),
        (Json, Json(Scene)),
        (Json(Scene), Json),
        (Json(Scene), Json(Scene)),
        (Text, Any),
        (Any, Image),
        (DiffusionPipe, DiffusionPipe),
    ],
)
def test_compatible_types_connect(src: object, dst: object) -> None:
    verdict = can_connect(src, dst)  # type: ignore[arg-type]
    assert verdict.ok and verdict.reason is None and bool(verdict)


@pytest.mark.parametrize(
    ("src", "dst", "reason_part"),
    [
        (Float, Int, "Float cannot feed Int"),
        (Text, Int, "Text cannot feed Int"),
        (File, Image, "File is not a kind of Image"),
        (Image, Audio, "Image is not a kind of Audio"),
        (Json(Scene), Json(Other), "different schemas"),
        (List(Float), List(Int), "List[Float] cannot feed List[Int]"),
        (Text, List(Text), "a single value is not a list"),
        (DiffusionPipe, LLMHandle, "DiffusionPipe cannot feed LLMHandle"),
    ],
)
def test_incompatible_types_are_refused_with_a_reason(src: object, dst: object, reason_part: str) -> None:
    verdict = can_connect(src, dst)  # type: ignore[arg-type]
    assert not verdict
    assert verdict.reason is not None and reason_part in verdict.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Text", Text), ("List[Image]", List(Image)), ("List[List[Int]]", List(List(Int))), (" Bool ", Bool)],
)
def test_parse_type_reads_type_names(text: str, expected: object) -> None:
    assert parse_type(text) == expected


def test_parse_type_reads_bound_json_and_round_trips() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    bound = parse_type({"type": "Json", "schema": schema})
    assert bound == Json(schema)
    assert parse_type(bound.to_json()) == bound
    assert parse_type(List(bound).to_json()) == List(bound)


def test_parse_type_names_known_types_when_unknown() -> None:
    with pytest.raises(ValueError, match=r"unknown type 'Txt'.*Text"):
        parse_type("Txt")


def test_invalid_json_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        Json({"type": "no-such-type"})


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, Text),
        (int, Int),
        (float, Float),
        (bool, Bool),
        (dict, Json),
        (dict[str, AnyHint], Json),
        (list[str], List(Text)),
        (Sequence[float], List(Float)),
        (AnyHint, Any),
        (Scene, Json(Scene)),
        (ImageRef, Image),
        (Annotated[int, "a description"], Int),
    ],
)
def test_annotations_map_to_port_types(annotation: object, expected: object) -> None:
    assert type_from_annotation(annotation) == expected


def test_union_annotations_are_refused() -> None:
    with pytest.raises(TypeError, match="union"):
        type_from_annotation(int | str)


@pytest.mark.parametrize(
    ("port_type", "value"),
    [
        (Text, "hi"),
        (Int, 3),
        (Float, 3),
        (Float, 2.5),
        (Bool, False),
        (Json, {"a": [1, None, "x"]}),
        (Json(Scene), {"caption": "hi", "seconds": 2}),
        (List(Text), ["a", "b"]),
        (Image, IMAGE_REF),
        (Image, IMAGE_REF.to_json()),
        (File, AUDIO_REF),
        (Any, object()),
    ],
)
def test_valid_values_pass_the_check(port_type: object, value: object) -> None:
    assert port_type.check_value(value) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("port_type", "value", "message"),
    [
        (Text, 3, "expected Text, received an integer"),
        (Int, True, "expected Int, received a boolean"),
        (Int, 2.5, "expected Int, received a number"),
        (Json, {"a": object()}, "expected JSON"),
        (Json(Scene), {"caption": "hi"}, "'seconds' is a required property"),
        (Json(Scene), {"caption": "hi", "seconds": "x"}, "at seconds"),
        (List(Text), ["a", 1], "item 1: expected Text"),
        (Image, AUDIO_REF, "received an artifact of kind 'audio'"),
        (Image, {"$artifact": "md5:abc"}, "sha256"),
        (Video, "clip.mp4", "an artifact reference"),
    ],
)
def test_invalid_values_are_explained(port_type: object, value: object, message: str) -> None:
    problem = port_type.check_value(value)  # type: ignore[attr-defined]
    assert problem is not None and message in problem


def test_coercion_widens_ints_and_reads_artifact_json() -> None:
    assert Float.coerce(3) == 3.0 and isinstance(Float.coerce(3), float)
    assert Image.coerce(IMAGE_REF.to_json()) == IMAGE_REF
    assert List(Float).coerce([1, 2]) == [1.0, 2.0]


def test_handles_cannot_be_literals_but_lists_of_text_can() -> None:
    assert not DiffusionPipe.accepts_literal
    assert List(Text).accepts_literal
    assert not List(LLMHandle).accepts_literal


def test_types_are_hashable_values() -> None:
    assert len({Text, Text, List(Text), List(Text), Json(Scene), Json(Scene)}) == 3
