"""Video reading, view planning (SPEC 1) and rendering: the only module that decodes video.

Planning is pure: :func:`plan_fast_view`, :func:`plan_slow_view` and
:func:`plan_whole_video_view` turn a :class:`VideoInfo` into a :class:`ViewPlan` (frame
ids, sizes, rates) without decoding anything. :func:`render_view` then decodes only the
planned frames, each once, in batches of 16 (at most 128 MiB), draws the red timestamps
at full resolution and resizes each batch bicubically with antialiasing on uint8, as
qwen-vl-utils does. When the reader can cut the frames into groups that decode
independently (PyAV: at keyframes), one thread per CPU decodes, stamps and resizes its
own group with a single-threaded decoder (on 2 cores a 768-frame 720p fast view took
about 20% less time than one decoder with frame threads); otherwise a worker thread
decodes the next batch while the current one is stamped and resized. Either way at most
two batches' worth of full-resolution frames (32) are in memory.
:class:`ViewRenderer` keeps one open reader per video and caches rendered views per plan.

Worked example (SPEC 1: a 40 s 720x1280 video at 30 fps, ``factor = 2``):

>>> from lover1_plugin.config import ViewConfig
>>> info = VideoInfo("clip.mp4", num_frames=1200, fps=30.0, width=1280, height=720)
>>> fast = plan_fast_view(info, ViewConfig())
>>> fast.num_frames, (fast.height, fast.width), fast.visual_tokens, fast.label
(80, (168, 280), 2400, (0, 40))
>>> zoom = plan_slow_view(info, 10, 25, ViewConfig())
>>> zoom.frame_ids[0], zoom.frame_ids[-1], zoom.num_frames, (zoom.height, zoom.width), zoom.visual_tokens
(300, 750, 30, (476, 840), 7650)

Edge cases, decided here (the SPEC formulas would fail on them):

- Very short spans: when ``int(2 * D)`` (fast) or ``int(2 * (e - s))`` (slow) is 0 or 1,
  the view takes ``min(available frames, 2)`` frames instead (capped by the view's frame
  limit); a 1-frame video gives a 1-frame view. A span of a single frame (``N = 1`` or
  ``a == b``) counts as one frame interval in the sample-fps formula, never a division by 0.
- Every sample fps is floored at 0.01 (SPEC 3b floors the whole-video view there; the
  floor only matters for spans of days, and keeps ``2 / sample_fps`` finite).
- Frame rate: decord's ``get_avg_fps()`` when it is finite and in ``(0, 1000]``; otherwise
  ``N / (end time of the last frame)`` from the container's timestamps, with a warning;
  when that is unusable too, :class:`VideoDecodeError` ("invalid frame rate").
- Aspect ratios over 200 raise :class:`ViewError`; sides are at least 28 px after resizing.
- A slow interval with ``e < s``, non-finite ends or a start past the last frame raises
  :class:`ViewError`.
- Every reader failure (missing file, directory, empty or random bytes, truncated file,
  audio-only file, zero frames, undecodable frames) raises :class:`VideoDecodeError` with
  a human cause, e.g. ``cannot read 'x.mp4' (no video stream (audio streams only))``.
- decord keeps decoding in the background after ``get_batch`` until the video ends
  (GiBs for a long video); every decord reader is parked (``seek(0)``) after each batch.

Readers: ``reader="decord"`` (the reference's reader; :func:`open_video` and
:func:`probe_video` use it) or ``reader="pyav"`` (the default of :func:`render_view` and
:class:`ViewRenderer`, because it is faster and falls back to decord per video),
which decodes the stream once in order, keeps the planned frames and seeks over groups
of pictures holding none (a 10-minute 720p fast view renders in 0.7x the time decord
takes to decode its frames alone: ``python -m bench.fast_view``). It numbers frames as
decord does, converts colours with decord's matrix and range, checks the first frame
against decord's at open, and hands any video or frame it cannot match to decord; its
pixels equal decord's on every tested stream (H.264 8/10-bit, 4:4:4, BT.709/BT.2020/
full-range tags, HEVC, VP9, MPEG-4, MJPEG: tests/test_video.py).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .config import PATCH, ViewConfig
from .errors import VideoDecodeError, ViewError
from .timestamps import draw_timestamps, resolve_font_path
from .views import View, ViewPlan

logger = logging.getLogger(__name__)

MAX_ASPECT_RATIO = 200  # Qwen's smart_resize limit
MAX_FPS = 1000.0  # above this an average rate is treated as broken metadata
MIN_SAMPLE_FPS = 0.01  # floor of every view's sample fps (SPEC 3b)
BUDGET_SLACK = 1.05  # max_pixels = int(budget * 1.05), as the reference
BATCH_FRAMES = 16  # full-resolution frames decoded, stamped and resized together
BATCH_BYTES = 128 * 1024 * 1024  # ...unless that is more than this many bytes (4K: 5 frames, 8K: 1)
Reader = Literal["decord", "pyav"]
RENDER_READER: Reader = "pyav"  # views render through PyAV (decord-identical pixels, checked per video)
T = TypeVar("T")
READERS: tuple[str, ...] = ("decord", "pyav")


# --------------------------------------------------------------------------- info


@dataclass(frozen=True)
class VideoInfo:
    """What planning needs to know about a video: ``N`` frames at ``fps``, ``width x height``.

    >>> VideoInfo("a.mp4", num_frames=1800, fps=30.0, width=640, height=360).duration
    60.0
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {self.num_frames!r}")
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive finite number, got {self.fps!r}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")

    @property
    def duration(self) -> float:
        """``D = N / fps`` seconds."""
        return self.num_frames / self.fps


