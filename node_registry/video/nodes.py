"""Video nodes: still images (with captions and a sound track) to an H.264 MP4, joining clips,
and grabbing a frame.

Everything is encoded by the ffmpeg binary of the `imageio-ffmpeg` wheel; frames are drawn
with Pillow. Outputs are H.264 (yuv420p, the pixel format every player decodes) with AAC
sound, the `moov` index at the front (`+faststart`) so a browser can start playing at once.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Literal

from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Pattern, Range
from nodeloom.core.spec import node
from nodeloom.core.types import AudioRef, ImageRef, VideoRef
from nodeloom.node_registry.image.fonts import load_font
from nodeloom.node_registry.video._ffmpeg import FrameEncoder, MediaInfo, ffmpeg_preflight, probe, run_ffmpeg

Fit = Literal["contain", "cover"]
Motion = Literal["none", "ken_burns"]

_H264_OPTIONS = ("-c:v", "libx264", "-preset", "fast", "-crf", "20", "-pix_fmt", "yuv420p")
_MP4_OPTIONS = ("-movflags", "+faststart")
_AAC_OPTIONS = ("-c:a", "aac", "-b:a", "160k")
_CAPTION_MAX_LINES = 3


def _fail(message: str, **details: object) -> NodeExecutionError:
    return NodeExecutionError(message, retryable=False, details=dict(details))


def frame_counts(durations: Sequence[float], fps: int) -> list[int]:
    """Frames per image such that the total is exactly round(sum(durations) * fps).

    Each image ends at the frame nearest its cumulative end time, so rounding errors do not
    pile up over many images.
    """
    counts: list[int] = []
    elapsed = 0.0
    shown = 0
    for seconds in durations:
        elapsed += seconds
        end = math.floor(elapsed * fps + 0.5)
        counts.append(end - shown)
        shown = end
    return counts


def _open_image(ctx: NodeContext, ref: ArtifactRef, index: int, background: tuple[int, int, int]) -> Image.Image:
    try:
        with Image.open(ctx.artifacts.path(ref)) as source:
            source.load()
            picture = ImageOps.exif_transpose(source)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise _fail(f"video.slideshow: images[{index}] is not an image Pillow can read: {error}",
                    index=index) from None
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        # transparent pixels show the background colour, not whatever colour they hide
        rgba = picture.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return picture.convert("RGB")


def fit_frame(picture: Image.Image, width: int, height: int, fit: Fit, background: tuple[int, int, int]) -> Image.Image:
    """The picture scaled into a width×height frame: whole and letterboxed, or cropped to fill."""
    if fit == "cover":
        return ImageOps.fit(picture, (width, height), method=Image.Resampling.LANCZOS)
    scaled = ImageOps.contain(picture, (width, height), method=Image.Resampling.LANCZOS)
    frame = Image.new("RGB", (width, height), background)
    frame.paste(scaled, ((width - scaled.width) // 2, (height - scaled.height) // 2))
    return frame


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, room: float) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > room:
                lines.append(line)
                line = word
            else:
                line = candidate
        if line:
            lines.append(line)
    if len(lines) > _CAPTION_MAX_LINES:
        last = lines[_CAPTION_MAX_LINES - 1]
        while last and font.getlength(last + "…") > room:
            last = last[:-1]
        lines = [*lines[: _CAPTION_MAX_LINES - 1], last.rstrip() + "…"]
    return lines


def caption_layer(size: tuple[int, int], caption: str, font_path: str | None = None) -> Image.Image | None:
    """The caption in white on a dark band along the bottom, as a transparent layer (None: no text)."""
    width, height = size
    points = max(10, min(width, height) // 16)
    font = load_font(points, font_path)
    margin = max(4, points // 2)
    lines = _wrap(caption, font, width - 2 * margin)
    if not lines:
        return None
    spacing = points // 4
    line_height = points + spacing
    band_height = len(lines) * line_height - spacing + 2 * margin
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, height - band_height, width, height), fill=(0, 0, 0, 170))
    top = height - band_height + margin
    for number, line in enumerate(lines):
        draw.text((width / 2, top + number * line_height), line, font=font, fill=(255, 255, 255, 255), anchor="ma")
    return overlay


def draw_caption(frame: Image.Image, caption: str, font_path: str | None = None) -> Image.Image:
    """The frame with the caption in white on a dark band along the bottom."""
    layer = caption_layer(frame.size, caption, font_path)
    if layer is None:
        return frame
    return Image.alpha_composite(frame.convert("RGBA"), layer).convert("RGB")


# Ken Burns moves, by scene: zoom in, pan right, zoom out, pan left (start box, end box as (zoom, x, y))
_MOVES = (((1.0, 0.5, 0.5), (1.1, 0.5, 0.45)), ((1.1, 0.35, 0.5), (1.1, 0.65, 0.5)),
          ((1.1, 0.5, 0.55), (1.0, 0.5, 0.5)), ((1.1, 0.65, 0.5), (1.1, 0.35, 0.5)))


def moved(frame: Image.Image, scene: int, progress: float) -> Image.Image:
    """The frame at `progress` (0-1) through its scene's slow zoom or pan (sub-pixel smooth)."""
    start, end = _MOVES[scene % len(_MOVES)]
    eased = 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, progress)))
    zoom, cx, cy = (a + (b - a) * eased for a, b in zip(start, end, strict=True))
    width, height = frame.size
    box_w, box_h = width / zoom, height / zoom
    left = min(max(0.0, cx * width - box_w / 2), width - box_w)
    top = min(max(0.0, cy * height - box_h / 2), height - box_h)
    return frame.resize(frame.size, Image.Resampling.BILINEAR, box=(left, top, left + box_w, top + box_h))


