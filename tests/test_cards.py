"""Scene cards and fonts: a layout per storyboard role, brand colours, Unicode text."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from nodeloom.core import ArtifactRef, Graph
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry.image.fonts import load_font


def card(executor: LocalExecutor, **inputs: object) -> Image.Image:
    g = Graph()
    g.output("out", g.add("image.scene_card", "it", **inputs)["image"])
    result = executor.run(g)
    assert result.ok, result.errors()
    ref = result.outputs["out"]
    assert isinstance(ref, ArtifactRef)
    return Image.open(executor.artifacts.path(ref)).convert("RGB")


def difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def glyph(letter: str) -> bytes:
    picture = Image.new("L", (60, 60))
    ImageDraw.Draw(picture).text((10, 5), letter, font=load_font(40), fill=255)
    return picture.tobytes()


def test_the_default_font_has_accented_letters() -> None:
    missing = glyph("\U000e0fff")  # an unassigned code point draws the "no glyph" box
    for letter in "èöñßÉ·":
        assert glyph(letter) != missing, letter


def test_title_card_renders_accented_text_unlike_boxes(executor: LocalExecutor) -> None:
    g = Graph()
    g.output("a", g.add("image.title_card", "a", text="Lumière · Größe · Señal", width=640, height=200)["image"])
    g.output("b", g.add("image.title_card", "b", text="Lumi\U000e0fffre · Gr\U000e0fff\U000e0fffe · Se\U000e0fffal",
                        width=640, height=200)["image"])
    outputs = executor.run(g).outputs
    a, b = (Image.open(executor.artifacts.path(outputs[k])).convert("RGB") for k in ("a", "b"))
    assert difference(a, b) > 0.5  # real letters, not the missing-glyph boxes


def test_each_role_has_its_own_layout(executor: LocalExecutor) -> None:
    common = {"product": "Loom Lamp", "call_to_action": "Order today", "width": 320, "height": 180}
    hook = card(executor, scene={"role": "hook", "caption": "Light that follows your day", "index": 1}, **common)
    benefit = card(executor, scene={"role": "benefit", "caption": "Light that follows your day", "index": 2}, **common)
    cta = card(executor, scene={"role": "cta", "caption": "Light that follows your day", "index": 3}, **common)
    assert hook.size == (320, 180)
    for a, b in ((hook, benefit), (benefit, cta), (hook, cta)):
        assert difference(a, b) > 20  # same words, different layout and colours


@pytest.mark.parametrize(("width", "height", "first", "second"), [
    (320, 180, (0, 0, 100, 180), (220, 0, 320, 180)),  # landscape: the panel left, then right
    (180, 320, (0, 0, 180, 100), (0, 220, 180, 320)),  # portrait: the panel on top, then at the bottom
])
def test_successive_benefit_cards_mirror_their_panel(
    executor: LocalExecutor, width: int, height: int, first: tuple[int, ...], second: tuple[int, ...],
) -> None:
    common = {"product": "TrailPack 30", "call_to_action": "Order today", "width": width, "height": height}
    one = card(executor, scene={"role": "benefit", "caption": "Weighs under a kilo", "index": 1}, **common)
    two = card(executor, scene={"role": "benefit", "caption": "Sheds the rain", "index": 2}, **common)

    def brightness(picture: Image.Image, box: tuple[int, ...]) -> float:
        return float(ImageStat.Stat(picture.crop(box).convert("L")).mean[0])

    # the panel (coloured gradient) is darker than the light page the caption is written on
    assert brightness(one, first) < brightness(one, second) - 20
    assert brightness(two, second) < brightness(two, first) - 20


@pytest.mark.parametrize(("product", "expected"), [
    ("Loom Lamp", "LL"), ("TrailPack 30", "TP"), ("SnapFrame", "SF"), ("Brewly", "B"), ("3D Lens Kit", "LK"),
    ("", "•"),
])
def test_the_monogram_takes_two_initials(product: str, expected: str) -> None:
    from nodeloom.node_registry.image.drawing import monogram

    assert monogram(product) == expected


def test_brand_colours_colour_the_card(executor: LocalExecutor) -> None:
    scene = {"role": "cta", "caption": "Order today", "index": 3}
    red = card(executor, scene=scene, product="X", brand_colors=["#c00000", "#ff4040"], width=200, height=120)
    blue = card(executor, scene=scene, product="X", brand_colors=["#0000c0", "#4040ff"], width=200, height=120)
    r, _, b = ImageStat.Stat(red).mean
    assert r > b
    r, _, b = ImageStat.Stat(blue).mean
    assert b > r


def test_a_product_photo_appears_on_the_hook_card(executor: LocalExecutor) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (0, 255, 0)).save(buffer, "PNG")
    photo = executor.artifacts.put_bytes(buffer.getvalue(), "image/png")
    picture = card(executor, scene={"role": "hook", "caption": "Hi", "index": 1}, product="X", photo=photo,
                   width=400, height=200)
    assert picture.getpixel((390, 100)) == (0, 255, 0)  # the right part of a landscape hook card


def test_a_font_that_is_not_a_font_is_a_clear_error(executor: LocalExecutor, tmp_path: Path) -> None:
    bogus = tmp_path / "font.ttf"
    bogus.write_text("not a font")
    g = Graph()
    g.output("out", g.add("image.title_card", "it", text="Hi", font=str(bogus))["image"])
    result = executor.run(g)
    assert not result.ok
    assert "cannot be loaded" in result.nodes["it"].error["message"]


@pytest.mark.parametrize("role", ["hook", "benefit", "cta"])
def test_portrait_cards_fit_their_text(executor: LocalExecutor, role: str) -> None:
    picture = card(executor, scene={"role": role, "caption": "A caption long enough to wrap twice or more here",
                                    "index": 2}, product="Loom Lamp", call_to_action="Order yours today",
                   width=180, height=320)
    assert picture.size == (180, 320)
