"""Unicode fonts for cards and captions.

Pillow's built-in font lacks accented and non-Latin letters ("Lumière" drew as "Lumi□re"),
so text is set in a TrueType font, found in this order:

1. the `font` a node is given (a path to a .ttf/.otf/.ttc file);
2. `$NODELOOM_FONT`;
3. Noto Sans (Latin, Greek, Cyrillic), shipped by the `fontpkg-noto-sans` wheel, a
   dependency of nodeloom: a fresh clone gets it from PyPI with `pip install`, no system
   package needed.

For other scripts (CJK, Arabic, Devanagari, ...) pass a font that has them, e.g.
`font=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from PIL import ImageFont

from nodeloom.core.errors import NodeExecutionError

FONT_ENV = "NODELOOM_FONT"
_BUNDLED_PACKAGE = "fontpkg_noto_sans"
_BUNDLED_FILE = "NotoSans[wdth,wght].ttf"
_BOLD_WEIGHT = 700


def default_font_path() -> Path:
    """`$NODELOOM_FONT`, else Noto Sans from the fontpkg-noto-sans wheel; a clear error when neither exists."""
    configured = os.environ.get(FONT_ENV)
    if configured:
        return Path(configured).expanduser()
    try:
        bundled = resources.files(_BUNDLED_PACKAGE) / "files" / _BUNDLED_FILE
    except ModuleNotFoundError:
        raise NodeExecutionError(
            "no Unicode font: install the fontpkg-noto-sans package (`pip install fontpkg-noto-sans`, a "
            f"dependency of nodeloom), set {FONT_ENV} to a .ttf file, or give the node a `font`",
            retryable=False,
        ) from None
    return Path(str(bundled))


@lru_cache(maxsize=64)
def _load(path: str, size: int, bold: bool) -> ImageFont.FreeTypeFont:
    font = ImageFont.truetype(path, size)
    if bold:
        try:  # a variable font (Noto Sans): pick the bold weight on its wght axis
            axes = font.get_variation_axes()
            font.set_variation_by_axes([float(_BOLD_WEIGHT) if str(a.get("name")) in ("Weight", "b'Weight'")
                                        else float(a.get("default") or 0) for a in axes])
        except (OSError, AttributeError, KeyError):
            pass  # a static font: regular it is
    return font


def load_font(size: int, font: str | None = None, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A TrueType font at `size` pixels: `font` if given, else the default (see module docstring)."""
    path = Path(font).expanduser() if font else default_font_path()
    try:
        return _load(str(path), max(1, size), bold)
    except OSError as error:
        raise NodeExecutionError(
            f"font {str(path)!r} cannot be loaded ({error}); give the path of a .ttf, .otf or .ttc file",
            retryable=False, details={"font": str(path)},
        ) from None
