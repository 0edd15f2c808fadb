"""The examples run as a user runs them: real processes, the embedded LLM, real media files."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_audio import needs_espeak

from nodeloom.node_registry.image.tiny import save_tiny_pipeline
from nodeloom.node_registry.video._ffmpeg import probe

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "marketing_video"
NODELOOM = Path(sys.executable).with_name("nodeloom")


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "NODELOOM_HOME": str(tmp_path / "home"), "NO_COLOR": "1", "NODELOOM_LLM_THREADS": "1"}


ESPEAK = shutil.which("espeak-ng")


def srt_blocks(text: str) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest.replace(",", "."))

    blocks = []
    for block in text.strip().split("\n\n"):
        _, times, *lines = block.splitlines()
        start, end = times.split(" --> ")
        blocks.append((seconds(start), seconds(end), " ".join(lines)))
    return blocks


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the embedded LLM writes and critiques: a minute or two on an idle 2-core machine
def test_marketing_video_main_job_gives_a_distinct_narrated_720p_video(tmp_path: Path) -> None:
    out = tmp_path / "ad"
    done = subprocess.run(
        [str(NODELOOM), "run", str(EXAMPLE / "graph.json"), "--set", "scenes=4", "--set", "refine_turns=1",
         "--out", str(out)],
        capture_output=True, text=True, env=environment(tmp_path), timeout=1700,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    info = probe(out / "video.mp4", what="the example video")
    assert (info.width, info.height) == (1280, 720) and info.has_audio
    assert info.duration is not None and 12 <= info.duration <= 30
    assert report["video"]["seconds"] == pytest.approx(info.duration, abs=0.1)
    # distinct scenes: captions by MiniLM cosine, pictures by their pixels
    assert report["scene_count"] == 4 and report["roles"] == ["hook", "benefit", "benefit", "cta"]
    assert report["caption_similarity"]["measure"] == "all-MiniLM-L6-v2 cosine"
    assert report["caption_similarity"]["max"] < 0.8
    thumbnails = sorted(out.glob("thumbnails_*.png"))
    assert len(thumbnails) == 4
    assert len({hashlib.sha256(Image.open(t).convert("RGB").tobytes()).hexdigest() for t in thumbnails}) == 4
    assert report["visuals"]["identical_pairs"] == 0
    # the storyboard: short captions, the product named, the call to action last
    storyboard = json.loads((out / "storyboard.json").read_text())
    captions = [scene["caption"] for scene in storyboard["scenes"]]
    assert all(0 < len(caption) <= 42 for caption in captions)
    assert "loom lamp" in " ".join(captions).lower() and "order yours today" in captions[-1].lower()
    assert report["critic"]["turns"] >= 1 and report["critic"]["final_score"] is not None
    # sound: a voice where espeak-ng exists (CI installs it), else one notice; a music bed either way
    if ESPEAK or os.environ.get("CI"):
        assert report["narration"]["present"] is True
    else:
        assert report["narration"]["present"] is False
        assert done.stderr.count("notice: narration is off: espeak-ng is not installed") == 1
    assert report["music_bed"] is True and -40 < report["loudness"]["integrated_lufs"] < -6
    # the .srt: one line per scene, in order, ending with the video
    blocks = srt_blocks((out / "subtitles.srt").read_text(encoding="utf-8"))
    assert [text for _, _, text in blocks] == captions
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(blocks))
    assert blocks[-1][1] == pytest.approx(info.duration, abs=0.1)


def test_main_job_validates_without_espeak(tmp_path: Path) -> None:
    env = {**environment(tmp_path), "PATH": str(Path(sys.executable).parent)}
    env.pop("NODELOOM_ESPEAK", None)
    checked = subprocess.run([str(NODELOOM), "validate", str(EXAMPLE / "graph.json")], capture_output=True,
                             text=True, env=env, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - one server per test

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()


@needs_espeak
@pytest.mark.slow
@pytest.mark.timeout(1800)  # the embedded LLM, a diffusion pipeline and the encoder: minutes on a busy machine
def test_marketing_video_with_diffusion_voice_over_and_webhook(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    model = save_tiny_pipeline(tmp_path / "models")
    out = tmp_path / "ad"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "make_video.py"), "--scenes", "3", "--refine-turns", "1", "--voice-over",
         "--diffusion-model", str(model), "--steps", "2", "--image-size", "64x64",
         "--webhook", url, "--allow-private-network", "--out", str(out)],
        capture_output=True, text=True, env=environment(tmp_path), timeout=1700,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    info = probe(out / "video.mp4", what="the example video")
    assert info.has_audio and info.has_video
    thumbnails = sorted(out.glob("thumbnails_*.png"))
    assert len(thumbnails) == 3 and Image.open(thumbnails[0]).size == (64, 64)
    assert (out / "voice_over.wav").stat().st_size > 1000
    [payload] = received
    assert set(payload) == {"title", "video", "storyboard"}
    assert payload["video"]["$artifact"].startswith("sha256:") and payload["video"]["media_type"] == "video/mp4"
    assert payload["storyboard"] == json.loads((out / "storyboard.json").read_text())


def test_composed_graph_can_be_written_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "ad.json"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "make_video.py"), "--voice-over", "--webhook", "https://example.com/h",
         "--write-graph", str(target)],
        capture_output=True, text=True, env=environment(tmp_path), timeout=120,
    )
    assert done.returncode == 0, done.stderr
    checked = subprocess.run([str(NODELOOM), "validate", str(target)], capture_output=True, text=True,
                             env=environment(tmp_path), timeout=120)
    assert checked.returncode == 0, checked.stderr
    nodes = json.loads(target.read_text())["nodes"]
    assert {"storyboard", "voice", "payload", "publish"} <= set(nodes)
