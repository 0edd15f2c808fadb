"""The video pack, checked by decoding the MP4 files it writes with ffmpeg (imageio-ffmpeg)."""

from __future__ import annotations

import io
import math
import os
import re
import struct
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imageio_ffmpeg  # type: ignore[import-untyped]
import numpy as np
import pytest
from PIL import Image

from nodeloom.core import ArtifactRef, EventKind, Graph, RunEvent, RunStatus
from nodeloom.executors import LocalExecutor

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)
SIZE = {"width": 160, "height": 90}






def put_image(executor: LocalExecutor, colour: tuple[int, int, int], size: tuple[int, int] = (320, 180)) -> ArtifactRef:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return executor.artifacts.put_bytes(buffer.getvalue(), "image/png")


def put_sine_wav(executor: LocalExecutor, seconds: float, rate: int = 16000) -> ArtifactRef:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (int(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return executor.artifacts.put_bytes(buffer.getvalue(), "audio/wav")


def run_node(executor: LocalExecutor, node_type: str, output: str, **inputs: Any) -> Any:
    """Run one node; its output value, or the failed node's error record."""
    g = Graph()
    g.output("out", g.add(node_type, "it", **inputs)[output])
    result = executor.run(g)
    return result.outputs["out"] if result.ok else result.nodes["it"].error


def decode(executor: LocalExecutor, ref: ArtifactRef) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The metadata and every frame (H×W×3 arrays) of a stored video."""
    frames = imageio_ffmpeg.read_frames(str(executor.artifacts.path(ref)))
    meta: dict[str, Any] = next(frames)
    width, height = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in frames]


def mean_colour(frame: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in frame.reshape(-1, 3).mean(axis=0))


def near(a: Sequence[int], b: Sequence[int], tolerance: int = 25) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_slideshow_has_the_durations_frame_count_and_size_asked_for(executor: LocalExecutor) -> None:
    images = [put_image(executor, c) for c in (RED, GREEN, BLUE)]
    video = run_node(executor, "video.slideshow", "video", images=images, durations=[1.0, 0.5, 1.5], fps=10, **SIZE)
    assert isinstance(video, ArtifactRef), video
    assert (video.media_type, video.kind) == ("video/mp4", "video")
    meta, frames = decode(executor, video)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (160, 90) and meta["fps"] == 10.0
    assert meta["duration"] == pytest.approx(3.0, abs=0.05)
    assert len(frames) == 30
    colours = [mean_colour(f) for f in frames]
    assert all(near(c, RED) for c in colours[:10])
    assert all(near(c, GREEN) for c in colours[10:15])
    assert all(near(c, BLUE) for c in colours[15:])


def test_slideshow_index_is_at_the_front_for_streaming(executor: LocalExecutor) -> None:
    video = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED)], durations=[0.5], fps=10,
                     **SIZE)
    data = executor.artifacts.read_bytes(video)
    boxes = []
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        boxes.append(kind.decode())
        offset += size
    assert boxes.index("moov") < boxes.index("mdat")


def test_one_duration_applies_to_every_image(executor: LocalExecutor) -> None:
    images = [put_image(executor, c) for c in (RED, GREEN, BLUE)]
    video = run_node(executor, "video.slideshow", "video", images=images, durations=[0.5], fps=10, **SIZE)
    meta, frames = decode(executor, video)
    assert len(frames) == 15 and meta["duration"] == pytest.approx(1.5, abs=0.05)
    assert near(mean_colour(frames[7]), GREEN)


def test_images_are_letterboxed_into_the_frame(executor: LocalExecutor) -> None:
    square = put_image(executor, RED, size=(200, 200))
    video = run_node(executor, "video.slideshow", "video", images=[square], durations=[0.2], fps=10, **SIZE)
    _, frames = decode(executor, video)
    frame = frames[0]
    assert near(mean_colour(frame[:, :30]), (0, 0, 0))  # 90×90 picture centred: bars of 35 px each side
    assert near(mean_colour(frame[:, -30:]), (0, 0, 0))
    assert near(mean_colour(frame[10:80, 50:110]), RED)


def test_captions_are_burned_into_the_bottom_band(executor: LocalExecutor) -> None:
    images = [put_image(executor, BLUE), put_image(executor, GREEN)]
    plain = run_node(executor, "video.slideshow", "video", images=images, durations=[0.3], fps=10, **SIZE)
    captioned = run_node(executor, "video.slideshow", "video", images=images, durations=[0.3], fps=10,
                         captions=["Fresh tea, every morning", ""], **SIZE)
    _, before = decode(executor, plain)
    _, after = decode(executor, captioned)
    difference = np.abs(before[0].astype(int) - after[0].astype(int)).sum(axis=2)
    assert difference[-12:].mean() > 40  # the band: darkened, with white letters
    assert difference[:50].max() < 30  # the picture above it is untouched
    assert np.abs(before[4].astype(int) - after[4].astype(int)).max() < 30  # '' means no caption


def test_sound_track_is_muxed_as_aac_and_cut_to_the_pictures(executor: LocalExecutor) -> None:
    images = [put_image(executor, RED), put_image(executor, BLUE)]
    video = run_node(executor, "video.slideshow", "video", images=images, durations=[1.0], fps=10,
                     audio=put_sine_wav(executor, seconds=4.0), **SIZE)
    meta, frames = decode(executor, video)
    assert meta.get("audio_codec") == "aac"
    assert len(frames) == 20
    assert meta["duration"] == pytest.approx(2.0, abs=0.1)


def test_progress_is_reported_per_image(executor: LocalExecutor) -> None:
    images = [put_image(executor, c) for c in (RED, GREEN, BLUE)]
    g = Graph()
    g.output("v", g.add("video.slideshow", "show", images=images, durations=[0.2], fps=10, **SIZE)["video"])
    events: list[RunEvent] = []
    assert executor.run(g, on_event=events.append).ok
    progress = [(e.data["done"], e.data["total"]) for e in events if e.kind is EventKind.NODE_PROGRESS]
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]


def ffmpeg_children() -> list[int]:
    """Process ids of this process's ffmpeg children (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if int(rest[1]) == os.getpid() and name.startswith("ffmpeg"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="watches child processes through /proc")
def test_cancelling_stops_the_encoder(executor: LocalExecutor) -> None:
    images = [put_image(executor, c) for c in (RED, GREEN, BLUE) * 20]
    g = Graph()
    g.output("v", g.add("video.slideshow", "show", images=images, durations=[4.0], fps=25, **SIZE)["video"])
    second_image = threading.Event()
    handle = executor.submit(g, on_event=lambda e: second_image.set()
                          if e.kind is EventKind.NODE_PROGRESS and e.data["done"] == 1 else None)
    assert second_image.wait(10)
    assert ffmpeg_children()
    assert handle.cancel() is True
    # uncancelled, this encode runs for seconds (about 2 s on a fast core); cancelled, it stops within an image
    deadline = time.monotonic() + 1.0
    assert handle.result(timeout=5).status is RunStatus.CANCELLED
    while ffmpeg_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not ffmpeg_children()
    time.sleep(0.3)
    stored = [p for p in executor.artifacts.root.rglob("*") if p.is_file() and p.read_bytes()[4:8] == b"ftyp"]
    assert stored == []


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"images": [], "durations": [1.0]}, "no images"),
        ({"durations": [1.0, 2.0]}, "2 durations for 3 images"),
        ({"durations": [1.0, 0.0, 1.0]}, r"durations\[1\] is 0.0; each duration must be a positive"),
        ({"durations": [1.0], "captions": ["a", "b"]}, "2 captions for 3 images"),
        ({"durations": [1.0], "width": 161}, "width and height must be even numbers"),
        ({"durations": [0.01]}, "shorter than one frame at 10 fps"),
    ],
    ids=["no-images", "durations-count", "zero-duration", "captions-count", "odd-width", "sub-frame-duration"],
)
def test_bad_slideshow_inputs_are_clear_errors(executor: LocalExecutor, inputs: dict[str, Any], message: str) -> None:
    images = [put_image(executor, c) for c in (RED, GREEN, BLUE)]
    error = run_node(executor, "video.slideshow", "video", **{"images": images, "fps": 10, **SIZE, **inputs})
    assert isinstance(error, dict), error
    assert error["code"] == "node_failed"
    assert error["message"].startswith("video.slideshow: ")
    assert re.search(message, error["message"]), error["message"]


