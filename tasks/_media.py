"""Video files the tasks hand to the model: MVBench re-encodes and the generated needle videos.

MVBench (SPEC 3c): the reference re-encoded its inputs before sampling, so the model's
``D`` and ``fps`` come from the re-encoded file:

- gif / webm sources become mp4 at the source's frame rate;
- frame folders become mp4 at 3 fps (one folder image per frame, in natural name order);
- a question with a ``bound`` (``start``/``end`` seconds) gets its clip cut out.

:func:`prepare_mvbench_video` does this with PyAV into ``$LOVER1_CACHE/mvbench``
(default ``~/.cache/lover1_plugin/mvbench``): H.264, yuv420p (an odd side loses its last
pixel row/column), constant frame rate, output named after a hash of the source (path,
size, mtime), the bound and the frame rate, written under a file lock and published by
an atomic rename, so parallel lmms-eval processes share one copy. The same input always
gives the same bytes. Sources that need none of this (mp4 and other containers, no
bound) are returned as they are. lmms-eval's copy of MVBench (the dataset's ``video``
revision) already stores most clips converted and cut; the re-encoder covers what is not.

Needle (our offline task): ``needle.json`` holds the documents and the parameters of the
:func:`lover1_plugin.synthetic.make_needle_dataset` call that made them; :func:`needle_video`
regenerates the videos on first use into ``$LOVER1_NEEDLE_DIR`` or
``$LOVER1_CACHE/needle/<parameters>/`` and checks that the generator still produces the
documents in ``needle.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lover1_plugin.errors import ConfigError, VideoDecodeError
from lover1_plugin.paths import CACHE_ENV
from lover1_plugin.paths import cache_dir as package_cache_dir

logger = logging.getLogger(__name__)

NEEDLE_DIR_ENV = "LOVER1_NEEDLE_DIR"
FRAME_FOLDER_FPS = 3.0  # MVBench frame folders (TVQA) were sampled at 3 fps
REENCODED_SUFFIXES = frozenset({".gif", ".webm"})
FRAME_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
MVBENCH_CACHE_VERSION = 1  # bump when the re-encoding changes, so old cache files are not reused
_TIME_EPS = 1e-6  # seconds; absorbs float error when matching frame times to output slots


def cache_root() -> Path:
    """``$LOVER1_CACHE``, else ``~/.cache/lover1_plugin`` (the package's cache)."""
    return package_cache_dir()


def _lock(path: Path):
    from filelock import FileLock  # a dependency of huggingface_hub / datasets, so of lmms-eval

    return FileLock(str(path))


# ---------------------------------------------------------------------------------------
# MVBench re-encoding


def _natural_key(name: str) -> list[Any]:
    """Sort key that puts ``frame2.jpg`` before ``frame10.jpg``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _source_fingerprint(source: Path) -> Any:
    if source.is_dir():
        return [[p.name, p.stat().st_size] for p in _frame_files(source)]
    stat = source.stat()
    return [stat.st_size, stat.st_mtime_ns]


def mvbench_cache_path(
    source: Path, bound: tuple[float, float] | None, frame_fps: float, cache_dir: Path | None = None
) -> Path:
    """Where :func:`prepare_mvbench_video` puts the re-encoded ``source``."""
    key = {
        "version": MVBENCH_CACHE_VERSION,
        "source": str(source.resolve()),
        "fingerprint": _source_fingerprint(source),
        "bound": list(bound) if bound is not None else None,
        "frame_fps": frame_fps if source.is_dir() else None,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = source.name if source.is_dir() else source.stem
    return (cache_dir or cache_root() / "mvbench") / f"{stem}-{digest}.mp4"


def _needs_reencoding(source: Path, bound: tuple[float, float] | None) -> bool:
    return source.is_dir() or source.suffix.lower() in REENCODED_SUFFIXES or bound is not None


def prepare_mvbench_video(
    source: str | os.PathLike[str],
    *,
    bound: tuple[float, float] | None = None,
    frame_fps: float = FRAME_FOLDER_FPS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The mp4 the model should read for an MVBench source (see the module docstring).

    Raises ``VideoDecodeError`` for a missing, unreadable or empty source, or a bound that
    selects no frame.
    """
    source = Path(source)
    if not source.exists():
        raise VideoDecodeError(str(source), "no such file or folder")
    if bound is not None:
        start, end = float(bound[0]), float(bound[1])
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            raise VideoDecodeError(str(source), f"invalid clip bound {bound!r}: end must be after start")
        bound = (max(0.0, start), end)
    if not _needs_reencoding(source, bound):
        return source
    if not (math.isfinite(frame_fps) and frame_fps > 0):
        raise ValueError(f"frame_fps must be a positive number, got {frame_fps!r}")
    target = mvbench_cache_path(source, bound, frame_fps, Path(cache_dir) if cache_dir is not None else None)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.with_name(target.name + ".lock")):
        if target.exists():  # another process wrote it while we waited
            return target
        rate, frames, duration = _open_source(source, frame_fps)
        start, end = bound if bound is not None else (0.0, duration)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.mp4")
        try:
            written = _encode(tmp, _resample(frames, rate, start, min(end, duration)), rate)
            if written == 0:
                raise VideoDecodeError(
                    str(source), f"clip [{start:g}, {end:g}] holds no frame of a {duration:g} s video"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    logger.info("re-encoded %s -> %s", source, target)
    return target


def _open_source(source: Path, frame_fps: float) -> tuple[Fraction, Iterator[tuple[float, np.ndarray]], float]:
    """``(output rate, (time, RGB frame) iterator with times from 0, duration in seconds)``."""
    if source.is_dir():
        files = _frame_files(source)
        if not files:
            raise VideoDecodeError(str(source), f"no {'/'.join(sorted(FRAME_SUFFIXES))} frames in the folder")
        return Fraction(frame_fps).limit_denominator(1001), _folder_frames(files, frame_fps), len(files) / frame_fps
    return _video_frames(source)


def _folder_frames(files: list[Path], fps: float) -> Iterator[tuple[float, np.ndarray]]:
    from PIL import Image

    size = None
    for index, path in enumerate(files):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                size = size or image.size
                if image.size != size:
                    image = image.resize(size, Image.BICUBIC)
                pixels = np.asarray(image)
        except OSError as exc:
            raise VideoDecodeError(str(path), f"unreadable frame image: {exc}") from exc
        yield index / fps, pixels


def _video_frames(source: Path) -> tuple[Fraction, Iterator[tuple[float, np.ndarray]], float]:
    import av

    try:
        container = av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoDecodeError(str(source), str(exc)) from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(str(source), "no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        container.close()
        raise VideoDecodeError(str(source), "unknown frame rate")
    rate = Fraction(rate)
    duration = math.inf
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return rate, _decode(container, stream, source), duration if duration > 0 else math.inf


def _decode(container, stream, source: Path) -> Iterator[tuple[float, np.ndarray]]:
    import av

    stream.thread_type = "AUTO"
    origin = None
    try:
        for index, frame in enumerate(container.decode(stream)):
            time = frame.time if frame.time is not None else index / float(stream.average_rate or 1)
            origin = time if origin is None else origin
            yield time - origin, frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoDecodeError(str(source), str(exc)) from exc
    finally:
        container.close()
    if origin is None:
        raise VideoDecodeError(str(source), "no decodable frame")


def _resample(
    frames: Iterable[tuple[float, np.ndarray]], rate: Fraction, start: float, end: float
) -> Iterator[np.ndarray]:
    """Constant-rate frames for the slots ``start + k / rate < end``.

    Each slot shows the last source frame whose time is at or before it (the first frame
    for slots before it), as a player would. After the last source frame, slots run to
    ``end`` (the stream's duration, or the bound) but at most one source frame period on.
    """
    step = 1 / float(rate)
    slot = 0
    current, last_time = None, None
    for time, pixels in frames:
        if current is not None:
            while start + slot * step < time - _TIME_EPS:
                if start + slot * step >= end - _TIME_EPS:
                    return
                yield current
                slot += 1
        current, last_time = pixels, time
    if current is None:
        return
    stop = min(end, last_time + step)
    while start + slot * step < stop - _TIME_EPS:
        yield current
        slot += 1


def _encode(path: Path, frames: Iterable[np.ndarray], rate: Fraction) -> int:
    """Write RGB frames as H.264 (MPEG-4 Part 2 where libx264 is missing); return the frame count.

    Nothing is written when ``frames`` is empty.
    """
    import av

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        return 0
    height, width = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2  # yuv420p needs even sides
    if height < 2 or width < 2:
        raise VideoDecodeError(str(path), f"frames of {first.shape[1]}x{first.shape[0]} px are too small")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    written = 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # ffmpeg's libx264 defaults (crf 23, preset medium), as the reference's moviepy export.
        stream.options = {"crf": "23", "preset": "medium"} if codec == "libx264" else {"qscale": "3"}
        for pixels in _chain(first, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:height, :width]), format="rgb24")
            frame.pts = written
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
            written += 1
        container.mux(stream.encode(None))
    return written


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