def _scene_frames(stills: Sequence[Image.Image], layers: Sequence[Image.Image | None], per_image: Sequence[float],
                  fps: int, motion: bool, crossfade: float) -> Iterator[bytes]:
    """Every frame of a slideshow with motion and cross-fades; the cuts stay where the durations put them."""
    bounds = [0.0]
    for seconds in per_image:
        bounds.append(bounds[-1] + seconds)
    total = sum(frame_counts(per_image, fps))
    half = crossfade / 2

    def picture(index: int, t: float) -> Image.Image:
        start, end = bounds[index] - half, bounds[index + 1] + half
        frame = moved(stills[index], index, (t - start) / (end - start)) if motion else stills[index]
        layer = layers[index]
        return Image.alpha_composite(frame.convert("RGBA"), layer).convert("RGB") if layer is not None else frame

    scene = 0
    for number in range(total):
        t = (number + 0.5) / fps
        while scene < len(stills) - 1 and t >= bounds[scene + 1]:
            scene += 1
        frame = picture(scene, t)
        if half > 0 and scene < len(stills) - 1 and t > bounds[scene + 1] - half:
            frame = Image.blend(frame, picture(scene + 1, t), (t - bounds[scene + 1] + half) / crossfade)
        elif half > 0 and scene > 0 and t < bounds[scene] + half:
            frame = Image.blend(picture(scene - 1, t), frame, (t - bounds[scene] + half) / crossfade)
        yield frame.tobytes()


def _check_slideshow(images: Sequence[ArtifactRef], durations: Sequence[float], captions: Sequence[str],
                     width: int, height: int, fps: int) -> list[float]:
    if not images:
        raise _fail("video.slideshow: no images; give at least one")
    if width % 2 or height % 2:
        raise _fail(f"video.slideshow: width and height must be even numbers for H.264 (yuv420p), "
                    f"got {width}x{height}", width=width, height=height)
    if not durations:
        raise _fail("video.slideshow: durations is empty; give one number per image, or one for all")
    if len(durations) not in (1, len(images)):
        raise _fail(f"video.slideshow: {len(durations)} durations for {len(images)} images; "
                    "give one per image, or a single one for all", durations=len(durations), images=len(images))
    per_image = list(durations) * len(images) if len(durations) == 1 else list(durations)
    for index, seconds in enumerate(per_image):
        if not seconds > 0 or math.isinf(seconds):
            raise _fail(f"video.slideshow: durations[{index}] is {seconds}; each duration must be a positive "
                        "number of seconds", index=index)
        if seconds * fps < 1:
            raise _fail(f"video.slideshow: durations[{index}] is {seconds} s, shorter than one frame at {fps} fps "
                        f"({1 / fps:.3f} s)", index=index)
    if captions and len(captions) != len(images):
        raise _fail(f"video.slideshow: {len(captions)} captions for {len(images)} images; give one per image "
                    "(an empty text for none)", captions=len(captions), images=len(images))
    return per_image


