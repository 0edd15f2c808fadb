"""Catalog export: a JSON description of node specs, read by the API and the drafting agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nodeloom.core.ports import Port
from nodeloom.core.spec import NodeSpec
from nodeloom.core.types import PortType

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def ports_schema(ports: Sequence[Port], title: str, variadic: PortType | None = None) -> dict[str, Any]:
    """A JSON Schema for an object holding one value per port."""
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": title,
        "type": "object",
        "properties": {port.name: port.json_schema() for port in ports},
        "required": [port.name for port in ports if port.required],
    }
    if variadic is None:
        schema["additionalProperties"] = False
    else:
        extra = dict(variadic.json_schema())
        extra["x-nodeloom-type"] = variadic.to_json()
        schema["additionalProperties"] = extra
    return schema


def catalog_entry(spec: NodeSpec) -> dict[str, Any]:
    return {
        "type": spec.type,
        "version": spec.version,
        "category": spec.category,
        "description": spec.description,
        "resources": spec.resources.kind,
        "queue": spec.resources.queue_name,
        "deterministic": spec.deterministic,
        "retry": spec.retry.to_json(),
        "timeout": spec.timeout,
        "inputs": ports_schema(spec.inputs, f"{spec.type} inputs", spec.variadic),
        "outputs": ports_schema(spec.outputs, f"{spec.type} outputs"),
    }
