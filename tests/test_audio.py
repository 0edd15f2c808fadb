"""The audio pack: speech from the real espeak-ng program, read back with the `wave` module."""

from __future__ import annotations

import io
import os
import shutil
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
