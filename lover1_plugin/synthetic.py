"""Synthetic videos for tests, demos and the toy training run (written with PyAV, no downloads).

Three generators:

- :func:`make_test_video`: moving content with the frame index written into every frame
  as a black/white barcode (read it back with :func:`read_frame_index`), so a test can
  check which frames a reader really returned.
- :func:`make_needle_video`: a long video in which a small word (the needle) is shown on
  a white card only during ``needle_span``. Sizes (360x640 source): the card text is
  about 11 px tall. The fast view shrinks frames to 112x196 (x0.31: the text becomes a
  ~3 px smudge, unreadable), a slow view keeps them at 336x588 (x0.92: ~10 px letters,
  readable). The card sits in the upper-left part of the frame, clear of the red
  timestamps drawn in the bottom-right corner.
- :func:`make_needle_dataset`: several needle videos plus multiple-choice questions,
  written to ``needle.json``.

:func:`make_audio_only_file` writes a valid media file without a video stream (for the
"no video stream" error paths).

Everything is deterministic for a seed. A 10-minute 1 fps 360p needle video takes
about a second to write.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> make_test_video(out / "clip.mp4", duration_s=1, fps=4, size=(64, 128)).name
'clip.mp4'
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import ConfigError

logger = logging.getLogger(__name__)

BARCODE_BLOCK = 8  # side of one barcode cell in pixels: survives yuv420p chroma subsampling
BARCODE_BITS = 16  # frame indices up to 65,535
NEEDLE_FONT_PX = 14  # font size of the needle word on a 360-pixel-high frame (glyphs ~11 px tall)
NEEDLE_WORDS = (
    "APPLE", "RIVER", "MOUSE", "TIGER", "CLOUD", "PIANO", "LEMON", "ROBOT",
    "CANDLE", "GARDEN", "ROCKET", "WINDOW", "BRIDGE", "PLANET", "ORANGE", "VIOLIN",
)  # fmt: skip
NEEDLE_QUESTION = "A word is shown briefly on a small white card in this video. Which word is it?"


@dataclass(frozen=True)
class NeedleVideo:
    """A written needle video: where it is, what the needle says and when it is visible."""

    path: Path
    needle_text: str
    needle_span: tuple[float, float]
    duration: float
    fps: float
    size: tuple[int, int]
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the white card, in source pixels


def _rate(fps: float) -> Fraction:
    """Frame rate as the exact fraction cameras store: NTSC rates become ``n * 1000 / 1001``.

    >>> _rate(29.97), _rate(23.976), _rate(1.0), _rate(12.5)
    (Fraction(30000, 1001), Fraction(24000, 1001), Fraction(1, 1), Fraction(25, 2))
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    ntsc = round(fps * 1.001)
    if fps != int(fps) and ntsc > 1 and abs(fps - ntsc * 1000 / 1001) < 0.005:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(v) for v in size)
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise ConfigError(f"size must be (height, width) with even sides >= 2 (yuv420p), got {size!r}")
    return height, width