def test_unreadable_image_names_its_index(executor: LocalExecutor) -> None:
    junk = executor.artifacts.put_bytes(b"not a picture", "image/png")
    error = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED), junk], durations=[1.0],
                     fps=10, **SIZE)
    assert "images[1] is not an image Pillow can read" in error["message"]


def test_concat_sums_durations_and_frames(executor: LocalExecutor) -> None:
    first = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED)], durations=[1.0], fps=10,
                     **SIZE)
    second = run_node(executor, "video.slideshow", "video", images=[put_image(executor, BLUE)], durations=[0.5], fps=10,
                      **SIZE)
    joined = run_node(executor, "video.concat", "video", videos=[first, second])
    meta, frames = decode(executor, joined)
    assert len(frames) == 15 and meta["size"] == (160, 90)
    assert meta["duration"] == pytest.approx(1.5, abs=0.05)
    assert near(mean_colour(frames[5]), RED) and near(mean_colour(frames[12]), BLUE)


def test_concat_letterboxes_other_sizes_and_fills_missing_sound(executor: LocalExecutor) -> None:
    narrated = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED)],
                        durations=[1.0], fps=10, audio=put_sine_wav(executor, 1.0), **SIZE)
    tall = run_node(executor, "video.slideshow", "video", images=[put_image(executor, GREEN, (60, 120))],
                    durations=[1.0], fps=10, width=60, height=120)
    joined = run_node(executor, "video.concat", "video", videos=[narrated, tall])
    meta, frames = decode(executor, joined)
    assert meta["size"] == (160, 90) and meta.get("audio_codec") == "aac"
    assert len(frames) == 20 and meta["duration"] == pytest.approx(2.0, abs=0.1)
    assert near(mean_colour(frames[15][:, :40]), (0, 0, 0)) and near(mean_colour(frames[15][:, 70:90]), GREEN)


