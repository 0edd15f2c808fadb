"""The examples run as a user runs them: real processes, the embedded LLM, real media files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import jsonschema
import pytest
from PIL import Image

from nodeloom.node_registry.image.tiny import save_tiny_pipeline
from nodeloom.node_registry.video._ffmpeg import probe

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "marketing_video"
NODELOOM = Path(sys.executable).with_name("nodeloom")


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "NODELOOM_HOME": str(tmp_path / "home"), "NO_COLOR": "1", "NODELOOM_LLM_THREADS": "1"}


def frames_of(video: Path) -> tuple[dict[str, Any], int]:
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    return meta, sum(1 for _ in reader)


def storyboard_schema(scenes: int) -> dict[str, Any]:
    template = json.loads((EXAMPLE / "graph.json").read_text())["nodes"]["storyboard_schema"]["inputs"]["template"]
    return json.loads(template.replace("{{ scenes }}", str(scenes)))


def test_marketing_video_runs_on_embedded_defaults(tmp_path: Path) -> None:
    out = tmp_path / "ad"
    done = subprocess.run(
        [str(NODELOOM), "run", str(EXAMPLE / "graph.json"), "--set", "product=Loom Lamp", "--set", "scenes=3",
         "--out", str(out)],
        capture_output=True, text=True, env=environment(tmp_path), timeout=600,
    )
    assert done.returncode == 0, done.stderr
    storyboard = json.loads((out / "storyboard.json").read_text())
    jsonschema.validate(storyboard, storyboard_schema(3))
    durations = [min(max(scene["seconds"], 2.0), 4.0) for scene in storyboard["scenes"]]
    meta, count = frames_of(out / "video.mp4")
    assert tuple(meta["size"]) == (640, 360) and meta["fps"] == 12
    assert count == round(sum(durations) * 12)
    thumbnails = sorted(out.glob("thumbnails_*.png"))
    assert len(thumbnails) == 3 and Image.open(thumbnails[0]).size == (640, 360)
    assert "[11/11] done" in done.stderr  # every node reported


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


def test_marketing_video_with_diffusion_voice_over_and_webhook(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    model = save_tiny_pipeline(tmp_path / "models")
    out = tmp_path / "ad"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "make_video.py"), "--scenes", "2", "--voice-over",
         "--diffusion-model", str(model), "--steps", "2", "--image-size", "64x64",
         "--webhook", url, "--allow-private-network", "--out", str(out)],
        capture_output=True, text=True, env=environment(tmp_path), timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    info = probe(out / "video.mp4", what="the example video")
    assert info.has_audio and info.has_video
    thumbnails = sorted(out.glob("thumbnails_*.png"))
    assert len(thumbnails) == 2 and Image.open(thumbnails[0]).size == (64, 64)
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
    assert {"narration", "speech", "payload", "publish"} <= set(nodes)
