"""The audio pack: speech from the real espeak-ng program, read back with the `wave` module."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

from nodeloom.core import ArtifactRef, Graph
from nodeloom.executors import LocalExecutor

ESPEAK = shutil.which("espeak-ng")
# on a laptop without espeak-ng these are skipped; in CI (CI=true) a missing program fails them
needs_espeak = pytest.mark.skipif(
    ESPEAK is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)
SHORT = "Fresh tea."
LONG = "Fresh tea, picked by hand at dawn, packed the same day, and at your door within a week."






def run_node(executor: LocalExecutor, node_type: str, output: str, **inputs: Any) -> Any:
    """Run one node; its output value, or the failed node's error record."""
    g = Graph()
    g.output("out", g.add(node_type, "it", **inputs)[output])
    result = executor.run(g, use_cache=False)
    return result.outputs["out"] if result.ok else result.nodes["it"].error


def seconds_of(executor: LocalExecutor, ref: ArtifactRef) -> float:
    with wave.open(str(executor.artifacts.path(ref)), "rb") as recording:
        assert recording.getnchannels() == 1 and recording.getsampwidth() == 2
        return recording.getnframes() / recording.getframerate()


@needs_espeak
def test_speech_is_a_wav_that_grows_with_the_text(executor: LocalExecutor) -> None:
    short = run_node(executor, "audio.speak", "audio", text=SHORT)
    long = run_node(executor, "audio.speak", "audio", text=LONG)
    assert isinstance(short, ArtifactRef) and isinstance(long, ArtifactRef), (short, long)
    assert (long.media_type, long.kind) == ("audio/wav", "audio")
    assert 0.3 < seconds_of(executor, short) < 2.5
    assert seconds_of(executor, long) > 3 * seconds_of(executor, short)


@needs_espeak
def test_a_faster_rate_gives_shorter_speech(executor: LocalExecutor) -> None:
    slow = run_node(executor, "audio.speak", "audio", text=LONG, words_per_minute=120)
    fast = run_node(executor, "audio.speak", "audio", text=LONG, words_per_minute=300)
    assert seconds_of(executor, slow) > 1.8 * seconds_of(executor, fast)


@needs_espeak
def test_pitch_changes_the_sound(executor: LocalExecutor) -> None:
    low = run_node(executor, "audio.speak", "audio", text=SHORT, pitch=10)
    high = run_node(executor, "audio.speak", "audio", text=SHORT, pitch=90)
    assert low.digest != high.digest


@needs_espeak
def test_text_that_looks_like_options_is_spoken_not_obeyed(executor: LocalExecutor, tmp_path: Path) -> None:
    target = tmp_path / "hijacked.wav"
    speech = run_node(executor, "audio.speak", "audio", text=f"-w {target} --version")
    assert isinstance(speech, ArtifactRef), speech
    assert seconds_of(executor, speech) > 1.0
    assert not target.exists()


@needs_espeak
def test_unknown_voice_is_a_clear_error(executor: LocalExecutor) -> None:
    error = run_node(executor, "audio.speak", "audio", text=SHORT, voice="xx-nowhere")
    assert "voice does not exist" in error["message"] and "espeak-ng --voices" in error["message"]


def test_empty_text_is_a_clear_error(executor: LocalExecutor) -> None:
    error = run_node(executor, "audio.speak", "audio", text="  ")
    assert "the text is empty" in error["message"]


