"""The text pack: templates and joining."""

from nodeloom.node_registry.text.nodes import text_join, text_template

__all__ = ["text_join", "text_template"]
