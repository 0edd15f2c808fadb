"""Audio nodes: offline text-to-speech through the espeak-ng program, and reading a WAV's length.

espeak-ng is a system program, not a Python package: `apt-get install espeak-ng` on
Debian/Ubuntu, `brew install espeak-ng` on macOS. Set `NODELOOM_ESPEAK` to its path to use
a copy that is not on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Annotated

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Pattern, Range
from nodeloom.core.preflight import problems_raised
from nodeloom.core.spec import InputProblem, NodePreflight, node
from nodeloom.core.types import AudioRef

ESPEAK_ENV = "NODELOOM_ESPEAK"
INSTALL_HINT = (
    "audio.speak needs the espeak-ng program: on Debian/Ubuntu run `apt-get install espeak-ng`, "
    "on macOS `brew install espeak-ng`, on Windows install it from "
    "https://github.com/espeak-ng/espeak-ng/releases; "
    f"or set {ESPEAK_ENV} to the path of the espeak-ng executable"
)
#: voice names and variants ('en-us', 'mb/mb-en1', 'en+f3'); never an option such as '-w'
VOICE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_+\-/]{0,63}"
# generous: espeak-ng renders minutes of speech in about a second
_SPEAK_TIMEOUT = 300.0


def find_espeak() -> Path:
    """The espeak-ng executable: `$NODELOOM_ESPEAK` if set, else `espeak-ng` on PATH."""
    configured = os.environ.get(ESPEAK_ENV)
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise NodeExecutionError(
            f"{ESPEAK_ENV}={configured!r} is not an executable file. {INSTALL_HINT}",
            retryable=False,
            details={"env": ESPEAK_ENV, "path": configured},
        )
    found = shutil.which("espeak-ng")
    if found is None:
        raise NodeExecutionError(f"espeak-ng was not found on PATH. {INSTALL_HINT}", retryable=False)
    return Path(found)


def _speak_preflight(use: NodePreflight) -> list[InputProblem]:
    """audio.speak needs espeak-ng: a run that speaks fails before any node when it is missing."""
    return problems_raised(find_espeak, "program_missing")


@node("audio.speak", output="audio", preflight=_speak_preflight)
def speak(
    ctx: NodeContext,
    text: Annotated[str, "what to say (plain text)"],
    voice: Annotated[str, Pattern(VOICE_PATTERN), "espeak-ng voice: 'en-us', 'en-gb', 'de', 'en-us+f3'"] = "en-us",
    words_per_minute: Annotated[int, Range(80, 450), "speaking rate"] = 175,
    pitch: Annotated[int, Range(0, 99), "voice pitch, 50 is the voice's normal pitch"] = 50,
) -> AudioRef:
    """Speak a text with the offline espeak-ng engine; a mono 16-bit WAV."""
    if not text.strip():
        raise NodeExecutionError("audio.speak: the text is empty; give it something to say", retryable=False)
    if not re.fullmatch(VOICE_PATTERN, voice):
        raise NodeExecutionError(f"audio.speak: {voice!r} is not a voice name such as 'en-us'", retryable=False)
    program = find_espeak()
    with tempfile.TemporaryDirectory(prefix="nodeloom-speak-") as folder:
        target = Path(folder) / "speech.wav"
        espeak_wav(program, text, target, voice=voice, words_per_minute=words_per_minute, pitch=pitch)
        ctx.check_cancelled()
        return ctx.artifacts.put_file(target, "audio/wav")


def espeak_wav(program: Path, text: str, target: Path, *, voice: str = "en-us", words_per_minute: int = 175,
               pitch: int = 50) -> None:
    """Speak `text` into the WAV file `target` with the espeak-ng at `program`; a clear error if it fails."""
    # the text goes through stdin, never the command line: it may start with '-' or be long
    command = [str(program), "-b", "1", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch),
               "-w", str(target), "--stdin"]
    try:
        done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                              timeout=_SPEAK_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise NodeExecutionError(f"audio.speak: espeak-ng ran longer than {_SPEAK_TIMEOUT:.0f} s") from None
    except OSError as error:
        raise NodeExecutionError(f"audio.speak: cannot run {program}: {error}. {INSTALL_HINT}",
                                 retryable=False) from None
    problem = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not target.is_file() or target.stat().st_size <= 44:
        if "voice does not exist" in problem:
            problem += " (list the voices with `espeak-ng --voices`)"
        raise NodeExecutionError(
            f"audio.speak: espeak-ng failed (exit code {done.returncode}): {problem or 'no audio written'}",
            retryable=False,
            details={"voice": voice},
        )


_WAV_MEDIA = re.compile(r"audio/(x-)?wav|audio/wave|audio/vnd\.wave")


@node("audio.duration", output="seconds")
def duration(ctx: NodeContext, audio: Annotated[AudioRef, "a WAV file"]) -> float:
    """The length of a WAV recording in seconds (for timing slides to narration)."""
    try:
        with wave.open(str(ctx.artifacts.path(audio)), "rb") as recording:
            return recording.getnframes() / recording.getframerate()
    except (wave.Error, EOFError) as error:
        kind = "" if _WAV_MEDIA.fullmatch(audio.media_type) else f" (its media type is {audio.media_type})"
        raise NodeExecutionError(
            f"audio.duration reads PCM WAV files only; this audio is not one{kind}: {error}",
            retryable=False,
        ) from None
