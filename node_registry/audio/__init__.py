"""The audio pack: offline text-to-speech (espeak-ng), WAV length, and a video's sound track
(narration timed per scene, a synthesised music bed, the mix)."""

from nodeloom.node_registry.audio.nodes import duration, speak
from nodeloom.node_registry.audio.soundtrack import mix, music_bed, voice_over

__all__ = ["duration", "mix", "music_bed", "speak", "voice_over"]