def test_thumbnail_is_the_frame_at_the_time_asked(executor: LocalExecutor) -> None:
    video = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED), put_image(executor, BLUE)],
                     durations=[1.0], fps=10, **SIZE)
    image = run_node(executor, "video.thumbnail", "image", video=video, at=1.5)
    assert image.media_type == "image/png"
    with Image.open(executor.artifacts.path(image)) as picture:
        assert picture.size == (160, 90)
        assert near(mean_colour(np.asarray(picture.convert("RGB"))), BLUE)


def test_thumbnail_past_the_end_is_a_clear_error(executor: LocalExecutor) -> None:
    video = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED)], durations=[1.0], fps=10,
                     **SIZE)
    error = run_node(executor, "video.thumbnail", "image", video=video, at=5.0)
    assert "at=5.0 s is past the end of the video (1.000 s long)" in error["message"]


def test_missing_ffmpeg_binary_says_how_to_install(executor: LocalExecutor, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-ffmpeg-here"))
    error = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED)], durations=[1.0], fps=10,
                     **SIZE)
    assert "pip install imageio-ffmpeg" in error["message"]



# -- motion, cross-fades, subtitles, frame sizes, the report -------------------------------


def test_ken_burns_moves_the_picture_within_a_scene(executor: LocalExecutor) -> None:
    buffer = io.BytesIO()
    stripes = Image.new("RGB", (320, 180), RED)
    for x in range(0, 320, 40):
        stripes.paste(BLUE, (x, 0, x + 20, 180))
    stripes.save(buffer, "PNG")
    ref = executor.artifacts.put_bytes(buffer.getvalue(), "image/png")
    video = run_node(executor, "video.slideshow", "video", images=[ref], durations=[2.0], fps=10,
                     motion="ken_burns", **SIZE)
    _, frames = decode(executor, video)
    assert len(frames) == 20
    first, last = frames[0].astype(int), frames[-1].astype(int)
    assert np.abs(first - last).mean() > 10  # the stripes moved: zoomed in by 10 %


