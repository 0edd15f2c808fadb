"""The audio pack: offline text-to-speech (espeak-ng) and WAV length, for narrating videos."""

from nodeloom.node_registry.audio.nodes import duration, speak

__all__ = ["duration", "speak"]