# --------------------------------------------------------------------------- planning


def _floor_by(value: float, factor: int) -> int:
    return math.floor(value / factor) * factor


def _ceil_by(value: float, factor: int) -> int:
    return math.ceil(value / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = PATCH,
    min_pixels: int = 4 * 28 * 28,  # qwen-vl-utils' image defaults
    max_pixels: int = 16384 * 28 * 28,
) -> tuple[int, int]:
    """Qwen's smart_resize: sides divisible by ``factor``, area within the pixel range.

    Each side is at least ``factor`` after the floor step; aspect ratios over 200 raise
    :class:`ViewError`.

    >>> smart_resize(360, 640, min_pixels=32 * 28 * 28, max_pixels=int(32 * 28 * 28 * 1.05))
    (112, 196)
    >>> smart_resize(240, 426, min_pixels=256 * 28 * 28, max_pixels=int(256 * 28 * 28 * 1.05))
    (364, 616)
    """
    if height < 1 or width < 1:
        raise ViewError(f"frame size must be positive, got {width}x{height}")
    if max_pixels < min_pixels:
        raise ViewError(f"max_pixels ({max_pixels}) must be >= min_pixels ({min_pixels})")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise ViewError(
            f"aspect ratio {ratio:.1f} of a {width}x{height} video is over {MAX_ASPECT_RATIO}; "
            "Qwen2.5-VL cannot take such frames (crop or pad the video)"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, _floor_by(height / beta, factor))
        w_bar = max(factor, _floor_by(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    return h_bar, w_bar


def view_size(height: int, width: int, budget: int) -> tuple[int, int]:
    """Frame size for a per-frame pixel ``budget``: ``min_pixels=budget, max_pixels=max(budget, int(budget*1.05))``."""
    return smart_resize(height, width, PATCH, min_pixels=budget, max_pixels=max(budget, int(budget * BUDGET_SLACK)))


def _view_size_of(info: VideoInfo, budget: int) -> tuple[int, int]:
    """:func:`view_size` for a video, with the video's path in any error."""
    try:
        return view_size(info.height, info.width, budget)
    except ViewError as exc:
        raise ViewError(f"cannot plan a view of {info.path!r}: {exc}") from None


def linspace_ids(start: int, end: int, num: int) -> tuple[int, ...]:
    """``torch.linspace(start, end, num).round().long()``: float32, round half to even.

    >>> linspace_ids(0, 9, 4)
    (0, 3, 6, 9)
    """
    return tuple(torch.linspace(start, end, num, dtype=torch.float32).round().long().tolist())


def _sample_fps(num: int, first: int, last: int, fps: float) -> float:
    """``round(n / (last - first) * fps, 2)``, a one-frame span counting as one interval, floored at 0.01."""
    return max(round(num / max(last - first, 1) * fps, 2), MIN_SAMPLE_FPS)


def _num_frames(by_duration: int, available: int, limit: int) -> int:
    """SPEC's ``min(int(2 * seconds), limit)``, with at least ``min(available, 2)`` frames."""
    return min(max(by_duration, min(available, 2)), limit)


def plan_fast_view(info: VideoInfo, view_cfg: ViewConfig | None = None) -> ViewPlan:
    """The overview: up to ``num_fast`` frames spread over the whole video (SPEC 1).

    >>> info = VideoInfo("h.mp4", num_frames=108000, fps=30.0, width=640, height=360)
    >>> plan = plan_fast_view(info)
    >>> plan.num_frames, (plan.height, plan.width), plan.visual_tokens, plan.sample_fps
    (768, (112, 196), 10752, 0.21)
    """
    cfg = view_cfg or ViewConfig()
    duration, last = info.duration, info.num_frames - 1
    num = _num_frames(int(duration * 2), info.num_frames, cfg.num_fast)
    height, width = _view_size_of(info, cfg.fast_budget(duration))
    return ViewPlan(
        source=info.path,
        kind="fast",
        frame_ids=linspace_ids(0, last, num),
        sample_fps=_sample_fps(num, 0, last, info.fps),
        height=height,
        width=width,
        label=(0, int(duration)),
        video_fps=info.fps,
    )


def plan_slow_view(
    info: VideoInfo, start: float, end: float, view_cfg: ViewConfig | None = None, *, num_frames: int | None = None
) -> ViewPlan:
    """A zoom-in clip of ``[start, end]`` seconds (SPEC 1); ``num_frames`` replaces ``num_slow``.

    >>> info = VideoInfo("h.mp4", num_frames=108000, fps=30.0, width=640, height=360)
    >>> plan = plan_slow_view(info, 100, 130)
    >>> plan.num_frames, (plan.height, plan.width), plan.visual_tokens, plan.label
    (32, (336, 588), 4032, (100, 130))
    """
    cfg = view_cfg or ViewConfig()
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ViewError(f"interval ends must be finite, got [{start}, {end}]")
    if end < start:
        raise ViewError(f"interval [{start}, {end}] ends before it starts")
    limit = cfg.num_slow if num_frames is None else num_frames
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ViewError(f"num_frames must be a positive integer, got {num_frames!r}")
    first = max(0, int(start * info.fps))
    last = min(info.num_frames - 1, int(end * info.fps))
    if first > last:
        raise ViewError(
            f"interval [{start}, {end}] starts after the video ends ({info.duration:.2f} s, {info.num_frames} frames)"
        )
    num = _num_frames(int((end - start) * 2), last - first + 1, limit)
    height, width = _view_size_of(info, cfg.slow_budget(info.duration))
    return ViewPlan(
        source=info.path,
        kind="slow",
        frame_ids=linspace_ids(first, last, num),
        sample_fps=_sample_fps(num, first, last, info.fps),
        height=height,
        width=width,
        label=(int(start), int(end)),
        video_fps=info.fps,
    )


def plan_whole_video_view(info: VideoInfo, view_cfg: ViewConfig | None = None) -> ViewPlan:
    """The ``[0, int(D)]`` slow view of the forced answer and of single-pass mode (SPEC 3, 3b).

    >>> info = VideoInfo("h.mp4", num_frames=108000, fps=30.0, width=640, height=360)
    >>> plan = plan_whole_video_view(info)
    >>> plan.label, plan.num_frames, plan.frame_ids[-1], plan.sample_fps
    ((0, 3600), 32, 107999, 0.01)
    """
    return plan_slow_view(info, 0, int(info.duration), view_cfg)


# --------------------------------------------------------------------------- reading


def _decord() -> Any:
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def _precheck(path: str) -> None:
    """Causes decord reports only as 'Error reading': missing file, directory, empty file."""
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file")


def diagnose(path: str) -> str:
    """A human reason why ``path`` cannot be decoded, found with PyAV (used after decord fails)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no"]
                return f"no video stream ({'/'.join(kinds)} streams only)"
            stream = container.streams.video[0]
            packets = sum(1 for packet in container.demux(stream) if packet.size)
            if packets == 0:
                return "zero frames"
            if stream.frames and packets < stream.frames:
                return f"truncated: {packets} of its {stream.frames} frames are present"
            container.seek(0)
            if next(container.decode(stream), None) is not None:
                codec = stream.codec_context.codec.long_name
                return f"decord cannot decode its video ({codec}); re-encode it, e.g. to H.264"
            return "corrupt or truncated video data"
    except av.error.InvalidDataError:
        return "not a video file, or its header is corrupt or truncated"
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return f"corrupt or truncated file ({exc})"


def _decode_error(path: str, exc: BaseException) -> VideoDecodeError:
    cause = diagnose(path)
    logger.debug("decord failed on %s: %s", path, exc)
    return VideoDecodeError(path, cause)


def _checked_fps(path: str, fps: float, num_frames: int, last_frame_end: float | None) -> float:
    """The average fps, or ``N / last frame end`` when the stored rate is 0, NaN or over 1000."""
    if math.isfinite(fps) and 0 < fps <= MAX_FPS:
        return float(fps)
    if last_frame_end is not None and math.isfinite(last_frame_end) and last_frame_end > 0:
        derived = num_frames / last_frame_end
        if 0 < derived <= MAX_FPS:
            logger.warning("%s reports %r fps; using %.4f fps from its timestamps", path, fps, derived)
            return derived
    raise VideoDecodeError(path, f"invalid frame rate {fps!r} fps and no usable frame timestamps")


def _info_from_reader(path: str, reader: Any) -> VideoInfo:
    """Build :class:`VideoInfo` from an open decord ``VideoReader`` (or anything shaped like one)."""
    num_frames = len(reader)
    if num_frames < 1:
        raise VideoDecodeError(path, "zero frames")
    fps = float(reader.get_avg_fps())
    last_end = None
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        try:
            last_end = float(reader.get_frame_timestamp([num_frames - 1])[0][1])
        except (RuntimeError, IndexError, ValueError, AssertionError, _decord().DECORDError) as exc:
            logger.debug("no frame timestamps for %s: %s", path, exc)
    fps = _checked_fps(path, fps, num_frames, last_end)
    height, width = tuple(reader.get_batch([0]).shape)[1:3]
    return VideoInfo(path, num_frames=num_frames, fps=fps, width=int(width), height=int(height))


class VideoSource:
    """An open video: ``info``, ``get_frames(ids)`` and ``iter_batches(ids, size)``; close it when done."""

    info: VideoInfo

    def get_frames(self, frame_ids: Sequence[int]) -> np.ndarray:
        """Frames ``frame_ids`` (any order, repeats allowed) as uint8 ``(T, H, W, 3)``."""
        unique = sorted(set(int(i) for i in frame_ids))
        self._check_ids(unique)
        parts, order = [], {}
        for ids, frames in self.iter_batches(unique, len(unique) or 1):
            order.update({frame_id: len(order) + k for k, frame_id in enumerate(ids)})
            parts.append(frames)
        if not parts:
            return np.empty((0, self.info.height, self.info.width, 3), np.uint8)
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return stacked[[order[int(i)] for i in frame_ids]]

    def iter_batches(self, frame_ids: Sequence[int], batch_frames: int) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield ``(ids, frames)`` for sorted, unique ``frame_ids``, ``batch_frames`` at a time."""
        raise NotImplementedError

    def independent_groups(self, frame_ids: Sequence[int], parts: int) -> list[list[int]]:
        """Sorted ``frame_ids`` cut into at most ``parts`` groups that can be decoded at the
        same time, each in its own thread with ``iter_batches(group, size, threads=1)``,
        without decoding any frame twice. A reader that cannot do that returns one group."""
        return [list(frame_ids)]

    def close(self) -> None:
        """Release the decoder."""

    def _check_ids(self, frame_ids: Sequence[int]) -> None:
        bad = [i for i in frame_ids if not 0 <= i < self.info.num_frames]
        if bad:
            raise ViewError(f"frame ids {bad[:5]} out of range for {self.info.path!r} ({self.info.num_frames} frames)")

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (native libraries' own error lines) while the block runs."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class DecordSource(VideoSource):
    """decord ``VideoReader(path, ctx=cpu(0), num_threads=...)``: the reference's reader."""

    def __init__(self, path: str | os.PathLike, *, num_threads: int = 0) -> None:
        self.path = str(path)
        _precheck(self.path)
        decord = _decord()
        try:
            with _quiet_stderr():  # FFmpeg inside decord prints its own "ERROR opening" lines on fd 2
                self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=num_threads)
            self._lock = threading.Lock()  # one VideoReader must not decode in two threads
            self.info = _info_from_reader(self.path, self._reader)
            self._park()
        except VideoDecodeError:
            raise
        except (RuntimeError, AssertionError, IndexError, ValueError, decord.DECORDError) as exc:
            raise _decode_error(self.path, exc) from None

    def frame_times(self) -> np.ndarray:
        """``(N, 2)`` start/end seconds of every frame, in decord's frame order."""
        return np.asarray(self._reader.get_frame_timestamp(list(range(self.info.num_frames))))

    def _park(self) -> None:
        """Stop decord's background decoding.

        After ``get_batch`` decord keeps decoding the following frames into memory until
        the video ends (GiBs for a long video; dmlc/decord#157, #197); seeking to frame 0
        stops it. Costs ~7% more decoding on a fast view; keeps memory bounded.
        """
        self._reader.seek(0)

    def _decode(self, frame_ids: list[int]) -> np.ndarray:
        decord = _decord()
        if self._reader is None:
            raise ValueError(f"the reader of {self.path!r} is closed")
        try:
            with self._lock:
                frames = self._reader.get_batch(frame_ids).asnumpy()
                self._park()
            return frames
        except (RuntimeError, AssertionError, IndexError, ValueError, decord.DECORDError) as exc:
            logger.debug("decord get_batch failed on %s: %s", self.path, exc)
            cause = f"frames {frame_ids[0]}..{frame_ids[-1]} cannot be decoded: corrupt or truncated data"
            raise VideoDecodeError(self.path, cause) from None

    def iter_batches(self, frame_ids: Sequence[int], batch_frames: int) -> Iterator[tuple[list[int], np.ndarray]]:
        ids = [int(i) for i in frame_ids]
        self._check_ids(ids)
        for k in range(0, len(ids), max(1, batch_frames)):
            chunk = ids[k : k + max(1, batch_frames)]
            yield chunk, self._decode(chunk)

    def close(self) -> None:
        self._reader = None


# AVColorSpace values whose own swscale coefficients decord (FFmpeg 4.1's scale filter, matrix
# "auto") uses; every other tag gets BT.601. 6 (SMPTE 170M) names BT.601 explicitly: PyAV skips
# SWS_CS_DEFAULT (5) and would keep whatever matrix its cached converter used last.
_OWN_MATRIX = (1, 4, 7, 9, 10)  # BT.709, FCC, SMPTE 240M, BT.2020 (ncl, cl)
_BT601 = 6


def _to_rgb_like_decord(frame: Any) -> np.ndarray:
    """RGB24 pixels of a PyAV frame, converted with the matrix and range decord uses."""
    matrix = frame.colorspace if frame.colorspace in _OWN_MATRIX else _BT601
    other = 1 if matrix == _BT601 else _BT601  # src != dst makes PyAV set the matrix every time
    return frame.to_ndarray(
        format="rgb24",
        src_colorspace=matrix,
        dst_colorspace=other,
        src_color_range=frame.color_range,
        dst_color_range=frame.color_range,
    )


class PyAVSource(VideoSource):
    """Decodes the stream once, in order, keeping the requested frames; several threads
    can each decode one of :meth:`independent_groups` with their own container.

    Frame count and rate come from decord (the reference); frames are numbered by their
    presentation timestamps, as decord numbers them, and checked against decord's
    timestamps. Colours are converted with decord's matrix and range, and the first frame
    is compared with decord's at open: any difference sends the whole video to decord.
    Whole groups of pictures without a requested frame are skipped by seeking to the next
    needed keyframe. Frames PyAV cannot place are read with decord.
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int = 0) -> None:
        self._decord = DecordSource(path, num_threads=num_threads)
        self.path, self.info = self._decord.path, self._decord.info
        self._threads = num_threads or available_cpus()
        self._pts: list[int] = []
        self._keys: list[int] = []
        self._index_by_pts: dict[int, int] = {}
        try:
            self._build_index()
        except (OSError, ValueError) as exc:
            logger.warning("PyAV cannot index %s (%s); reading it with decord", self.path, exc)
            self._pts = []

    def _build_index(self) -> None:
        """Sorted packet timestamps (frame ``k`` has the ``k``-th) and keyframe indices, by demuxing once."""
        import av

        with av.open(self.path) as container:
            stream = container.streams.video[0]
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
            time_base = float(stream.time_base)
        if any(pts is None for pts, _ in packets) or len(packets) != self.info.num_frames:
            logger.warning(
                "PyAV sees %d frames with timestamps in %s, decord %d; reading it with decord",
                len(packets),
                self.path,
                self.info.num_frames,
            )
            return
        pts = sorted(p for p, _ in packets)
        starts = self._decord.frame_times()[:, 0]  # float32 seconds
        if np.abs(np.asarray(pts) * time_base - starts).max() > 0.5 / self.info.fps:
            logger.warning("PyAV and decord disagree on the frame order of %s; reading it with decord", self.path)
            return
        self._pts = pts
        self._index_by_pts = {p: k for k, p in enumerate(pts)}
        self._keys = sorted(self._index_by_pts[p] for p, key in packets if key) or [0]
        first = next(self._decode_sorted([0], 1), None)
        if first is None or not np.array_equal(first[1], self._decord.get_frames([0])[0]):
            logger.warning("PyAV and decord decode %s to different pixels; reading it with decord", self.path)
            self._pts = []

    def _keyframe_before(self, frame_id: int) -> int:
        return self._keys[max(0, bisect.bisect_right(self._keys, frame_id) - 1)]

    def _gops_between(self, index: int, target: int) -> int:
        """Keyframes in ``(index, target]``."""
        return bisect.bisect_right(self._keys, target) - bisect.bisect_right(self._keys, index)

    def independent_groups(self, frame_ids: Sequence[int], parts: int) -> list[list[int]]:
        """Cut at keyframes into groups of about equal decoding work (frames from the group's
        first keyframe to its last id); a group starts only at a keyframe after the previous
        group's last id, so no frame is decoded by two groups.

        >>> source = object.__new__(PyAVSource)
        >>> source._pts, source._keys = [0], [0, 100, 200, 300]
        >>> source.independent_groups([10, 60, 110, 160, 210, 260, 310, 360], 2)
        [[10, 60, 110, 160], [210, 260, 310, 360]]
        >>> source.independent_groups([10, 60, 90], 2)  # one group of pictures: nothing to cut
        [[10, 60, 90]]
        """
        ids = [int(i) for i in frame_ids]
        if not self._pts or parts < 2 or len(ids) < 2:
            return [ids]
        first_key = self._keyframe_before(ids[0])
        span = ids[-1] - first_key + 1
        groups = [[ids[0]]]
        for previous, frame_id in itertools.pairwise(ids):
            starts_fresh = self._keyframe_before(frame_id) > previous
            if starts_fresh and len(groups) < parts and frame_id >= first_key + span * len(groups) / parts:
                groups.append([frame_id])
            else:
                groups[-1].append(frame_id)
        return groups

    def _decode_sorted(self, ids: list[int], threads: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(id, frame)`` for the wanted ids PyAV finds, in increasing order."""
        import av

        if not self._pts or not ids:
            return
        wanted, position, last_yielded, sought = set(ids), -1, -1, None
        pending = iter(ids)
        target = next(pending, None)
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frame threads where the codec has them
                stream.codec_context.thread_count = threads
                while target is not None:
                    keyframe = self._keyframe_before(target)
                    if keyframe > position and keyframe != sought:  # nothing wanted before it: skip ahead
                        container.seek(self._pts[keyframe], stream=stream, backward=True)
                        sought = keyframe
                    for frame in container.decode(stream):
                        index = self._index_by_pts.get(frame.pts) if frame.pts is not None else None
                        if index is None:
                            continue
                        position = index
                        if index in wanted and index > last_yielded:
                            last_yielded = index
                            yield index, _to_rgb_like_decord(frame)
                        while target is not None and target <= index:
                            target = next(pending, None)
                        if target is None:
                            break
                        if self._gops_between(index, target) > 1 and self._keyframe_before(target) != sought:
                            break  # seek: a whole group of pictures holds no wanted frame
                    else:
                        return  # end of stream
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            logger.warning("PyAV failed on %s (%s); reading the rest with decord", self.path, exc)

    def iter_batches(
        self, frame_ids: Sequence[int], batch_frames: int, *, threads: int | None = None
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """As :meth:`VideoSource.iter_batches`; ``threads`` decoder threads (default: the
        ``num_threads`` given at open, else every available CPU)."""
        ids = [int(i) for i in frame_ids]
        self._check_ids(ids)
        size = max(1, batch_frames)
        got_ids: list[int] = []
        got: list[np.ndarray] = []
        missing: list[int] = []
        expected = iter(ids)
        for index, frame in self._decode_sorted(ids, threads or self._threads):
            for frame_id in expected:  # ids PyAV skipped over are fetched from decord below
                if frame_id == index:
                    break
                missing.append(frame_id)
            got_ids.append(index)
            got.append(frame)
            if len(got) == size:
                yield got_ids, np.stack(got)
                got_ids, got = [], []
        if got:
            yield got_ids, np.stack(got)
        missing.extend(expected)
        if missing and self._pts:
            logger.warning("PyAV could not place %d frame(s) of %s; decoding them with decord", len(missing), self.path)
        if missing:
            yield from self._decord.iter_batches(missing, size)

    def close(self) -> None:
        self._decord.close()


def open_video(path: str | os.PathLike, *, reader: Reader = "decord", num_threads: int = 0) -> VideoSource:
    """Open ``path`` for reading; raises :class:`VideoDecodeError` with the reason when it cannot."""
    if reader == "decord":
        return DecordSource(path, num_threads=num_threads)
    if reader == "pyav":
        return PyAVSource(path, num_threads=num_threads)
    raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, average fps and frame size of ``path`` (decord, as the reference)."""
    source = DecordSource(path)
    try:
        return source.info
    finally:
        source.close()


# --------------------------------------------------------------------------- rendering


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetch(items: Iterator[T]) -> Iterator[T]:
    """Iterate ``items`` in a worker thread, one item ahead of the consumer.

    At most two items are alive at once: the one the consumer holds and the next one
    (decoding overlaps drawing and resizing). Errors re-raise in the consumer.

    >>> list(prefetch(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    slots = threading.Semaphore(2)
    ready: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            while True:
                slots.acquire()
                if stop.is_set():
                    return
                item = next(items, _DONE)
                ready.put(item)
                if item is _DONE:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            ready.put(_Failed(exc))

    worker = threading.Thread(target=work, name="lover1-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
            del item
            slots.release()
    finally:
        stop.set()
        slots.release()
        worker.join()


def frames_per_batch(info: VideoInfo, batch_frames: int = BATCH_FRAMES, batch_bytes: int = BATCH_BYTES) -> int:
    """How many full-resolution frames one batch may hold.

    >>> frames_per_batch(VideoInfo("8k.mp4", 2, 30.0, 7680, 4320))
    1
    """
    return max(1, min(batch_frames, batch_bytes // (info.width * info.height * 3)))


def render_view(
    plan: ViewPlan,
    font_path: str | os.PathLike | None = None,
    *,
    source: VideoSource | None = None,
    reader: Reader = RENDER_READER,
    batch_frames: int = BATCH_FRAMES,
    batch_bytes: int = BATCH_BYTES,
) -> View:
    """Decode, timestamp and resize the frames of ``plan``: a float32 ``(T, 3, h, w)`` view.

    ``source`` reuses an open video (it stays open); otherwise ``plan.source`` is opened
    with ``reader`` and closed again.
    """
    font = resolve_font_path(font_path)
    own = source is None
    source = open_video(plan.source, reader=reader) if source is None else source
    try:
        return _render(plan, source, font, frames_per_batch(source.info, batch_frames, batch_bytes))
    finally:
        if own:
            source.close()


def _render(plan: ViewPlan, source: VideoSource, font: str, batch: int) -> View:
    """Decode, stamp and resize the frames of ``plan`` (module docstring: how, in parallel)."""
    started = time.perf_counter()
    unique = sorted(set(plan.frame_ids))
    if not unique:
        raise ViewError(f"plan for {plan.source!r} has no frames")
    resized = torch.empty((len(unique), 3, plan.height, plan.width), dtype=torch.uint8)
    row = {frame_id: k for k, frame_id in enumerate(unique)}

    def finish(batches: Iterator[tuple[list[int], np.ndarray]]) -> None:
        for ids, frames in batches:
            draw_timestamps(frames, ids, plan.video_fps, font, inplace=True)
            # (t, H, W, 3) -> (t, 3, H, W) as a view, the same memory layout the reference resized
            pixels = torch.from_numpy(frames).permute(0, 3, 1, 2)
            small = TF.resize(
                pixels, [plan.height, plan.width], interpolation=InterpolationMode.BICUBIC, antialias=True
            )
            resized[torch.tensor([row[i] for i in ids])] = small
            del frames, pixels, small  # before the next batch is decoded

    groups = source.independent_groups(unique, available_cpus())
    if len(groups) == 1:  # one decoder (its own frame threads), the next batch decoded meanwhile
        finish(prefetch(source.iter_batches(unique, batch)))
    else:  # one single-threaded decoder per group; together they hold as many frames as two batches
        group_batch = max(1, 2 * batch // len(groups))
        with ThreadPoolExecutor(len(groups), thread_name_prefix="lover1-render") as pool:
            jobs = [pool.submit(finish, source.iter_batches(group, group_batch, threads=1)) for group in groups]
            for job in jobs:
                job.result()
    if len(unique) != len(plan.frame_ids):
        resized = resized[torch.tensor([row[i] for i in plan.frame_ids])]
    logger.debug(
        "rendered %s view of %s: %d frames in %.2f s (%d decoder group(s))",
        plan.kind,
        plan.source,
        plan.num_frames,
        time.perf_counter() - started,
        len(groups),
    )
    return View(plan, resized.float())


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class ViewRenderer:
    """Renders views, keeping one open reader per video and caching views per plan.

    Several questions about one video share its fast view: the second ``render`` of an
    equal plan returns the cached :class:`View`. Thread-safe.

    Args:
        font_path: timestamp font (default DejaVu Sans); checked now.
        max_cached_views: views kept (least recently used dropped first).
        max_cached_bytes: and at most this many bytes of view pixels.
        reader: ``"decord"`` or ``"pyav"``.
        max_open_videos: readers kept open.
    """

    def __init__(
        self,
        font_path: str | os.PathLike | None = None,
        max_cached_views: int = 8,
        *,
        max_cached_bytes: int = 2 * 1024**3,
        reader: Reader = RENDER_READER,
        max_open_videos: int = 4,
        batch_frames: int = BATCH_FRAMES,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        if reader not in READERS:
            raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")
        self.font_path = resolve_font_path(font_path)
        self.max_cached_views = max_cached_views
        self.max_cached_bytes = max_cached_bytes
        self.reader = reader
        self.max_open_videos = max(1, max_open_videos)
        self.batch_frames, self.batch_bytes = batch_frames, batch_bytes
        self._views: OrderedDict[ViewPlan, View] = OrderedDict()
        self._sources: OrderedDict[str, VideoSource] = OrderedDict()
        self._lock = threading.RLock()
        self.hits = self.misses = 0

    def source(self, path: str | os.PathLike) -> VideoSource:
        """The open reader for ``path`` (opened on first use)."""
        key = str(Path(path))
        with self._lock:
            if key in self._sources:
                self._sources.move_to_end(key)
                return self._sources[key]
            source = open_video(key, reader=self.reader)
            self._sources[key] = source
            while len(self._sources) > self.max_open_videos:
                self._sources.popitem(last=False)[1].close()
            return source

    def probe(self, path: str | os.PathLike) -> VideoInfo:
        """:class:`VideoInfo` of ``path`` from its open reader."""
        return self.source(path).info

    def render(self, plan: ViewPlan) -> View:
        """The rendered view of ``plan``, from the cache when an equal plan was rendered."""
        with self._lock:
            if plan in self._views:
                self.hits += 1
                self._views.move_to_end(plan)
                return self._views[plan]
            self.misses += 1
            source = self.source(plan.source)
            view = _render(
                plan, source, self.font_path, frames_per_batch(source.info, self.batch_frames, self.batch_bytes)
            )
            self._views[plan] = view
            self._evict()
            return view

    def _evict(self) -> None:
        def cached_bytes() -> int:
            return sum(v.pixels.element_size() * v.pixels.nelement() for v in self._views.values())

        while len(self._views) > 1 and (
            len(self._views) > self.max_cached_views or cached_bytes() > self.max_cached_bytes
        ):
            self._views.popitem(last=False)
        if self.max_cached_views < 1:
            self._views.clear()

    def clear(self) -> None:
        """Drop cached views (readers stay open)."""
        with self._lock:
            self._views.clear()

    def close(self) -> None:
        """Drop cached views and close every reader."""
        with self._lock:
            self._views.clear()
            while self._sources:
                self._sources.popitem()[1].close()

    def __enter__(self) -> ViewRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "BATCH_BYTES",
    "BATCH_FRAMES",
    "MAX_ASPECT_RATIO",
    "DecordSource",
    "PyAVSource",
    "VideoInfo",
    "VideoSource",
    "ViewRenderer",
    "diagnose",
    "draw_timestamps",
    "frames_per_batch",
    "linspace_ids",
    "open_video",
    "plan_fast_view",
    "plan_slow_view",
    "plan_whole_video_view",
    "prefetch",
    "probe_video",
    "render_view",
    "smart_resize",
    "view_size",
]
