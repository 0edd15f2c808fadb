"""Running the ffmpeg binary shipped in the `imageio-ffmpeg` wheel: locate it, run it so a
cancelled run stops it, feed it raw frames, and read what a media file holds.

`IMAGEIO_FFMPEG_EXE` (honoured by imageio-ffmpeg) points at another ffmpeg binary.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.preflight import problems_raised
from nodeloom.core.spec import InputProblem, NodePreflight

INSTALL_HINT = (
    "the video nodes need the ffmpeg binary shipped in the imageio-ffmpeg package: "
    "run `pip install imageio-ffmpeg`, or set IMAGEIO_FFMPEG_EXE to an ffmpeg executable"
)
_POLL_SECONDS = 0.1
_STDERR_TAIL = 1500


def ffmpeg_exe() -> str:
    """The path of the ffmpeg binary, or a NodeExecutionError saying how to install it."""
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]
    except ImportError:
        raise NodeExecutionError(INSTALL_HINT, retryable=False) from None
    try:
        configured = str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as error:
        raise NodeExecutionError(f"{INSTALL_HINT} ({error})", retryable=False) from None
    # imageio-ffmpeg returns $IMAGEIO_FFMPEG_EXE unchecked: a name on PATH or a path
    found = shutil.which(configured)
    if found is None:
        raise NodeExecutionError(f"ffmpeg {configured!r} is not an executable file; {INSTALL_HINT}",
                                 retryable=False, details={"ffmpeg": configured})
    return found


def ffmpeg_preflight(use: NodePreflight) -> list[InputProblem]:
    """The video nodes' preflight: the ffmpeg binary is there."""
    return problems_raised(ffmpeg_exe, "program_missing")


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    text = log.read().decode("utf-8", "replace").strip()
    return text[-_STDERR_TAIL:] if text else "no message"


def _failed(what: str, code: int | None, log: IO[bytes]) -> NodeExecutionError:
    return NodeExecutionError(
        f"{what}: ffmpeg failed (exit code {code}): {_tail(log)}", retryable=False, details={"exit_code": code}
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def run_ffmpeg(ctx: NodeContext, arguments: Sequence[str], *, what: str) -> None:
    """Run ffmpeg to completion; kill it and raise if the run is cancelled meanwhile."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while True:
                try:
                    code = process.wait(timeout=_POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    ctx.check_cancelled()
        finally:
            _stop(process)
        if code != 0:
            raise _failed(what, code, log)


class FrameEncoder:
    """An ffmpeg process reading raw RGB frames on stdin (`write`) and encoding them to `target`.

    Use as a context manager: leaving the block by an exception kills ffmpeg.
    """

    def __init__(self, target: Path, width: int, height: int, fps: int, *, what: str,
                 extra_inputs: Sequence[str] = (), output_options: Sequence[str] = ()) -> None:
        self.what = what
        self.frame_size = width * height * 3
        command = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
            *extra_inputs, *output_options, str(target),
        ]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the encoder; closed in __exit__
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frame: bytes) -> None:
        if len(frame) != self.frame_size:
            raise ValueError(f"a frame is {self.frame_size} bytes, not {len(frame)}")
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(frame)
        except BrokenPipeError:  # ffmpeg stopped early: its message says why
            raise _failed(self.what, self._process.wait(), self._log) from None

    def finish(self) -> None:
        """Close the input and wait for ffmpeg to write the file."""
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # ffmpeg already gone: its exit code says why
            self._process.stdin.close()
        code = self._process.wait()
        if code != 0:
            raise _failed(self.what, code, self._log)

    def __enter__(self) -> FrameEncoder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        _stop(self._process)
        self._log.close()


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What ffmpeg reports about a media file's first video stream and its sound."""

    width: int | None
    height: int | None
    fps: float | None
    duration: float | None
    has_video: bool
    has_audio: bool


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_SIZE = re.compile(r"[ ,](\d+)x(\d+)[ ,\[]")
_FPS = re.compile(r"(\d+(?:\.\d+)?)(k?) (?:fps|tbr)")


def probe(path: Path, *, what: str) -> MediaInfo:
    """Read the header of a media file (`ffmpeg -i`), without decoding it."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise NodeExecutionError(f"{what}: ffmpeg could not read the file's header within 60 s") from None
    text = done.stderr.decode("utf-8", "replace")
    if "Invalid data found" in text or "Stream #" not in text:
        raise NodeExecutionError(f"{what}: not a media file ffmpeg can read: {text.strip()[-_STDERR_TAIL:]}",
                                 retryable=False)
    duration = None
    if found := _DURATION.search(text):
        hours, minutes, seconds = found.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    width = height = None
    fps = None
    video = _VIDEO_LINE.search(text)
    if video is not None:
        line = video.group(1)
        if size := _SIZE.search(line):
            width, height = int(size.group(1)), int(size.group(2))
        if rate := _FPS.search(line):
            fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    return MediaInfo(width, height, fps, duration, video is not None, re.search(r": Audio: ", text) is not None)
