"""The file pack: `file.save`, which writes into the run's output folder only."""

from nodeloom.node_registry.file.nodes import file_save

__all__ = ["file_save"]
