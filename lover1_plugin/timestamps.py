"""Red timestamps drawn on frames before resizing (SPEC 1), fast and pixel-identical to PIL.

The reference drew, on every full-resolution frame:

- text ``str(int(frame_id / fps))``, colour red ``(255, 0, 0)``;
- font size ``int(min(w, h) / 8)`` (we use at least 1 so frames under 8 px do not fail);
- ``tw, th`` = the width and height of ``draw.textbbox((0, 0), text, font)`` plus 10 px each;
- origin ``x = w - tw``, ``y = h - th - th / 3`` (a float: PIL keeps the fraction).

The checkpoints saw ``Arial.Unicode.ttf``, which may not be redistributed. Pass its path
(``ViewConfig.font_path`` / ``font_path=``) for exact parity; the default is the DejaVu
Sans that matplotlib ships. Each ``(font, size)`` is loaded once.

Speed: instead of wrapping the whole frame in a PIL image, we let PIL draw on a small
crop around the text box and copy it back. The crop's origin is an integer offset not
past the text origin, so PIL places and rasterises the glyphs exactly as on the full
frame (the tests compare both ways pixel by pixel).

>>> frames = np.zeros((2, 90, 160, 3), np.uint8)
>>> out = draw_timestamps(frames, [0, 60], video_fps=30.0)
>>> out.shape, bool(out[1, ..., 0].any()), bool(out[..., 1].any())
((2, 90, 160, 3), True, False)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import ConfigError

TIMESTAMP_COLOR = (255, 0, 0)  # the reference's fill="red"
TEXT_PAD = 10  # pixels added to the text box's width and height
CROP_MARGIN = 2  # extra pixels around the text box when drawing on a crop (antialiasing spill)
_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))  # textbbox needs a draw object, not an image


@functools.lru_cache(maxsize=1)
def default_font_path() -> str:
    """Path of DejaVu Sans as shipped by matplotlib (a package dependency)."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ConfigError("matplotlib is not installed: install it or pass font_path=...ttf") from exc
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not path.is_file():  # pragma: no cover - every matplotlib wheel ships it
        raise ConfigError(f"DejaVu Sans not found at {path}; pass font_path=...ttf")
    return str(path)


def resolve_font_path(font_path: str | os.PathLike | None) -> str:
    """Return ``font_path`` (checked to exist) or the default font.

    >>> resolve_font_path(None).endswith("DejaVuSans.ttf")
    True
    """
    if font_path is None:
        return default_font_path()
    path = Path(font_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"timestamp font not found: {str(font_path)!r} (set font_path to a .ttf file)")
    return str(path)


@functools.lru_cache(maxsize=64)
def load_font(font_path: str, size: int) -> ImageFont.FreeTypeFont:
    """Load a TrueType font once per ``(path, size)``."""
    try:
        return ImageFont.truetype(font_path, size=size)
    except OSError as exc:
        raise ConfigError(f"cannot load timestamp font {font_path!r}: {exc}") from exc


def timestamp_text(frame_id: int, video_fps: float) -> str:
    """``str(int(frame_id / fps))``: whole seconds, truncated.

    >>> timestamp_text(899, 29.97), timestamp_text(900, 30.0)
    ('29', '30')
    """
    return str(int(frame_id / video_fps))


def font_size_for(height: int, width: int) -> int:
    """``int(min(w, h) / 8)``, at least 1."""
    return max(1, int(min(width, height) / 8))


@functools.lru_cache(maxsize=4096)
def _layout(font_path: str, size: int, text: str, height: int, width: int) -> tuple[float, float, tuple[int, ...]]:
    """Text origin ``(x, y)`` and the crop ``(x0, y0, x1, y1)`` that contains everything drawn."""
    font = load_font(font_path, size)
    left, top, right, bottom = _MEASURE.textbbox((0, 0), text, font=font)
    tw, th = right - left + TEXT_PAD, bottom - top + TEXT_PAD
    x, y = width - tw, height - th - th / 3
    box = _MEASURE.textbbox((x, y), text, font=font)
    # Never start the crop past int(x) / int(y): PIL truncates the origin and keeps its
    # fraction, and a crop offset that keeps both unchanged keeps the glyph raster unchanged.
    x0 = max(0, min(int(x), math.floor(box[0])) - CROP_MARGIN)
    y0 = max(0, min(int(y), math.floor(box[1])) - CROP_MARGIN)
    x1 = min(width, math.ceil(box[2]) + CROP_MARGIN)
    y1 = min(height, math.ceil(box[3]) + CROP_MARGIN)
    return x, y, (x0, y0, max(x0, x1), max(y0, y1))


def draw_timestamp(frame: np.ndarray, text: str, font_path: str) -> None:
    """Draw ``text`` on one ``(H, W, 3)`` uint8 frame in place, as the reference placed it."""
    height, width = frame.shape[:2]
    size = font_size_for(height, width)
    x, y, (x0, y0, x1, y1) = _layout(font_path, size, text, height, width)
    if x1 <= x0 or y1 <= y0:
        return  # the text lies entirely outside a degenerate frame
    crop = Image.fromarray(np.ascontiguousarray(frame[y0:y1, x0:x1]))
    ImageDraw.Draw(crop).text((x - x0, y - y0), text, font=load_font(font_path, size), fill=TIMESTAMP_COLOR)
    frame[y0:y1, x0:x1] = np.asarray(crop)


def draw_timestamps(
    frames_uint8_THWC: np.ndarray,
    frame_ids: Sequence[int],
    video_fps: float,
    font_path: str | os.PathLike | None = None,
    *,
    inplace: bool = False,
) -> np.ndarray:
    """Draw each frame's timestamp (``int(frame_id / video_fps)`` seconds) on ``(T, H, W, 3)`` uint8 frames.

    Returns the frames (a copy unless ``inplace``). Raises ``ValueError`` on a shape or
    count mismatch or a non-positive fps, and :class:`ConfigError` when the font is missing.
    """
    frames = np.asarray(frames_uint8_THWC)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frame_ids) != frames.shape[0]:
        raise ValueError(f"{len(frame_ids)} frame ids for {frames.shape[0]} frames")
    if not (math.isfinite(video_fps) and video_fps > 0):
        raise ValueError(f"video_fps must be a positive number, got {video_fps!r}")
    path = resolve_font_path(font_path)
    out = frames if inplace else frames.copy()
    if inplace and not out.flags.writeable:
        raise ValueError("frames are read-only; pass inplace=False")
    for frame, frame_id in zip(out, frame_ids, strict=True):
        draw_timestamp(frame, timestamp_text(int(frame_id), video_fps), path)
    return out


__all__ = [
    "TIMESTAMP_COLOR",
    "default_font_path",
    "draw_timestamp",
    "draw_timestamps",
    "font_size_for",
    "load_font",
    "resolve_font_path",
    "timestamp_text",
]
