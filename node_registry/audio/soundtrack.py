"""A video's sound track without downloads: narration timed per scene, a synthesised music bed, the mix.

- `audio.voice_over` speaks one line per scene with espeak-ng and says how long each scene
  must last for its line; when espeak-ng is missing (and `narration` is `auto`) it prints one
  notice saying how to install it, and times the scenes by reading speed instead.
- `audio.music_bed` synthesises a soft chord pad with a gentle arpeggio (numpy, no samples).
- `audio.mix` lays the music under the voice, ducked while the voice speaks, and levels the result.

Every WAV here is mono 16-bit at 44.1 kHz.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Pattern, Range
from nodeloom.core.spec import node
from nodeloom.core.types import AudioRef
from nodeloom.node_registry.audio.nodes import INSTALL_HINT, VOICE_PATTERN, espeak_wav, find_espeak

RATE = 44100
LEAD = 0.35  # silence before a scene's line
TAIL = 0.6  # and after it, before the next scene
Samples = NDArray[np.float32]

_notice_lock = threading.Lock()
_notices_shown: set[str] = set()


def notice_once(message: str) -> None:
    """Print a notice to stderr once per process (a run may narrate several videos)."""
    with _notice_lock:
        if message in _notices_shown:
            return
        _notices_shown.add(message)
    print(f"notice: {message}", file=sys.stderr, flush=True)


def read_wav(path: Path) -> Samples:
    """A WAV file as mono float samples at RATE (-1..1)."""
    try:
        with wave.open(str(path), "rb") as recording:
            width, channels, rate = recording.getsampwidth(), recording.getnchannels(), recording.getframerate()
            raw = recording.readframes(recording.getnframes())
    except (wave.Error, EOFError) as error:
        raise NodeExecutionError(f"not a PCM WAV file: {error}", retryable=False) from None
    if width != 2:
        raise NodeExecutionError(f"only 16-bit WAV files are read, not {8 * width}-bit", retryable=False)
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != RATE and len(samples):
        times = np.arange(round(len(samples) * RATE / rate)) * (rate / RATE)
        samples = np.interp(times, np.arange(len(samples)), samples).astype(np.float32)
    return samples


def store_wav(ctx: NodeContext, samples: Samples) -> ArtifactRef:
    clipped = np.clip(samples, -1.0, 1.0)
    with tempfile.TemporaryDirectory(prefix="nodeloom-audio-") as folder:
        target = Path(folder) / "audio.wav"
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes((clipped * 32767).astype("<i2").tobytes())
        return ctx.artifacts.put_file(target, "audio/wav")


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
    speech: list[Samples] = []
    durations: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nodeloom-voice-") as folder:
        for index, line in enumerate(lines):
            ctx.check_cancelled()
            if program is not None and line.strip():
                target = Path(folder) / f"line{index}.wav"
                espeak_wav(program, line, target, voice=voice, words_per_minute=words_per_minute)
                said = read_wav(target)
                seconds = len(said) / RATE
            else:
                said = np.zeros(0, dtype=np.float32)
                seconds = reading_seconds(line, words_per_minute)
            speech.append(said)
            durations.append(round(max(min_seconds, LEAD + seconds + TAIL), 3))
            ctx.progress(index + 1, len(lines), f"line {index + 1} of {len(lines)}")
    track = np.zeros(round(sum(durations) * RATE) + 1, dtype=np.float32)
    start = 0.0
    for said, seconds in zip(speech, durations, strict=True):
        at = round((start + LEAD) * RATE)
        track[at: at + len(said)] += said[: max(0, len(track) - at)]
        start += seconds
    return VoiceOver(store_wav(ctx, track), durations, program is not None, notice)


# -- music ---------------------------------------------------------------------------------

_PROGRESSION = ((0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14))  # I vi IV V, semitones above the key
_MOODS = {"calm": (0.55, 0.0), "bright": (0.75, 0.35)}  # (pad level, arpeggio level)


def synthesise_music(seconds: float, seed: int = 0, mood: str = "calm", bar_seconds: float = 2.4) -> Samples:
    """A soft pad (I-vi-IV-V) with an optional arpeggio, faded in and out; peak about 0.5."""
    rng = np.random.default_rng(seed)
    key = 48 + int(rng.integers(0, 12))  # MIDI note of the key's C-ish root, an octave below middle C
    pad_level, arp_level = _MOODS.get(mood, _MOODS["calm"])
    total = max(1, round(seconds * RATE))
    times = np.arange(total, dtype=np.float32) / RATE
    music = np.zeros(total, dtype=np.float32)
    bar = round(bar_seconds * RATE)
    fade = round(0.4 * RATE)
    for number, begin in enumerate(range(0, total, bar)):
        chord = _PROGRESSION[number % len(_PROGRESSION)]
        end = min(total, begin + bar + fade)
        span = times[begin:end]
        local = span - span[0]
        envelope = np.minimum(1.0, local / 0.4) * np.minimum(1.0, (span[-1] - span + 1e-3) / 0.4)
        for note in chord:
            frequency = 440.0 * 2 ** ((key + 12 + note - 69) / 12)
            tone = np.sin(2 * np.pi * frequency * span) + 0.25 * np.sin(4 * np.pi * frequency * span)
            music[begin:end] += pad_level * 0.12 * envelope * tone
        root = 440.0 * 2 ** ((key + chord[0] - 69) / 12)
        music[begin:end] += pad_level * 0.1 * envelope * np.sin(2 * np.pi * root * span)
        if arp_level:
            step = bar // 8
            for k in range(8):
                at = begin + k * step
                if at >= total:
                    break
                note = chord[k % 3] + (12 if k % 4 == 3 else 0)
                frequency = 440.0 * 2 ** ((key + 24 + note - 69) / 12)
                pluck = times[at: min(total, at + step * 2)] - times[at]
                decay = np.exp(-pluck * 5)
                music[at: at + len(pluck)] += arp_level * 0.1 * decay * np.sin(2 * np.pi * frequency * pluck)
    ramp = min(total // 2, round(1.0 * RATE))
    music[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)
    music[total - ramp:] *= np.linspace(1, 0, ramp, dtype=np.float32)
    peak = float(np.abs(music).max()) or 1.0
    return (music * (0.5 / peak)).astype(np.float32)


@node("audio.music_bed", output="audio")
def music_bed(
    ctx: NodeContext,
    seconds: Annotated[float, Range(0.5, 600), "length"],
    mood: Annotated[Literal["calm", "bright"], "calm: a pad; bright: a pad and an arpeggio"] = "bright",
    seed: Annotated[int, "picks the key"] = 0,
) -> AudioRef:
    """Synthesise a soft music bed (chords, fade in and out): no samples, no downloads."""
    return store_wav(ctx, synthesise_music(seconds, seed, mood))


def _envelope(samples: Samples, window: float = 0.25) -> Samples:
    size = max(1, round(window * RATE))
    kernel = np.ones(size, dtype=np.float32) / size
    return np.convolve(np.abs(samples), kernel, mode="same").astype(np.float32)


def mix_tracks(voice: Samples, music: Samples, music_db: float, duck_db: float) -> Samples:
    """Music under the voice, lowered by `duck_db` more while the voice speaks; peak -1 dBFS (-9 without voice)."""
    length = max(len(voice), len(music))
    out = np.zeros(length, dtype=np.float32)
    bed = np.zeros(length, dtype=np.float32)
    bed[: len(music)] = music
    speaking = np.zeros(length, dtype=np.float32)
    if len(voice):
        speaking[: len(voice)] = np.clip(_envelope(voice) / 0.02, 0, 1)
    gain = 10 ** (music_db / 20) * 10 ** (duck_db * speaking / 20)
    out += bed * gain
    out[: len(voice)] += voice
    peak = float(np.abs(out).max()) or 1.0
    target_db = -1.0 if len(voice) else -9.0  # music alone stays a bed, not a song
    return (out * (10 ** (target_db / 20) / peak)).astype(np.float32)


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
    voice_samples = read_wav(ctx.artifacts.path(voice)) if voice is not None else np.zeros(0, np.float32)
    music_samples = read_wav(ctx.artifacts.path(music)) if music is not None else np.zeros(0, np.float32)
    if not np.abs(voice_samples).any():
        voice_samples = np.zeros(0, np.float32)  # a silent narration: the music alone
    return store_wav(ctx, mix_tracks(voice_samples, music_samples, music_db, duck_db))
