"""Model-free image nodes drawn with Pillow: title cards, resizing, captions.

Text is set in Pillow's built-in font (`ImageFont.load_default(size=...)`), so no font
file has to be installed; long text wraps to the space available and shrinks to fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from PIL import Image, ImageDraw, ImageFont, ImageOps

from nodeloom.core.context import NodeContext
from nodeloom.core.ports import Range
from nodeloom.core.spec import node
from nodeloom.core.types import ImageRef
from nodeloom.node_registry.image._io import parse_color, read_image, store_png

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_SMALLEST_FONT = 8
_LINE_SPACING = 0.25  # of the font size


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Wrapped lines set in one font, and the size of the block they make."""

    text: str
    font: Font
    spacing: int
    width: int
    height: int


def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, max_width: float) -> list[str]:
    """Greedy word wrap; a word wider than the line on its own is broken between letters."""

    def fits(candidate: str) -> bool:
        return draw.textlength(candidate, font=font) <= max_width

    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            while not fits(word) and len(word) > 1:
                cut = next((n for n in range(len(word) - 1, 0, -1) if fits(word[:n])), 1)
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            candidate = f"{line} {word}" if line else word
            if fits(candidate):
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def layout_text(text: str, max_width: int, max_height: int, font_size: int) -> TextBlock:
    """Wrap `text` to `max_width`, shrinking the font from `font_size` until the block fits `max_height`."""
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    size = font_size
    while True:
        font = _font(size)
        spacing = max(1, round(size * _LINE_SPACING))
        wrapped = "\n".join(_wrap(draw, text, font, max_width))
        left, top, right, bottom = draw.multiline_textbbox((0, 0), wrapped, font=font, spacing=spacing,
                                                           align="center")
        block = TextBlock(wrapped, font, spacing, int(right - left), int(bottom - top))
        if (block.height <= max_height and block.width <= max_width) or size <= _SMALLEST_FONT:
            return block
        size = max(_SMALLEST_FONT, int(size * 0.85))


def _contrasting(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    red, green, blue = rgb
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


@node("image.title_card", output="image")
def title_card(
    ctx: NodeContext,
    text: Annotated[str, "the words on the card; long text wraps"],
    width: Annotated[int, Range(16, 8192), "card width in pixels"] = 1280,
    height: Annotated[int, Range(16, 8192), "card height in pixels"] = 720,
    background: Annotated[str, "background colour: a name ('navy') or hex code ('#101820')"] = "#101820",
    background_end: Annotated[str, "second colour: a top-to-bottom gradient from background to it"] | None = None,
    text_color: Annotated[str, "text colour; by default black or white, whichever contrasts"] | None = None,
    font_size: Annotated[int, Range(_SMALLEST_FONT, 1024), "font size in pixels; smaller if the text does not fit"]
    = 72,
) -> ImageRef:
    """Render a title card: centred, wrapped text on a plain or gradient background."""
    start = parse_color(background, "background")
    if background_end is None:
        card = Image.new("RGB", (width, height), start)
    else:
        end = parse_color(background_end, "background_end")
        mask = Image.linear_gradient("L").resize((width, height))
        card = Image.composite(Image.new("RGB", (width, height), end), Image.new("RGB", (width, height), start), mask)
    if text_color is not None:
        ink = parse_color(text_color, "text_color")
    else:
        ink = _contrasting(card.getpixel((width // 2, height // 2)))  # type: ignore[arg-type]
    margin_x, margin_y = max(1, width // 12), max(1, height // 12)
    block = layout_text(text, width - 2 * margin_x, height - 2 * margin_y, font_size)
    ImageDraw.Draw(card).multiline_text(
        (width / 2, height / 2), block.text, font=block.font, fill=ink, anchor="mm", spacing=block.spacing,
        align="center",
    )
    return store_png(ctx, card)


@node("image.resize", output="image")
def resize_image(
    ctx: NodeContext,
    image: ImageRef,
    width: Annotated[int, Range(1, 16384), "target width in pixels"],
    height: Annotated[int, Range(1, 16384), "target height in pixels"],
    mode: Annotated[
        Literal["fit", "fill", "stretch"],
        "fit: the whole image, padded with the background; fill: covers the frame, cropped; stretch: distorted",
    ] = "fit",
    background: Annotated[str, "padding colour for mode fit"] = "#000000",
) -> ImageRef:
    """Resize an image to exactly width x height: fit (letterbox), fill (crop) or stretch."""
    source = read_image(ctx, image)
    size = (width, height)
    if mode == "fit":
        padding = parse_color(background, "background")
        resized = ImageOps.pad(source, size, method=Image.Resampling.LANCZOS, color=padding)
    elif mode == "fill":
        resized = ImageOps.fit(source, size, method=Image.Resampling.LANCZOS)
    else:
        resized = source.resize(size, Image.Resampling.LANCZOS)
    return store_png(ctx, resized)


@node("image.overlay_text", output="image")
def overlay_text(
    ctx: NodeContext,
    image: ImageRef,
    text: Annotated[str, "the caption; long text wraps"],
    position: Annotated[Literal["top", "center", "bottom"], "where the caption band goes"] = "bottom",
    font_size: Annotated[int, Range(_SMALLEST_FONT, 1024), "font size in pixels (default: 1/16 of the height)"]
    | None = None,
    band_color: Annotated[str, "colour of the band behind the text"] = "#000000",
    band_opacity: Annotated[float, Range(0, 1), "0: no band, 1: solid band"] = 0.6,
    text_color: Annotated[str, "text colour; by default black or white, whichever contrasts with the band"]
    | None = None,
) -> ImageRef:
    """Write a caption on an image over a translucent band that keeps it readable."""
    source = read_image(ctx, image)
    width, height = source.size
    band_rgb = parse_color(band_color, "band_color")
    ink = parse_color(text_color, "text_color") if text_color is not None else _contrasting(band_rgb)
    size = font_size or max(_SMALLEST_FONT, height // 16)
    padding = max(2, size // 2)
    block = layout_text(text, max(1, width - 4 * padding), max(1, height - 2 * padding), size)
    band_height = min(height, block.height + 2 * padding)
    top = {"top": 0, "center": (height - band_height) // 2, "bottom": height - band_height}[position]
    layer = Image.new("RGBA", source.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle((0, top, width, top + band_height - 1), fill=(*band_rgb, round(255 * band_opacity)))
    draw.multiline_text(
        (width / 2, top + band_height / 2), block.text, font=block.font, fill=(*ink, 255), anchor="mm",
        spacing=block.spacing, align="center",
    )
    captioned = Image.alpha_composite(source.convert("RGBA"), layer)
    return store_png(ctx, captioned if source.mode == "RGBA" else captioned.convert("RGB"))