def test_missing_espeak_says_how_to_install_it(executor: LocalExecutor, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODELOOM_ESPEAK", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    error = run_node(executor, "audio.speak", "audio", text=SHORT)
    assert error["code"] == "node_failed"
    assert "espeak-ng was not found on PATH" in error["message"]
    assert "apt-get install espeak-ng" in error["message"] and "brew install espeak-ng" in error["message"]


def test_nodeloom_espeak_pointing_nowhere_is_named(executor: LocalExecutor, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODELOOM_ESPEAK", str(tmp_path / "no-espeak"))
    error = run_node(executor, "audio.speak", "audio", text=SHORT)
    assert "NODELOOM_ESPEAK=" in error["message"] and "is not an executable file" in error["message"]
    assert "apt-get install espeak-ng" in error["message"]


@needs_espeak
def test_nodeloom_espeak_is_used_when_not_on_path(executor: LocalExecutor, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert ESPEAK is not None
    monkeypatch.setenv("NODELOOM_ESPEAK", os.path.realpath(ESPEAK))
    monkeypatch.setenv("PATH", str(tmp_path))
    speech = run_node(executor, "audio.speak", "audio", text=SHORT)
    assert isinstance(speech, ArtifactRef), speech
    assert seconds_of(executor, speech) > 0.3


def test_duration_reads_a_wav(executor: LocalExecutor) -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00\x00\x00" * 6000)
    ref = executor.artifacts.put_bytes(buffer.getvalue(), "audio/wav")
    assert run_node(executor, "audio.duration", "seconds", audio=ref) == pytest.approx(0.75)


def test_duration_of_something_else_is_a_clear_error(executor: LocalExecutor) -> None:
    ref = executor.artifacts.put_bytes(b"ID3\x03\x00" + b"\x00" * 100, "audio/mpeg")
    error = run_node(executor, "audio.duration", "seconds", audio=ref)
    assert "reads PCM WAV files only" in error["message"] and "audio/mpeg" in error["message"]


# -- the sound track: voice-over, music bed, mix -------------------------------------------------


def samples_of(executor: LocalExecutor, ref: ArtifactRef) -> Any:
    import numpy as np

    with wave.open(str(executor.artifacts.path(ref)), "rb") as recording:
        return np.frombuffer(recording.readframes(recording.getnframes()), "<i2").astype(float) / 32768, \
            recording.getframerate()


def voice_over(executor: LocalExecutor, **inputs: Any) -> dict[str, Any]:
    g = Graph()
    node = g.add("audio.voice_over", "it", **inputs)
    for name in ("audio", "durations", "narrated", "notice"):
        g.output(name, node[name])
    result = executor.run(g, use_cache=False)
    assert result.ok, result.errors()
    return dict(result.outputs)


@needs_espeak
def test_voice_over_times_each_scene_to_its_line(executor: LocalExecutor) -> None:
    out = voice_over(executor, lines=[SHORT, LONG], min_seconds=1.0)
    assert out["narrated"] is True and out["notice"] == ""
    short, long = out["durations"]
    assert long > short + 2  # the long line takes seconds more to say
    samples, rate = samples_of(executor, out["audio"])
    assert len(samples) / rate == pytest.approx(short + long, abs=0.05)
    assert abs(samples[: int(0.3 * rate)]).max() < 0.01  # a pause before the first line
    assert abs(samples).max() > 0.1


def test_voice_over_without_espeak_says_so_once_and_goes_on(executor: LocalExecutor, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NODELOOM_ESPEAK", raising=False)
    from nodeloom.node_registry.audio import soundtrack

    monkeypatch.setattr(soundtrack, "_notices_shown", set())
    first = voice_over(executor, lines=[SHORT, LONG], words_per_minute=120, min_seconds=1.0)
    voice_over(executor, lines=["Once more."])
    assert first["narrated"] is False and "apt-get install espeak-ng" in first["notice"]
    assert capsys.readouterr().err.count("notice: narration is off") == 1
    # timed by reading speed: 18 words at 120 per minute is 9 s, plus the pauses
    assert first["durations"][1] == pytest.approx(9 + 0.95, abs=0.01)


def test_voice_over_on_without_espeak_fails_clearly(executor: LocalExecutor, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NODELOOM_ESPEAK", raising=False)
    error = run_node(executor, "audio.voice_over", "durations", lines=[SHORT], narration="on")
    assert "espeak-ng was not found" in error["message"]


def test_music_bed_is_soft_faded_and_as_long_as_asked(executor: LocalExecutor) -> None:
    import numpy as np

    samples, rate = samples_of(executor, run_node(executor, "audio.music_bed", "audio", seconds=6.0, seed=3))
    assert len(samples) / rate == pytest.approx(6.0, abs=0.01)
    assert 0.3 < abs(samples).max() <= 0.51
    assert abs(samples[:50]).max() < 0.01 and abs(samples[-50:]).max() < 0.01  # faded in and out
    middle = samples[2 * rate: 4 * rate]
    assert np.sqrt((middle ** 2).mean()) > 0.05  # it plays in between


def test_mix_ducks_the_music_under_the_voice(executor: LocalExecutor) -> None:
    import numpy as np

    from nodeloom.node_registry.audio.samples import RATE, mix_tracks, synthesise_music

    music = synthesise_music(4.0)
    voice = np.zeros(4 * RATE, dtype=np.float32)
    voice[RATE: 2 * RATE] = 0.5 * np.sin(2 * np.pi * 220 * np.arange(RATE) / RATE)
    mixed = mix_tracks(voice, music, music_db=-14, duck_db=-8)
    music_only = mixed[int(2.6 * RATE): int(3.0 * RATE)]
    gain = np.sqrt((music_only ** 2).mean()) / np.sqrt((music[int(2.6 * RATE): int(3.0 * RATE)] ** 2).mean())
    assert abs(mixed).max() == pytest.approx(10 ** (-1 / 20), abs=0.01)
    assert gain < 0.5  # the bed sits well under the voice


def test_loading_the_node_registry_does_not_import_numpy() -> None:
    # numpy's import (~80 ms) and its BLAS threads are paid by the runs that mix sound, not by every run
    probe = ("import sys\nfrom nodeloom.node_registry import default_registry\n"
             "assert 'audio.mix' in default_registry().types()\n"
             "print('numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