@node("video.slideshow", output="video", preflight=ffmpeg_preflight)
def slideshow(
    ctx: NodeContext,
    images: Annotated[Sequence[ImageRef], "the slides, in order"],
    durations: Annotated[Sequence[float], "seconds per image, one per image, or a single value for all"] = (3.0,),
    audio: Annotated[AudioRef, "sound track (WAV, MP3, ...): encoded as AAC, cut to the video's length"] | None = None,
    captions: Annotated[Sequence[str], "text burned into the bottom of each image, one per image ('' for none)"] = (),
    width: Annotated[int, Range(16, 7680), "frame width in pixels (even)"] = 1280,
    height: Annotated[int, Range(16, 4320), "frame height in pixels (even)"] = 720,
    fps: Annotated[int, Range(1, 120), "frames per second"] = 25,
    fit: Annotated[Fit, "contain: whole image, letterboxed; cover: fill the frame, cropping"] = "contain",
    background: Annotated[str, Pattern(r"#[0-9a-fA-F]{6}"), "letterbox colour, '#rrggbb'"] = "#000000",
    motion: Annotated[Motion, "ken_burns: a slow zoom or pan on each still (a different move per image)"] = "none",
    crossfade: Annotated[float, Range(0, 5), "seconds of cross-fade between images (centred on each cut)"] = 0.0,
    font: Annotated[str, "caption font file (default: Noto Sans, or $NODELOOM_FONT)"] | None = None,
) -> VideoRef:
    """Turn still images into an H.264 MP4 slideshow, with optional captions, motion, cross-fades and sound track."""
    per_image = _check_slideshow(images, durations, captions, width, height, fps)
    if crossfade and crossfade > min(per_image):
        raise _fail(f"video.slideshow: crossfade {crossfade} s is longer than the shortest image "
                    f"({min(per_image)} s)", crossfade=crossfade)
    animated = motion != "none" or crossfade > 0
    counts = frame_counts(per_image, fps)
    total_frames = sum(counts)
    fill = ImageColor.getrgb(background)[:3]
    audio_path = ctx.artifacts.path(audio) if audio is not None else None
    with tempfile.TemporaryDirectory(prefix="nodeloom-slideshow-") as folder:
        target = Path(folder) / "slideshow.mp4"
        extra_inputs: list[str] = []
        tune = [] if animated else ["-tune", "stillimage"]
        output_options = ["-map", "0:v:0", *_H264_OPTIONS, *tune, "-r", str(fps)]
        if audio_path is not None:
            extra_inputs = ["-i", str(audio_path)]
            output_options += ["-map", "1:a:0", *_AAC_OPTIONS]
        # -t cuts a longer sound track to the pictures' length; a shorter one simply ends early
        output_options += ["-t", f"{total_frames / fps:.6f}", *_MP4_OPTIONS]
        with FrameEncoder(target, width, height, fps, what="video.slideshow",
                          extra_inputs=extra_inputs, output_options=output_options) as encoder:
            if animated:
                stills = [fit_frame(_open_image(ctx, ref, index, fill), width, height, fit, fill)
                          for index, ref in enumerate(images)]
                layers = [caption_layer((width, height), captions[index], font) if captions else None
                          for index in range(len(images))]
                for number, data in enumerate(_scene_frames(stills, layers, per_image, fps, motion != "none",
                                                            crossfade)):
                    if number % fps == 0:
                        ctx.check_cancelled()
                        ctx.progress(number, total_frames, f"frame {number} of {total_frames}")
                    encoder.write(data)
            for index, (ref, count) in enumerate(zip(images, counts, strict=True)):
                if animated:
                    break
                ctx.progress(index, len(images), f"image {index + 1} of {len(images)}")
                frame = fit_frame(_open_image(ctx, ref, index, fill), width, height, fit, fill)
                if captions and captions[index].strip():
                    frame = draw_caption(frame, captions[index], font)
                data = frame.tobytes()
                for written in range(count):
                    if written and written % fps == 0:
                        ctx.check_cancelled()
                    encoder.write(data)
            encoder.finish()
        ctx.progress(len(images), len(images), "encoded")
        return ctx.artifacts.put_file(target, "video/mp4")


