"""Sound as numpy samples: WAV in and out, the voice-over track, the synthesised music bed, the ducked mix.

Mono float32 samples at RATE (44.1 kHz), -1..1. The audio nodes (`soundtrack.py`) import this module
when they run, so loading the node registry does not import numpy.
"""

from __future__ import annotations

import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError

RATE = 44100
Samples = NDArray[np.float32]


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

def silence() -> Samples:
    return np.zeros(0, dtype=np.float32)


def lay_lines(speech: Sequence[Samples], durations: Sequence[float], lead: float) -> Samples:
    """One track of the spoken lines, each `lead` s after the start of its scene (scenes last `durations`)."""
    track = np.zeros(round(sum(durations) * RATE) + 1, dtype=np.float32)
    start = 0.0
    for said, seconds in zip(speech, durations, strict=True):
        at = round((start + lead) * RATE)
        track[at: at + len(said)] += said[: max(0, len(track) - at)]
        start += seconds
    return track


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
