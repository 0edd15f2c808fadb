"""Port types: Python objects that say what flows through a port.

`Text`, `Int`, `Float`, `Bool`, `Json` (optionally bound to a pydantic model or a JSON
Schema), the artifact types `File`, `Image`, `Audio`, `Video`, `Tensor`, `Latent`,
`Conditioning`, `Mask`, the model handles `DiffusionPipe`, `DiffusionModel`, `Clip`, `Vae` and
`LLMHandle`, `List(T)` and `Any`.

`can_connect(src, dst)` is the single place that decides whether an output may feed an
input, and explains a refusal. `parse_type` reads the names used in graph JSON
(`"List[Text]"`), and `type_from_annotation` maps the annotations of a `@node` function.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, ClassVar
from typing import Any as AnyHint

import jsonschema
from pydantic import BaseModel

from nodeloom.core.artifacts import ArtifactRef, kind_is_a


class PortType:
    """Base of all port types. Instances are immutable and compare by value."""

    name: str
    #: whether a literal value in graph JSON may stand for a value of this type
    accepts_literal: ClassVar[bool] = True

    def json_schema(self) -> dict[str, AnyHint]:
        raise NotImplementedError

    def check_value(self, value: AnyHint) -> str | None:
        """Return why `value` is not a valid value of this type, or None when it is."""
        raise NotImplementedError

    def coerce(self, value: AnyHint) -> AnyHint:
        """Turn a valid value into the form nodes receive (int -> float, JSON -> ArtifactRef)."""
        return value

    def to_json(self) -> str | dict[str, AnyHint]:
        return self.name

    def __str__(self) -> str:
        return self.name


def _describe(value: AnyHint) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, ArtifactRef):
        return f"an artifact of kind {value.kind!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


@dataclass(frozen=True, eq=True, repr=False)
class ScalarType(PortType):
    name: str
    schema_type: str

    def __repr__(self) -> str:
        return self.name

    def json_schema(self) -> dict[str, AnyHint]:
        return {"type": self.schema_type}

    def check_value(self, value: AnyHint) -> str | None:
        ok: bool
        if self.schema_type == "string":
            ok = isinstance(value, str)
        elif self.schema_type == "boolean":
            ok = isinstance(value, bool)
        elif self.schema_type == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:  # number: integers are accepted and widened
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected {self.name}, received {_describe(value)}"

    @property
    def literal_converters(self) -> Mapping[type, Callable[[AnyHint], AnyHint]]:
        """Python types whose values always pass `check_value`, with what `coerce` does to them."""
        return _LITERAL_CONVERTERS[self.schema_type]

    def coerce(self, value: AnyHint) -> AnyHint:
        if self.schema_type == "number" and isinstance(value, int):
            return float(value)
        return value


def _canonical(schema: Mapping[str, AnyHint]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, repr=False)
class JsonType(PortType):
    """Any JSON value; when bound to a pydantic model or JSON Schema, values must conform."""

    schema: Mapping[str, AnyHint] | None = None
    model: type[BaseModel] | None = field(default=None, compare=False)
    name: str = "Json"

    def __post_init__(self) -> None:
        if self.schema is not None:
            try:
                jsonschema.validators.validator_for(self.schema).check_schema(dict(self.schema))
            except jsonschema.SchemaError as error:
                raise ValueError(f"invalid JSON Schema: {error.message}") from None

    def __call__(self, bound: type[BaseModel] | Mapping[str, AnyHint]) -> JsonType:
        """`Json(Storyboard)` or `Json({"type": "object", ...})`: a Json type bound to a schema."""
        if isinstance(bound, type) and issubclass(bound, BaseModel):
            return JsonType(schema=bound.model_json_schema(), model=bound, name=f"Json[{bound.__name__}]")
        if isinstance(bound, Mapping):
            title = bound.get("title")
            label = f"Json[{title}]" if isinstance(title, str) and title.isidentifier() else "Json[schema]"
            return JsonType(schema=dict(bound), name=label)
        raise TypeError("Json(...) takes a pydantic model class or a JSON Schema mapping")

    def __hash__(self) -> int:
        return hash(_canonical(self.schema) if self.schema is not None else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JsonType):
            return NotImplemented
        if self.schema is None or other.schema is None:
            return self.schema is other.schema
        return _canonical(self.schema) == _canonical(other.schema)

    def __repr__(self) -> str:
        return self.name

    @property
    def bound(self) -> bool:
        return self.schema is not None

    def json_schema(self) -> dict[str, AnyHint]:
        return dict(self.schema) if self.schema is not None else {}

    def check_value(self, value: AnyHint) -> str | None:
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if not _is_json(value):
            return f"expected JSON, received {_describe(value)}"
        if self.schema is None:
            return None
        validator = jsonschema.validators.validator_for(self.schema)(self.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path)
        return f"does not match the {self.name} schema{' at ' + where if where else ''}: {error.message}"

    def coerce(self, value: AnyHint) -> AnyHint:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return value

    def to_json(self) -> str | dict[str, AnyHint]:
        if self.schema is None:
            return "Json"
        return {"type": "Json", "schema": dict(self.schema)}


def _is_json(value: AnyHint) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


@dataclass(frozen=True, repr=False)
class ArtifactType(PortType):
    """A value stored in the artifact store and passed around as an `ArtifactRef`."""

    name: str
    kind: str

    def __repr__(self) -> str:
        return self.name

    def json_schema(self) -> dict[str, AnyHint]:
        return {
            "type": "object",
            "properties": {
                "$artifact": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                "media_type": {"type": "string"},
                "size": {"type": "integer"},
                "kind": {"type": "string"},
            },
            "required": ["$artifact"],
        }

    def check_value(self, value: AnyHint) -> str | None:
        if ArtifactRef.looks_like_json(value):
            try:
                value = ArtifactRef.from_json(value)
            except ValueError as error:
                return str(error)
        if not isinstance(value, ArtifactRef):
            return f"expected {self.name} (an artifact reference), received {_describe(value)}"
        if not kind_is_a(value.kind, self.kind):
            return f"expected {self.name}, received an artifact of kind {value.kind!r}"
        return None

    def coerce(self, value: AnyHint) -> AnyHint:
        if ArtifactRef.looks_like_json(value):
            return ArtifactRef.from_json(value)
        return value


@dataclass(frozen=True, repr=False)
class HandleType(PortType):
    """An in-process handle to a loaded model (a diffusers pipeline, an LLM)."""

    name: str
    accepts_literal: ClassVar[bool] = False

    def __repr__(self) -> str:
        return self.name

    def json_schema(self) -> dict[str, AnyHint]:
        return {"type": "object", "description": f"{self.name} handle, produced by a node"}

    def check_value(self, value: AnyHint) -> str | None:
        return None if value is not None else f"expected a {self.name} handle, received null"


@dataclass(frozen=True, repr=False)
class AnyType(PortType):
    name: str = "Any"

    def __repr__(self) -> str:
        return self.name

    def json_schema(self) -> dict[str, AnyHint]:
        return {}

    def check_value(self, value: AnyHint) -> str | None:
        return None


@dataclass(frozen=True, repr=False)
class List(PortType):
    """`List(Text)`: a list whose items are all of one port type."""

    item: PortType

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"List[{self.item.name}]"

    @property
    def accepts_literal(self) -> bool:  # type: ignore[override]
        return self.item.accepts_literal

    def __repr__(self) -> str:
        return self.name

    def json_schema(self) -> dict[str, AnyHint]:
        return {"type": "array", "items": self.item.json_schema()}

    def check_value(self, value: AnyHint) -> str | None:
        if not isinstance(value, list | tuple):
            return f"expected {self.name}, received {_describe(value)}"
        for index, item in enumerate(value):
            problem = self.item.check_value(item)
            if problem is not None:
                return f"item {index}: {problem}"
        return None

    def coerce(self, value: AnyHint) -> AnyHint:
        return [self.item.coerce(item) for item in value]

    def to_json(self) -> str | dict[str, AnyHint]:
        inner = self.item.to_json()
        if isinstance(inner, str):
            return f"List[{inner}]"
        return {"type": "List", "item": inner}


#: by exact type (looked up with `type(value)`); a value already of its port's type converts with that
#: type itself, which hands back the very object (`float(x) is x` for a float) without a Python-level call
_LITERAL_CONVERTERS: dict[str, Mapping[type, Callable[[AnyHint], AnyHint]]] = {
    "string": {str: str},
    "integer": {int: int},
    "number": {float: float, int: float},
    "boolean": {bool: bool},
}

Text = ScalarType("Text", "string")
Int = ScalarType("Int", "integer")
Float = ScalarType("Float", "number")
Bool = ScalarType("Bool", "boolean")
Json = JsonType()
File = ArtifactType("File", "file")
Image = ArtifactType("Image", "image")
Audio = ArtifactType("Audio", "audio")
Video = ArtifactType("Video", "video")
Tensor = ArtifactType("Tensor", "tensor")
Latent = ArtifactType("Latent", "latent")
Conditioning = ArtifactType("Conditioning", "conditioning")
#: a mask tensor (1 where to paint), stored as a tensor artifact
Mask = ArtifactType("Mask", "tensor")
DiffusionPipe = HandleType("DiffusionPipe")
#: the parts of a checkpoint as ComfyUI splits them: the denoising model, the text encoder, the autoencoder
DiffusionModel = HandleType("DiffusionModel")
Clip = HandleType("Clip")
Vae = HandleType("Vae")
LLMHandle = HandleType("LLMHandle")
Any = AnyType()

#: annotation aliases for node functions: `def resize(image: ImageRef) -> ImageRef`
FileRef = Annotated[ArtifactRef, File]
ImageRef = Annotated[ArtifactRef, Image]
AudioRef = Annotated[ArtifactRef, Audio]
VideoRef = Annotated[ArtifactRef, Video]
TensorRef = Annotated[ArtifactRef, Tensor]
LatentRef = Annotated[ArtifactRef, Latent]

NAMED_TYPES: dict[str, PortType] = {
    t.name: t
    for t in (
        Text, Int, Float, Bool, Json, File, Image, Audio, Video, Tensor, Latent,
        Conditioning, Mask, DiffusionPipe, DiffusionModel, Clip, Vae, LLMHandle, Any,
    )
}


@dataclass(frozen=True, slots=True)
class Connection:
    """The answer of `can_connect`: truthy when allowed, else `reason` says why not."""

    ok: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


_YES = Connection(True)


def can_connect(src: PortType, dst: PortType) -> Connection:
    """Whether a value of type `src` (an output) may feed a port of type `dst` (an input)."""
    if src is dst or src == dst or isinstance(dst, AnyType) or isinstance(src, AnyType):
        return _YES
    if src == Int and dst == Float:
        return _YES
    if isinstance(src, JsonType) and isinstance(dst, JsonType):
        if not src.bound or not dst.bound:
            return _YES  # checked against the bound schema when the value arrives
        return Connection(False, f"{src.name} and {dst.name} are bound to different schemas")
    if isinstance(src, List) and isinstance(dst, List):
        inner = can_connect(src.item, dst.item)
        return inner if inner else Connection(False, f"{src.name} cannot feed {dst.name}: {inner.reason}")
    if isinstance(src, ArtifactType) and isinstance(dst, ArtifactType):
        if kind_is_a(src.kind, dst.kind):
            return _YES
        return Connection(False, f"{src.name} is not a kind of {dst.name}")
    if isinstance(dst, List) and can_connect(src, dst.item):
        return Connection(False, f"{src.name} cannot feed {dst.name}: a single value is not a list")
    return Connection(False, f"{src.name} cannot feed {dst.name}")


def parse_type(spec: str | Mapping[str, AnyHint] | PortType) -> PortType:
    """Read a port type from its JSON form: `"Text"`, `"List[Image]"`, `{"type": "Json", "schema": {...}}`.

    Raises `ValueError` with a message naming the known types.
    """
    if isinstance(spec, PortType):
        return spec
    if isinstance(spec, Mapping):
        kind = spec.get("type")
        if kind == "Json":
            schema = spec.get("schema")
            if schema is None:
                return Json
            if not isinstance(schema, Mapping):
                raise ValueError('"schema" of a Json type must be a JSON object')
            return Json(schema)
        if kind == "List":
            return List(parse_type(spec.get("item", "Any")))
        if isinstance(kind, str):
            return parse_type(kind)
        raise ValueError('a type object needs a "type" name')
    if not isinstance(spec, str):
        raise ValueError(f"a type is a name such as 'Text' or 'List[Image]', not {_describe(spec)}")
    text = spec.strip()
    if text.startswith("List[") and text.endswith("]"):
        return List(parse_type(text[5:-1]))
    found = NAMED_TYPES.get(text)
    if found is None:
        known = ", ".join(sorted(NAMED_TYPES))
        raise ValueError(f"unknown type {text!r}; known types: {known}, List[T]")
    return found


_PY_SCALARS: dict[AnyHint, PortType] = {str: Text, int: Int, float: Float, bool: Bool}


def type_from_annotation(annotation: AnyHint) -> PortType:
    """Map a Python annotation of a node function to a port type.

    `str`, `int`, `float`, `bool`, `dict`, pydantic models, `list[X]`, `typing.Any`, and
    `Annotated[X, <PortType>]` (which wins over X). Raises `TypeError` for anything else.
    """
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        for item in metadata:
            if isinstance(item, PortType):
                return item
        return type_from_annotation(base)
    if annotation in _PY_SCALARS:
        return _PY_SCALARS[annotation]
    if annotation is AnyHint or annotation is object:
        return Any
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return Json(annotation)
    origin = typing.get_origin(annotation)
    if annotation in (dict, Mapping) or origin in (dict, Mapping):
        return Json
    if origin in (list, Sequence, tuple) or annotation in (list, tuple):
        args = typing.get_args(annotation)
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            raise TypeError(f"fixed-length tuples are not a port type: {annotation!r}")
        return List(type_from_annotation(args[0])) if args else List(Any)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(
            f"a union such as {annotation!r} is not a port type; use one type, or Any"
        )
    raise TypeError(f"no port type for annotation {annotation!r}")
