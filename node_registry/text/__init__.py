"""The text pack: templates, joining, and reading JSON."""

from nodeloom.node_registry.text.nodes import json_extract, json_object, json_parse, text_join, text_template

__all__ = ["json_extract", "json_object", "json_parse", "text_join", "text_template"]
