"""The json pack: `json.extract`, `json.object`, `json.parse`."""

from nodeloom.node_registry.json.nodes import json_extract, json_object, json_parse

__all__ = ["json_extract", "json_object", "json_parse"]