def _write_frames(
    path: Path,
    frames: Iterator[np.ndarray],
    *,
    rate: Fraction,
    size: tuple[int, int],
    gop: int | None = None,
    bframes: int = 0,
) -> Path:
    """Encode RGB uint8 ``(H, W, 3)`` frames to ``path`` (H.264 when available, else MPEG-4 Part 2).

    ``gop`` is the keyframe interval in frames (encoder default when None); ``bframes``
    the most consecutive B-frames (frame reordering, as in camera and web videos).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            # ultrafast keeps generation quick; crf 12 keeps barcodes and small text crisp;
            # one thread makes the bytes deterministic.
            stream.options = {"preset": "ultrafast", "crf": "12", "threads": "1"}
        else:
            stream.options = {"qscale": "2"}
        if gop is not None:
            stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = bframes
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _background(height: int, width: int, seed: int) -> Callable[[int], np.ndarray]:
    """A smooth random texture, wider than the frame, that scrolls one step per frame."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 216, size=(max(2, height // 32 + 2), max(2, (2 * width) // 32 + 2), 3), dtype=np.uint8)
    tile = np.asarray(Image.fromarray(coarse).resize((2 * width, height), Image.BILINEAR))

    def frame_at(index: int) -> np.ndarray:
        offset = (index * max(1, width // 64)) % width
        return np.ascontiguousarray(tile[:, offset : offset + width])

    return frame_at


def _draw_barcode(frame: np.ndarray, index: int) -> None:
    """Write ``index`` in binary into the top-left corner (white = 1), as many bits as fit."""
    bits = min(BARCODE_BITS, frame.shape[1] // BARCODE_BLOCK)
    rows = min(BARCODE_BLOCK, frame.shape[0])
    for bit in range(bits):
        value = 255 if (index >> bit) & 1 else 0
        frame[:rows, bit * BARCODE_BLOCK : (bit + 1) * BARCODE_BLOCK] = value


def read_frame_index(frame: np.ndarray) -> int:
    """Read back the barcode :func:`make_test_video` writes (frame ``(H, W, 3)`` at full size).

    >>> frame = np.zeros((16, 64, 3), np.uint8)
    >>> _draw_barcode(frame, 37)
    >>> read_frame_index(frame)
    37
    """
    bits = min(BARCODE_BITS, frame.shape[1] // BARCODE_BLOCK)
    rows = min(BARCODE_BLOCK, frame.shape[0])
    index = 0
    for bit in range(bits):
        cell = frame[1 : max(2, rows - 1), bit * BARCODE_BLOCK + 2 : (bit + 1) * BARCODE_BLOCK - 2]
        if float(cell.mean()) > 127.5:
            index |= 1 << bit
    return index


def make_test_video(
    path: str | Path,
    *,
    duration_s: float,
    fps: float,
    size: tuple[int, int] = (96, 160),
    seed: int = 0,
    gop: int | None = None,
    bframes: int = 0,
) -> Path:
    """Write a ``duration_s`` second clip of moving content with a frame-index barcode.

    ``size`` is ``(height, width)``, both even. The clip has ``round(duration_s * fps)``
    frames (at least 1); frame ``i`` carries ``i`` in its top-left barcode. ``gop`` and
    ``bframes`` set the keyframe interval and B-frames (to exercise seeking and reordering).
    """
    height, width = _check_size(size)
    rate = _rate(fps)
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"duration_s must be a positive number, got {duration_s!r}")
    num_frames = max(1, round(duration_s * float(rate)))
    background = _background(height, width, seed)
    side = max(2, min(height, width) // 4)

    def frames() -> Iterator[np.ndarray]:
        for index in range(num_frames):
            frame = background(index)
            y = (index * 3) % max(1, height - side)
            x = (index * 5) % max(1, width - side)
            frame[y : y + side, x : x + side] = (255, 32, 32)
            _draw_barcode(frame, index)
            yield frame

    return _write_frames(Path(path), frames(), rate=rate, size=(height, width), gop=gop, bframes=bframes)


def make_audio_only_file(path: str | Path) -> Path:
    """Half a second of silence as AAC: a valid media file without a video stream."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for k in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _needle_font(size: int) -> ImageFont.FreeTypeFont:
    from .timestamps import default_font_path  # the same DejaVu Sans the timestamps use

    return ImageFont.truetype(default_font_path(), size)


def _needle_card(text: str, height: int, width: int, rng: random.Random) -> tuple[np.ndarray, tuple[int, int]]:
    """Render the needle as black text on a white card; place it in the upper-left region."""
    font = _needle_font(max(6, round(NEEDLE_FONT_PX * height / 360)))
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, height // 90)
    card = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), (255, 255, 255))
    ImageDraw.Draw(card).text((pad - left, pad - top), text, font=font, fill=(0, 0, 0))
    pixels = np.asarray(card)
    max_x = max(0, width // 2 - pixels.shape[1])
    min_y = min(BARCODE_BLOCK * 2, max(0, height - pixels.shape[0]))
    max_y = max(min_y, height // 2 - pixels.shape[0])
    return pixels, (rng.randint(0, max_x), rng.randint(min_y, max_y))


def make_needle_video(
    path: str | Path,
    *,
    duration_s: float = 600,
    fps: float = 1.0,
    size: tuple[int, int] = (360, 640),
    needle_span: tuple[float, float] = (300.0, 315.0),
    needle_text: str = "B",
    seed: int = 0,
) -> NeedleVideo:
    """Write a long video where ``needle_text`` is visible only for ``t0 <= t < t1`` seconds.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> video = make_needle_video(out / "n.mp4", duration_s=20, needle_span=(5, 9), needle_text="RIVER")
    >>> video.needle_span, video.duration
    ((5.0, 9.0), 20.0)
    """
    height, width = _check_size(size)
    rate = _rate(fps)
    t0, t1 = float(needle_span[0]), float(needle_span[1])
    if not (0 <= t0 < t1 <= duration_s):
        raise ConfigError(f"needle_span must satisfy 0 <= t0 < t1 <= duration_s, got {needle_span!r}")
    if not needle_text.strip():
        raise ConfigError("needle_text must not be empty")
    num_frames = max(1, round(duration_s * float(rate)))
    background = _background(height, width, seed)
    card, (x, y) = _needle_card(needle_text, height, width, random.Random(seed))
    card_h, card_w = card.shape[:2]

    def frames() -> Iterator[np.ndarray]:
        for index in range(num_frames):
            frame = background(index)
            if t0 <= index / float(rate) < t1:
                frame[y : y + card_h, x : x + card_w] = card
            yield frame

    written = _write_frames(Path(path), frames(), rate=rate, size=(height, width))
    return NeedleVideo(
        path=written,
        needle_text=needle_text,
        needle_span=(t0, t1),
        duration=float(duration_s),
        fps=float(rate),
        size=(height, width),
        box=(x, y, x + card_w, y + card_h),
    )


def make_needle_dataset(
    out_dir: str | Path, *, num_questions: int = 4, duration_s: float = 600, fps: float = 1.0, seed: int = 0
) -> list[dict]:
    """Write ``num_questions`` needle videos and ``out_dir/needle.json``; return the records.

    Each record: ``{"id", "video" (file name relative to out_dir), "question", "options"
    (["A. APPLE", ...]), "answer" (letter), "needle_span": [t0, t1], "duration"}``. Spans
    last 8-16 s (at most a quarter of the video) and avoid the first and last 5%.
    """
    if not isinstance(num_questions, int) or num_questions < 1:
        raise ConfigError(f"num_questions must be a positive integer, got {num_questions!r}")
    if duration_s < 8:
        raise ConfigError(f"duration_s must be at least 8 s for a needle dataset, got {duration_s!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = []
    for index in range(num_questions):
        words = rng.sample(NEEDLE_WORDS, 4)
        answer = rng.randrange(4)
        width = min(rng.randint(8, 16), max(2, int(duration_s // 4)))
        margin = duration_s * 0.05
        t0 = rng.randint(int(math.ceil(margin)), max(int(math.ceil(margin)), int(duration_s - margin - width)))
        span = (float(t0), float(min(t0 + width, duration_s)))
        name = f"needle_{index:03d}.mp4"
        make_needle_video(
            out_dir / name,
            duration_s=duration_s,
            fps=fps,
            needle_span=span,
            needle_text=words[answer],
            seed=seed * 1000 + index,
        )
        records.append(
            {
                "id": f"needle-{seed}-{index:03d}",
                "video": name,
                "question": NEEDLE_QUESTION,
                "options": [f"{chr(65 + k)}. {word}" for k, word in enumerate(words)],
                "answer": chr(65 + answer),
                "needle_span": list(span),
                "duration": float(duration_s),
            }
        )
    (out_dir / "needle.json").write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %d needle videos to %s", len(records), out_dir)
    return records


__all__ = [
    "NEEDLE_WORDS",
    "NeedleVideo",
    "make_audio_only_file",
    "make_needle_dataset",
    "make_needle_video",
    "make_test_video",
    "read_frame_index",
]
