"""Model-free image nodes drawn with Pillow: title cards, resizing, captions.

Text is set in a Unicode TrueType font (Noto Sans from the `fontpkg-noto-sans` wheel by
default, or the `font` a node is given: see `nodeloom.node_registry.image.fonts`); long
text wraps to the space available and shrinks to fit.
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from PIL import Image, ImageDraw, ImageFont, ImageOps

from nodeloom.core.context import NodeContext
from nodeloom.core.ports import Range
from nodeloom.core.spec import node
from nodeloom.core.types import ImageRef
from nodeloom.node_registry.image._io import parse_color, read_image, store_png
from nodeloom.node_registry.image.fonts import load_font

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_SMALLEST_FONT = 8
_LINE_SPACING = 0.25  # of the font size
FontPath = Annotated[str, "a .ttf/.otf/.ttc font file (default: Noto Sans, or $NODELOOM_FONT)"]


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Wrapped lines set in one font, and the size of the block they make."""

    text: str
    font: Font
    spacing: int
    width: int
    height: int


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


def layout_text(text: str, max_width: int, max_height: int, font_size: int, font: str | None = None, *,
                bold: bool = False, align: Literal["left", "center"] = "center") -> TextBlock:
    """Wrap `text` to `max_width`, shrinking the font from `font_size` until the block fits `max_height`."""
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    size = font_size
    while True:
        face = load_font(size, font, bold=bold)
        spacing = max(1, round(size * _LINE_SPACING))
        wrapped = "\n".join(_wrap(draw, text, face, max_width))
        left, top, right, bottom = draw.multiline_textbbox((0, 0), wrapped, font=face, spacing=spacing,
                                                           align=align)
        block = TextBlock(wrapped, face, spacing, int(right - left), int(bottom - top))
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
    font: FontPath | None = None,
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
    block = layout_text(text, width - 2 * margin_x, height - 2 * margin_y, font_size, font)
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
    font: FontPath | None = None,
) -> ImageRef:
    """Write a caption on an image over a translucent band that keeps it readable."""
    source = read_image(ctx, image)
    width, height = source.size
    band_rgb = parse_color(band_color, "band_color")
    ink = parse_color(text_color, "text_color") if text_color is not None else _contrasting(band_rgb)
    size = font_size or max(_SMALLEST_FONT, height // 16)
    padding = max(2, size // 2)
    block = layout_text(text, max(1, width - 4 * padding), max(1, height - 2 * padding), size, font)
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


# -- scene cards: a layout per storyboard role ------------------------------------------------

SceneRole = Literal["hook", "benefit", "cta"]


def _hsl(hue: float, saturation: float, lightness: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hls_to_rgb((hue % 360) / 360, lightness, saturation)
    return round(red * 255), round(green * 255), round(blue * 255)


def _mix(first: tuple[int, int, int], second: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(round(a + (b - a) * amount) for a, b in zip(first, second, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Palette:
    """A card's colours: from the brand colours when given, else from a hue chosen by the product name."""

    primary: tuple[int, int, int]
    secondary: tuple[int, int, int]
    accent: tuple[int, int, int]
    light: tuple[int, int, int]
    dark: tuple[int, int, int]

    @classmethod
    def of(cls, product: str, brand_colors: list[str]) -> Palette:
        if brand_colors:
            colors = [parse_color(c, "brand_colors") for c in brand_colors]
            primary = colors[0]
            secondary = colors[1] if len(colors) > 1 else _mix(primary, (255, 255, 255), 0.35)
            accent = colors[2] if len(colors) > 2 else _mix(secondary, (255, 200, 60), 0.5)
            hue, _, _ = colorsys.rgb_to_hls(*(c / 255 for c in primary))
            return cls(primary, secondary, accent, _hsl(hue * 360, 0.25, 0.94), _mix(primary, (0, 0, 0), 0.7))
        hue = int(hashlib.sha256(product.encode("utf-8")).hexdigest()[:6], 16) % 360
        secondary = _hsl(hue + 35, 0.65, 0.52)
        # the accent warms the secondary, as with brand colours (a complementary hue read as neon on video)
        return cls(_hsl(hue, 0.55, 0.32), secondary, _mix(secondary, (255, 200, 60), 0.5),
                   _hsl(hue, 0.35, 0.94), _hsl(hue, 0.45, 0.11))


def _gradient(size: tuple[int, int], start: tuple[int, int, int], end: tuple[int, int, int],
              diagonal: bool = False) -> Image.Image:
    _width, _height = size
    if diagonal:
        mask = Image.linear_gradient("L").rotate(-45, expand=True, resample=Image.Resampling.BILINEAR)
        side = mask.width
        inset = round(side * 0.15)
        mask = mask.crop((inset, inset, side - inset, side - inset)).resize(size)
    else:
        mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, end), Image.new("RGB", size, start), mask)


def _glow(card: Image.Image, seed: str, color: tuple[int, int, int], strength: float = 0.45) -> None:
    """A soft pool of light in the card's own colours, placed by the text's hash: no two scenes light alike.

    (Translucent discs in a complementary colour read as grey smudges on video; a glow in the palette does not.)"""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    width, height = card.size
    radius = round((0.55 + digest[2] / 255 * 0.35) * max(width, height))
    center = (round(digest[0] / 255 * width), round((0.15 + digest[1] / 255 * 0.7) * height))
    # distance from the centre: 0 there, 179 mid-edge, 255 in the corners; faded out by 160 so no edge shows
    falloff = Image.radial_gradient("L").resize((2 * radius, 2 * radius))
    mask = Image.new("L", card.size, 0)
    mask.paste(falloff.point(lambda v: round(max(0.0, 255 - v * 1.6) * strength)),
               (center[0] - radius, center[1] - radius))
    card.paste(Image.composite(Image.new("RGB", card.size, color), card, mask))


def _text(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, size: int, ink: tuple[int, int, int],
          font: str | None, *, bold: bool = True, align: Literal["left", "center"] = "left",
          middle: bool = False) -> int:
    """Text laid into a box (shrunk to fit), at its top or middle; returns the bottom of what was drawn."""
    left, top, right, bottom = box
    block = layout_text(text, right - left, bottom - top, size, font, bold=bold, align=align)
    if middle:
        top += max(0, (bottom - top - block.height) // 2)
    x = left if align == "left" else (left + right) / 2
    anchor = "la" if align == "left" else "ma"
    draw.multiline_text((x, top), block.text, font=block.font, fill=ink, spacing=block.spacing, align=align,
                        anchor=anchor)
    return int(draw.multiline_textbbox((x, top), block.text, font=block.font, spacing=block.spacing, align=align,
                                       anchor=anchor)[3])


def _photo(card: Image.Image, photo: Image.Image | None, box: tuple[int, int, int, int]) -> bool:
    if photo is None:
        return False
    left, top, right, bottom = box
    card.paste(ImageOps.fit(photo.convert("RGB"), (right - left, bottom - top), method=Image.Resampling.LANCZOS),
               (left, top))
    return True


def monogram(product: str) -> str:
    """Two initials of the product's name: of its first two words that start with a letter ("Loom
    Lamp" → "LL"), or a one-word CamelCase name's capitals ("TrailPack 30" → "TP")."""
    words = [word for word in product.split() if word[:1].isalpha()]
    letters = [word[0] for word in words[:2]]
    if len(letters) == 1:
        letters += [letter for letter in words[0][1:] if letter.isupper()][:1]
    return "".join(letters).upper() or "•"


def render_scene_card(scene: dict[str, Any], product: str, call_to_action: str, width: int, height: int,
                      brand_colors: list[str], photo: Image.Image | None = None,
                      font: str | None = None) -> Image.Image:
    """One storyboard scene as a picture: the layout from its role, colours from the brand, decoration from its text."""
    role = str(scene.get("role") or "benefit")
    caption = str(scene.get("caption") or "")
    index = int(scene.get("index") or 0)
    palette = Palette.of(product, brand_colors)  # one palette for the whole video: scenes differ by layout
    portrait = height > width * 1.1
    unit = min(width, height)
    margin = round(unit * 0.08)
    headline = round(unit * (0.085 if portrait else 0.1))
    mark = round(unit * 0.04)
    if role == "hook":
        card = _gradient((width, height), palette.dark, palette.primary, diagonal=True)
        _glow(card, caption, palette.secondary)
        text_box = (margin, margin * 2, width - margin, height - margin)
        if portrait:
            if _photo(card, photo, (0, round(height * 0.5), width, height)):
                text_box = (margin, margin * 2, width - margin, round(height * 0.5) - margin)
        elif _photo(card, photo, (round(width * 0.55), 0, width, height)):
            text_box = (margin, margin * 2, round(width * 0.55) - margin, height - margin)
        draw = ImageDraw.Draw(card)
        draw.text((margin, margin), product.upper(), font=load_font(mark, font, bold=True), fill=palette.accent)
        bottom = _text(draw, text_box, caption, headline, palette.light, font, middle=True)
        bar = round(unit * 0.012)
        draw.rectangle((text_box[0], bottom + bar * 2, text_box[0] + unit // 5, bottom + bar * 3), fill=palette.accent)
    elif role == "cta":
        card = _gradient((width, height), palette.secondary, palette.primary)
        _glow(card, caption, palette.light, strength=0.3)
        draw = ImageDraw.Draw(card)
        top = height // 4 if portrait else margin * 2
        top = _text(draw, (margin, top, width - margin, height // 2), product, round(headline * 1.3),
                    palette.light, font, align="center") + margin // 2
        said = {w.strip(".,:;!?").lower() for w in f"{product} {call_to_action}".split()}
        if not {w.strip(".,:;!?").lower() for w in caption.split()} <= said:  # the caption adds something
            top = _text(draw, (margin, top, width - margin, height - margin * 3), caption, round(headline * 0.6),
                        palette.light, font, bold=False, align="center")
        top += margin
        button_font = load_font(round(headline * 0.55), font, bold=True)
        label = call_to_action or "Learn more"
        text_width = draw.textlength(label, font=button_font)
        text_width = min(text_width, width - 4 * margin)
        pad = round(headline * 0.35)
        box = (round(width / 2 - text_width / 2 - pad), top, round(width / 2 + text_width / 2 + pad),
               top + round(headline * 0.55) + 2 * pad)
        if box[3] > height - margin // 2:
            shift = box[3] - (height - margin // 2)
            box = (box[0], box[1] - shift, box[2], box[3] - shift)
        draw.rounded_rectangle(box, radius=(box[3] - box[1]) // 2, fill=palette.accent)
        draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), label, font=button_font, fill=palette.dark,
                  anchor="mm")
    else:
        card = Image.new("RGB", (width, height), palette.light)
        # successive benefit scenes mirror each other (panel left/right, or top/bottom when portrait)
        flip = index % 2 == 0
        size = round(height * 0.36) if portrait else round(width * 0.38)
        if portrait:
            panel = (0, height - size, width, height) if flip else (0, 0, width, size)
            text_box = (margin, margin * 2, width - margin, panel[1] - margin) if flip else \
                (margin, panel[3] + margin, width - margin, height - margin)
            mark_at = (text_box[0], margin if flip else panel[3] + margin // 3)
        else:
            panel = (width - size, 0, width, height) if flip else (0, 0, size, height)
            text_box = (margin, margin * 2, panel[0] - margin, height - margin) if flip else \
                (panel[2] + margin, margin * 2, width - margin, height - margin)
            mark_at = (text_box[0], margin)
        panel_card = _gradient((panel[2] - panel[0], panel[3] - panel[1]), palette.primary, palette.secondary,
                               diagonal=index % 2 == 1)
        card.paste(panel_card, panel[:2])
        _photo(card, photo, panel)
        draw = ImageDraw.Draw(card)
        if photo is None:  # the brand's monogram, not a slide number: a viewer cannot see how many slides there are
            _glow(panel_card, caption, palette.light, strength=0.35)
            card.paste(panel_card, panel[:2])
            draw.text(((panel[0] + panel[2]) / 2, (panel[1] + panel[3]) / 2), monogram(product),
                      font=load_font(round(unit * 0.22), font, bold=True),
                      fill=_mix(palette.light, palette.primary, 0.25), anchor="mm")
        draw.text(mark_at, product.upper(), font=load_font(mark, font, bold=True), fill=palette.primary)
        bottom = _text(draw, text_box, caption, headline, palette.dark, font, middle=True)
        draw.rectangle((text_box[0], bottom + margin // 3, text_box[0] + unit // 8, bottom + margin // 3 + unit // 80),
                       fill=palette.secondary)
    return card


@node("image.scene_card", output="image")
def scene_card(
    ctx: NodeContext,
    scene: Annotated[dict[str, Any], "a storyboard scene: {role: hook|benefit|cta, caption, index}"],
    product: Annotated[str, "the product name (brand mark, call-to-action card)"] = "",
    call_to_action: Annotated[str, "the button text on the call-to-action card"] = "",
    width: Annotated[int, Range(64, 8192), "card width in pixels"] = 1280,
    height: Annotated[int, Range(64, 8192), "card height in pixels"] = 720,
    brand_colors: Annotated[Sequence[str], "brand colours, primary first ('#1d3557'); none: from the product name"]
    = (),
    photo: Annotated[ImageRef, "a product photo placed on the hook and benefit cards"] | None = None,
    font: FontPath | None = None,
) -> ImageRef:
    """Draw a storyboard scene as a card: the layout from its role, the colours from the brand, the caption large."""
    picture = read_image(ctx, photo) if photo is not None else None
    return store_png(ctx, render_scene_card(dict(scene), product, call_to_action, width, height,
                                            [str(c) for c in brand_colors if str(c).strip()], picture, font))
