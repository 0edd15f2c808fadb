"""A video's sound track without downloads: narration timed per scene, a synthesised music bed, the mix.

- `audio.voice_over` speaks one line per scene with espeak-ng and says how long each scene
  must last for its line; when espeak-ng is missing (and `narration` is `auto`) it prints one
  notice saying how to install it, and times the scenes by reading speed instead.
- `audio.music_bed` synthesises a soft chord pad with a gentle arpeggio (numpy, no recordings).
- `audio.mix` lays the music under the voice, ducked while the voice speaks, and levels the result.

Every WAV here is mono 16-bit at 44.1 kHz; the sample work (numpy) is in `samples.py`, imported when
one of these nodes runs, so loading the node registry does not load numpy.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Pattern, Range
from nodeloom.core.spec import node
from nodeloom.core.types import AudioRef
from nodeloom.node_registry.audio.nodes import INSTALL_HINT, VOICE_PATTERN, espeak_wav, find_espeak

LEAD = 0.35  # silence before a scene's line
TAIL = 0.6  # and after it, before the next scene
_notice_lock = threading.Lock()
_notices_shown: set[str] = set()


def notice_once(message: str) -> None:
    """Print a notice to stderr once per process (a run may narrate several videos)."""
    with _notice_lock:
        if message in _notices_shown:
            return
        _notices_shown.add(message)
    print(f"notice: {message}", file=sys.stderr, flush=True)


def reading_seconds(text: str, words_per_minute: int) -> float:
    """How long a line takes to say at this rate."""
    return len(text.split()) * 60.0 / words_per_minute


class VoiceOver(NamedTuple):
    audio: Annotated[AudioRef, "the narration, each line at the start of its scene (silence when not narrated)"]
    durations: Annotated[list[float], "seconds per scene: its line, plus a pause before and after"]
    narrated: Annotated[bool, "whether a voice speaks (false: espeak-ng missing, or narration off)"]
    notice: Annotated[str, "why there is no voice, and how to get one ('' when narrated)"]


@node("audio.voice_over")
def voice_over(
    ctx: NodeContext,
    lines: Annotated[Sequence[str], "one line per scene, spoken in order"],
    narration: Annotated[Literal["auto", "on", "off"], "auto: speak when espeak-ng is installed, else say so "
                         "once and go on silent; on: fail without espeak-ng; off: no voice"] = "auto",
    voice: Annotated[str, Pattern(VOICE_PATTERN), "espeak-ng voice: 'en-us', 'en-gb', 'de', 'fr'"] = "en-us",
    words_per_minute: Annotated[int, Range(80, 450), "speaking rate"] = 160,
    min_seconds: Annotated[float, Range(0.5, 60), "shortest scene"] = 2.5,
) -> VoiceOver:
    """Narrate a storyboard: speak each scene's line, and time each scene to its line."""
    if not lines:
        raise NodeExecutionError("audio.voice_over: no lines; give one per scene", retryable=False)
    program: Path | None = None
    notice = ""
    if narration != "off":
        try:
            program = find_espeak()
        except NodeExecutionError:
            if narration == "on":
                raise
            notice = f"narration is off: espeak-ng is not installed. {INSTALL_HINT}"
            notice_once(notice)
            ctx.progress(0, None, notice)
    else:
        notice = "narration is off (narration=off)"
    from nodeloom.node_registry.audio import samples  # numpy: imported when a node runs, not with the registry

    speech: list[samples.Samples] = []
    durations: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nodeloom-voice-") as folder:
        for index, line in enumerate(lines):
            ctx.check_cancelled()
            if program is not None and line.strip():
                target = Path(folder) / f"line{index}.wav"
                espeak_wav(program, line, target, voice=voice, words_per_minute=words_per_minute)
                said = samples.read_wav(target)
                seconds = len(said) / samples.RATE
            else:
                said = samples.silence()
                seconds = reading_seconds(line, words_per_minute)
            speech.append(said)
            durations.append(round(max(min_seconds, LEAD + seconds + TAIL), 3))
            ctx.progress(index + 1, len(lines), f"line {index + 1} of {len(lines)}")
    return VoiceOver(samples.store_wav(ctx, samples.lay_lines(speech, durations, LEAD)), durations,
                     program is not None, notice)


# -- music ---------------------------------------------------------------------------------

@node("audio.music_bed", output="audio")
def music_bed(
    ctx: NodeContext,
    seconds: Annotated[float, Range(0.5, 600), "length"],
    mood: Annotated[Literal["calm", "bright"], "calm: a pad; bright: a pad and an arpeggio"] = "bright",
    seed: Annotated[int, "picks the key"] = 0,
) -> AudioRef:
    """Synthesise a soft music bed (chords, fade in and out): no samples, no downloads."""
    from nodeloom.node_registry.audio import samples

    return samples.store_wav(ctx, samples.synthesise_music(seconds, seed, mood))


@node("audio.mix", output="audio")
def mix(
    ctx: NodeContext,
    voice: Annotated[AudioRef, "the narration (WAV)"] | None = None,
    music: Annotated[AudioRef, "the music bed (WAV)"] | None = None,
    music_db: Annotated[float, Range(-60, 0), "music level against the voice, in dB"] = -14.0,
    duck_db: Annotated[float, Range(-40, 0), "how much lower the music goes while the voice speaks"] = -8.0,
) -> AudioRef:
    """Mix a voice and a music bed into one WAV: the music ducked under the voice, the result levelled."""
    if voice is None and music is None:
        raise NodeExecutionError("audio.mix: give a voice, music, or both", retryable=False)
    from nodeloom.node_registry.audio import samples

    voice_samples = samples.read_wav(ctx.artifacts.path(voice)) if voice is not None else samples.silence()
    music_samples = samples.read_wav(ctx.artifacts.path(music)) if music is not None else samples.silence()
    if not voice_samples.any():
        voice_samples = samples.silence()  # a silent narration: the music alone
    return samples.store_wav(ctx, samples.mix_tracks(voice_samples, music_samples, music_db, duck_db))
