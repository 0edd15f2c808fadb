"""Reading image artifacts into Pillow and storing Pillow images back as PNG artifacts."""

from __future__ import annotations

import io

from PIL import Image, ImageColor, UnidentifiedImageError

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError


def read_image(ctx: NodeContext, ref: ArtifactRef) -> Image.Image:
    """The artifact decoded as an RGB image, or RGBA when it has transparency."""
    try:
        with Image.open(ctx.artifacts.path(ref)) as opened:
            opened.load()
            image = opened
    except (UnidentifiedImageError, OSError) as error:
        raise NodeExecutionError(
            f"artifact sha256:{ref.digest} ({ref.media_type}) is not an image Pillow can read: {error}",
            retryable=False,
            details={"artifact": ref.digest},
        ) from None
    transparent = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if transparent else "RGB")


def store_png(ctx: NodeContext, image: Image.Image) -> ArtifactRef:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return ctx.put_bytes(buffer.getvalue(), "image/png")


def parse_color(value: str, port: str) -> tuple[int, int, int]:
    """A colour name or hex code ('navy', '#1e90ff') as RGB."""
    try:
        red, green, blue, *_ = ImageColor.getrgb(value)
    except ValueError:
        raise NodeExecutionError(
            f"{port}: unknown colour {value!r}; use a CSS colour name ('navy') or a hex code ('#1e90ff')",
            retryable=False,
            details={"port": port},
        ) from None
    return red, green, blue