def test_crossfade_blends_across_the_cut_and_keeps_the_length(executor: LocalExecutor) -> None:
    images = [put_image(executor, RED), put_image(executor, BLUE)]
    video = run_node(executor, "video.slideshow", "video", images=images, durations=[1.0, 1.0], fps=10,
                     crossfade=0.6, **SIZE)
    _, frames = decode(executor, video)
    assert len(frames) == 20
    assert near(mean_colour(frames[0]), RED) and near(mean_colour(frames[-1]), BLUE)
    red, _, blue = mean_colour(frames[10])  # at the cut: half of each
    assert 60 < red < 170 and 60 < blue < 170


def test_crossfade_longer_than_an_image_is_a_clear_error(executor: LocalExecutor) -> None:
    error = run_node(executor, "video.slideshow", "video", images=[put_image(executor, RED)] * 2,
                     durations=[1.0, 1.0], crossfade=1.5, **SIZE)
    assert "crossfade 1.5 s is longer than the shortest image" in error["message"]


def test_subtitles_are_srt_timed_to_the_scenes(executor: LocalExecutor) -> None:
    ref = run_node(executor, "video.subtitles", "subtitles", lines=["Lumière · Größe", "", "Señal"],
                   durations=[2.5, 1.0, 62.25], lead=0.3)
    assert ref.extension == ".srt"
    assert executor.artifacts.read_bytes(ref).decode("utf-8") == (
        "1\n00:00:00,300 --> 00:00:02,500\nLumière · Größe\n\n"
        "2\n00:00:03,800 --> 00:01:05,750\nSeñal\n"
    )


@pytest.mark.parametrize(("fmt", "short", "size"), [("16:9", 720, (1280, 720)), ("9:16", 720, (720, 1280)),
                                                    ("1:1", 1080, (1080, 1080)), ("4:5", 720, (720, 900))])
def test_frame_size_of_each_format(executor: LocalExecutor, fmt: str, short: int, size: tuple[int, int]) -> None:
    g = Graph()
    sized = g.add("video.frame_size", "it", format=fmt, short_side=short)
    g.output("w", sized["width"])
    g.output("h", sized["height"])
    outputs = executor.run(g).outputs
    assert (outputs["w"], outputs["h"]) == size


def test_report_measures_scenes_visuals_and_loudness(executor: LocalExecutor) -> None:
    images = [put_image(executor, RED), put_image(executor, RED), put_image(executor, BLUE)]
    video = run_node(executor, "video.slideshow", "video", images=images, durations=[1.0], fps=5,
                     audio=put_sine_wav(executor, 3.0), **SIZE)
    storyboard = {"scenes": [{"role": "hook", "caption": "Bright mornings"}, {"role": "benefit", "caption": "x y"},
                             {"role": "cta", "caption": "Order today"}]}
    report = run_node(executor, "video.report", "report", video=video, storyboard=storyboard,
                      durations=[1.0, 1.0, 1.0], images=images, narrated=False, narration_notice="off")
    assert report["scene_count"] == 3 and report["video"]["seconds"] == pytest.approx(3.0, abs=0.1)
    assert report["visuals"]["identical_pairs"] == 1 and report["visuals"]["min_mean_pixel_difference"] == 0
    assert len(report["caption_similarity"]["pairs"]) == 3
    assert -30 < report["loudness"]["integrated_lufs"] < 0  # a loud sine tone