def _probe_clip(ctx: NodeContext, ref: ArtifactRef, index: int) -> MediaInfo:
    info = probe(ctx.artifacts.path(ref), what=f"video.concat: videos[{index}]")
    if not info.has_video or info.width is None or info.height is None:
        raise _fail(f"video.concat: videos[{index}] has no video stream", index=index)
    if info.duration is None:
        raise _fail(f"video.concat: videos[{index}] does not say how long it is", index=index)
    return info


@node("video.concat", output="video", preflight=ffmpeg_preflight)
def concat(
    ctx: NodeContext,
    videos: Annotated[Sequence[VideoRef], "clips, played one after the other"],
) -> VideoRef:
    """Join clips into one MP4 (re-encoded; letterboxed to the first clip's size and frame rate).

    Every clip is scaled to fit the first clip's frame size (keeping its aspect ratio, black
    bars where it differs) and converted to the first clip's frame rate. When any clip has
    sound, clips without sound contribute silence, so sound and pictures stay in step.
    """
    if not videos:
        raise _fail("video.concat: no videos; give at least one")
    infos = [_probe_clip(ctx, ref, index) for index, ref in enumerate(videos)]
    first = infos[0]
    assert first.width is not None and first.height is not None
    # H.264 yuv420p needs even sizes: round an odd first clip down
    width, height = first.width - first.width % 2, first.height - first.height % 2
    fps = first.fps or 25.0
    with_sound = any(info.has_audio for info in infos)
    inputs: list[str] = []
    chains: list[str] = []
    joined: list[str] = []
    for index, (ref, info) in enumerate(zip(videos, infos, strict=True)):
        inputs += ["-i", str(ctx.artifacts.path(ref))]
        chains.append(
            f"[{index}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps={fps:g},format=yuv420p[v{index}]"
        )
        joined.append(f"[v{index}]")
        if with_sound:
            if info.has_audio:
                chains.append(f"[{index}:a:0]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"
                              f"[a{index}]")
            else:
                chains.append(f"anullsrc=r=48000:cl=stereo,atrim=duration={info.duration:.6f},"
                              f"aformat=sample_fmts=fltp:channel_layouts=stereo[a{index}]")
            joined.append(f"[a{index}]")
    streams = "[v][a]" if with_sound else "[v]"
    graph = ";".join([*chains, f"{''.join(joined)}concat=n={len(videos)}:v=1:a={int(with_sound)}{streams}"])
    ctx.progress(0, 1, f"joining {len(videos)} clips")
    with tempfile.TemporaryDirectory(prefix="nodeloom-concat-") as folder:
        target = Path(folder) / "joined.mp4"
        maps = ["-map", "[v]", *(["-map", "[a]", *_AAC_OPTIONS] if with_sound else [])]
        run_ffmpeg(ctx, [*inputs, "-filter_complex", graph, *maps, *_H264_OPTIONS, *_MP4_OPTIONS, str(target)],
                   what="video.concat")
        ctx.progress(1, 1, "joined")
        return ctx.artifacts.put_file(target, "video/mp4")


@node("video.thumbnail", output="image", preflight=ffmpeg_preflight)
def thumbnail(
    ctx: NodeContext,
    video: Annotated[VideoRef, "the clip"],
    at: Annotated[float, Range(0, None), "time of the frame, in seconds from the start"] = 0.0,
) -> ImageRef:
    """The frame of a video at a given time, as a PNG."""
    source = ctx.artifacts.path(video)
    info = probe(source, what="video.thumbnail")
    if not info.has_video:
        raise _fail("video.thumbnail: the file has no video stream")
    if info.duration is not None and at >= info.duration:
        raise _fail(f"video.thumbnail: at={at} s is past the end of the video ({info.duration:.3f} s long)",
                    at=at, duration=info.duration)
    with tempfile.TemporaryDirectory(prefix="nodeloom-thumbnail-") as folder:
        target = Path(folder) / "frame.png"
        run_ffmpeg(ctx, ["-ss", f"{at:.6f}", "-i", str(source), "-map", "0:v:0", "-frames:v", "1",
                         "-c:v", "png", "-f", "image2", str(target)], what="video.thumbnail")
        if not target.is_file():
            raise _fail(f"video.thumbnail: no frame at {at} s", at=at)
        return ctx.artifacts.put_file(target, "image/png")