# ---------------------------------------------------------------------------------------
# Needle videos

NEEDLE_RECORD_KEYS = ("id", "video", "question", "options", "answer", "needle_span", "duration")


def build_needle_docs(num_questions: int = 4, duration_s: float = 150.0, fps: float = 1.0, seed: int = 0) -> list[dict]:
    """The documents of ``needle.json``: ``make_needle_dataset`` records plus its parameters.

    Each record gains ``seed``, ``num_questions`` and ``fps`` (``duration`` it has), which
    :func:`needle_video` needs to regenerate the video. Writes the videos to a temporary
    folder and drops them.
    """
    from lover1_plugin.synthetic import make_needle_dataset

    with tempfile.TemporaryDirectory(prefix="lover1-needle-") as tmp:
        records = make_needle_dataset(tmp, num_questions=num_questions, duration_s=duration_s, fps=fps, seed=seed)
    return [{**record, "seed": seed, "num_questions": num_questions, "fps": float(fps)} for record in records]


def needle_directory(doc: Mapping[str, Any]) -> Path:
    """``$LOVER1_NEEDLE_DIR`` when set, else a cache folder named after the generation parameters."""
    override = os.environ.get(NEEDLE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    name = f"seed{int(doc['seed'])}-n{int(doc['num_questions'])}-d{float(doc['duration']):g}-fps{float(doc['fps']):g}"
    return cache_root() / "needle" / name


def needle_video(doc: Mapping[str, Any]) -> Path:
    """The video of a needle document, generated (with its whole set) when missing.

    Files already in the folder are used as they are (a test can plant a corrupt one);
    missing ones are generated in a temporary folder beside them and moved in, under a
    file lock. Raises ``ConfigError`` when the generator no longer produces the document
    (``needle.json`` is stale: rebuild it with :func:`build_needle_docs`).
    """
    directory = needle_directory(doc)
    target = directory / str(doc["video"])
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with _lock(directory / ".needle.lock"):
        if target.exists():
            return target
        from lover1_plugin.synthetic import make_needle_dataset

        with tempfile.TemporaryDirectory(dir=directory, prefix=".generating-") as tmp:
            records = make_needle_dataset(
                tmp,
                num_questions=int(doc["num_questions"]),
                duration_s=float(doc["duration"]),
                fps=float(doc["fps"]),
                seed=int(doc["seed"]),
            )
            _check_needle_record(doc, records)
            for record in records:
                destination = directory / record["video"]
                if not destination.exists():
                    os.replace(Path(tmp) / record["video"], destination)
    logger.info("generated needle videos in %s", directory)
    return target


def _check_needle_record(doc: Mapping[str, Any], records: list[dict]) -> None:
    record = next((r for r in records if r["id"] == doc["id"]), None)
    differs = record is None or any(
        json.dumps(_plain(record[key])) != json.dumps(_plain(doc[key])) for key in NEEDLE_RECORD_KEYS if key != "id"
    )
    if differs:
        raise ConfigError(
            f"needle document {doc['id']!r} is not what lover1_plugin.synthetic generates any more; "
            "rebuild needle.json with build_needle_docs() (python tasks/_media.py)"
        )


def _plain(value: Any) -> Any:
    """Lists, floats and strings only, so a JSON/Arrow round trip compares equal (150 == 150.0)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def main() -> None:
    """Rewrite ``needle.json`` beside this file with the default needle documents."""
    path = Path(__file__).with_name("needle.json")
    docs = build_needle_docs()
    path.write_text(json.dumps(docs, indent=2) + "\n", encoding="utf-8")
    logger.warning("wrote %d needle documents to %s", len(docs), path)


if __name__ == "__main__":
    main()


__all__ = [
    "CACHE_ENV",
    "FRAME_FOLDER_FPS",
    "NEEDLE_DIR_ENV",
    "build_needle_docs",
    "cache_root",
    "mvbench_cache_path",
    "needle_directory",
    "needle_video",
    "prepare_mvbench_video",
]
