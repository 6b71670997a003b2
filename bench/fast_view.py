"""Fast-view rendering: our renderer vs decode alone vs a reference-equivalent path.

The fast view of a generated 10-minute 30 fps 720p video: 768 frames, timestamps drawn
at 1280x720, resized to 112x196. Every path runs in its own subprocess, so peak RSS
(``ru_maxrss`` of that process) never mixes between paths; import time is not counted.

- ``decode``: the renderer's default reader decoding the 768 planned frames, in the same
  batches of 16 the renderer asks for, frames dropped at once (the floor);
- ``ours``: :func:`lover1_plugin.video.render_view` with its defaults (batched decode in
  a worker thread, timestamps drawn on a crop, each batch resized on uint8);
- ``reference``: written here from SPEC 1's description of the reference code: decord
  ``get_batch`` of all 768 frames at once, per-frame PIL drawing with the font loaded
  for every frame (``ImageFont.truetype`` in the loop), then one torchvision bicubic
  antialiased resize of the whole full-resolution ``(T, 3, H, W)`` uint8 stack;
- ``decode-decord`` / ``ours-decord`` and ``decode-pyav`` / ``ours-pyav``: the same with
  the reader forced (by default the reader that is not the renderer's default runs too).

The script also prints the largest pixel difference between ours and the reference.
The generated video is cached under ``$LOVER1_CACHE/bench`` (about 0.3-1 GB for the
10-minute one; it is never written into the repository). ``--hour`` renders a 1-hour
720p video at 1 fps instead (the long-video memory check).

Run: ``python -m bench.fast_view`` (full) or ``python -m bench.fast_view --duration 20 --fps 10 --size 180x320``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import GIB, available_memory, generated_video, load_average, machine_line, parse_size, setup_logging

logger = logging.getLogger("bench.fast_view")

READERS = ("decord", "pyav")
PATHS = ("decode", "ours", "reference", *(f"{kind}-{reader}" for reader in READERS for kind in ("decode", "ours")))
TARGET_SPEEDUP = 2.5  # ours vs reference
TARGET_OVERHEAD = 1.3  # ours vs decode alone
TARGET_PEAK_GIB = 2.0  # ours
DECODE_BATCH = 16  # what render_view asks the reader for (video.BATCH_FRAMES)


# --------------------------------------------------------------------------- children


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (less sensitive to other jobs than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _plan(video: str):
    from lover1_plugin.config import ViewConfig
    from lover1_plugin.timestamps import resolve_font_path
    from lover1_plugin.video import plan_fast_view, probe_video

    resolve_font_path(None)  # finding the default font imports matplotlib (0.5 s): set-up, not rendering
    return plan_fast_view(probe_video(video), ViewConfig())


def default_reader() -> str:
    """The reader :func:`lover1_plugin.video.render_view` uses when none is given."""
    from lover1_plugin import video

    return getattr(video, "RENDER_READER", "decord")


def default_paths() -> list[str]:
    """Decode alone, ours and the reference, plus the other reader's decode and render."""
    other = next(r for r in READERS if r != default_reader())
    return ["decode", "ours", "reference", f"decode-{other}", f"ours-{other}"]


def _decode_only(plan, reader: str) -> None:
    from lover1_plugin.video import open_video

    with open_video(plan.source, reader=reader) as source:
        for _ids, frames in source.iter_batches(sorted(set(plan.frame_ids)), DECODE_BATCH):
            del frames


def _ours(plan, reader: str | None = None):
    from lover1_plugin.video import render_view

    kwargs = {} if reader is None else {"reader": reader}
    return render_view(plan, **kwargs).pixels  # float32 (T, 3, h, w)


def _reference(plan):
    """The reference-equivalent fast view (SPEC 1), written the straightforward way."""
    import decord
    import torch
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from lover1_plugin.timestamps import resolve_font_path

    font_path = resolve_font_path(None)
    reader = decord.VideoReader(plan.source, ctx=decord.cpu(0))
    fps = reader.get_avg_fps()
    video = reader.get_batch(list(plan.frame_ids)).asnumpy()  # (T, H, W, 3): all frames at once
    stamped = []
    for frame, frame_id in zip(video, plan.frame_ids, strict=True):
        image = Image.fromarray(frame)
        height, width = frame.shape[:2]
        font = ImageFont.truetype(font_path, int(min(width, height) / 8))  # loaded for every frame
        draw = ImageDraw.Draw(image)
        text = str(int(frame_id / fps))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 10, bottom - top + 10
        draw.text((width - tw, height - th - th / 3), text, font=font, fill="red")
        stamped.append(image)
    video = torch.from_numpy(np.stack([np.array(image) for image in stamped])).permute(0, 3, 1, 2)  # (T, 3, H, W)
    video = TF.resize(video, [plan.height, plan.width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return video.float()  # float32 (T, 3, h, w), as the reference handed it on


def run_child(path: str, video: str, out: str | None) -> dict:
    """Run one path in this process; return its wall time and peak RSS."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; choose from {', '.join(PATHS)}")
    kind, _, reader = path.partition("-")
    plan = _plan(video)
    before = _maxrss_bytes()
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    pixels = None
    if kind == "decode":
        _decode_only(plan, reader or default_reader())
    elif kind == "ours":
        pixels = _ours(plan, reader or None)
    else:
        pixels = _reference(plan)
    wall = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    if pixels is not None and out:
        import torch

        np.save(out, pixels.round().clamp(0, 255).to(torch.uint8).numpy())  # integral values: exact
    return {
        "path": path,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss": _maxrss_bytes(),
        "rss_before": before,
        "frames": plan.num_frames,
        "size": [plan.height, plan.width],
    }


# --------------------------------------------------------------------------- parent


def spawn(path: str, video: Path, out: Path | None, *, min_free: int) -> dict:
    """Run ``path`` in a subprocess; kill it if the machine runs out of memory (other jobs share it)."""
    import psutil

    cmd = [sys.executable, "-m", "bench.fast_view", "--child", path, "--video", str(video)]
    if out is not None:
        cmd += ["--out", str(out)]
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(child.pid)
    sampled_peak, killed = 0, False
    while child.poll() is None:
        try:
            sampled_peak = max(sampled_peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        if available_memory() < min_free:
            child.kill()
            killed = True
            break
        time.sleep(0.05)
    stdout, stderr = child.communicate()
    if killed:
        return {"path": path, "killed": True, "sampled_peak_rss": sampled_peak}
    if child.returncode != 0:
        raise RuntimeError(f"{path} failed (exit {child.returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def pixel_report(a: Path, b: Path) -> str:
    x, y = np.load(a), np.load(b)
    if x.shape != y.shape:
        return f"shapes differ: {x.shape} vs {y.shape}"
    diff = np.abs(x.astype(np.int16) - y.astype(np.int16))
    return f"max abs diff {int(diff.max())}, {int((diff > 0).sum()):,} of {diff.size:,} values differ"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of the generated video")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the generated video")
    parser.add_argument("--size", type=parse_size, default=(720, 1280), help="HEIGHTxWIDTH of the generated video")
    parser.add_argument("--hour", action="store_true", help="a 1-hour 720p video at 1 fps (overrides duration/fps)")
    parser.add_argument(
        "--paths",
        default=None,
        help=f"comma-separated subset of {','.join(PATHS)} (default: decode, ours, reference "
        "and the other reader's decode and ours)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per path (the fastest counts)")
    parser.add_argument("--min-free-gib", type=float, default=1.0, help="kill a path when free memory drops below this")
    parser.add_argument(
        "--cache-dir", default=None, help="where generated videos are kept (default $LOVER1_CACHE/bench)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--video", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hour:
        args.duration, args.fps = 3600.0, 1.0
    return args


def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.video, args.out)))
        return 0
    setup_logging()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()] if args.paths else default_paths()
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        raise SystemExit(f"unknown paths {unknown}; choose from {', '.join(PATHS)}")
    print(machine_line())
    print(f"renderer's default reader: {default_reader()}")
    video = generated_video("test", duration_s=args.duration, fps=args.fps, size=args.size, directory=args.cache_dir)
    plan = _plan(str(video))
    print(
        f"video: {video.name} ({video.stat().st_size / 2**20:.0f} MiB); fast view {plan.num_frames} frames "
        f"-> {plan.height}x{plan.width}; free memory {_gib(available_memory())}"
    )
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="lover1-fastview-") as tmp:
        outputs = {p: Path(tmp) / f"{p}.npy" for p in paths if not p.startswith("decode")}
        for repeat in range(args.repeats):
            for path in paths:
                result = spawn(path, video, outputs.get(path), min_free=int(args.min_free_gib * GIB))
                result["load_average"] = load_average()
                if result.get("killed"):
                    print(
                        f"  {path:12s} killed: free memory fell under {args.min_free_gib:g} GiB "
                        f"(sampled RSS {_gib(result['sampled_peak_rss'])})"
                    )
                else:
                    print(
                        f"  {path:12s} run {repeat + 1}: {result['wall_s']:7.2f} s (CPU {result['cpu_s']:6.2f} s), "
                        f"peak RSS {_gib(result['peak_rss'])} "
                        f"(at start {_gib(result['rss_before'])}), load {result['load_average']}"
                    )
                best = results.get(path)
                if best is None or (not result.get("killed") and result["wall_s"] < best.get("wall_s", float("inf"))):
                    results[path] = result
        print()
        print(f"load average at the end: {load_average()}")
        ref = outputs.get("reference")
        for ours in (p for p in paths if p.startswith("ours")):
            if ref is not None and ref.exists() and outputs[ours].exists():
                print(f"pixels {ours} vs reference: {pixel_report(outputs[ours], ref)}")
    summarize(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def summarize(results: dict[str, dict]) -> None:
    """The final ratio lines (targets: ours >= 2.5x faster, <= 1.3x decode alone, peak < 2 GiB)."""
    ok = {p: r for p, r in results.items() if not r.get("killed")}
    pairs = [("ours", "decode")] + [(f"ours-{r}", f"decode-{r}") for r in READERS]
    for ours, decode in pairs:
        if ours not in ok:
            continue
        mine = ok[ours]
        if "reference" in ok:
            ref = ok["reference"]
            ratio = ref["wall_s"] / mine["wall_s"]
            verdict = "met" if ratio >= TARGET_SPEEDUP else "NOT met"
            print(
                f"fast-view wall time ({ours}): ours {mine['wall_s']:.2f} s, reference {ref['wall_s']:.2f} s, "
                f"ratio {ratio:.2f}x (target >= {TARGET_SPEEDUP}x, {verdict})"
            )
        elif "reference" in results:
            print(f"fast-view wall time ({ours}): ours {mine['wall_s']:.2f} s, reference killed (out of memory)")
        if decode in ok:
            overhead = mine["wall_s"] / ok[decode]["wall_s"]
            verdict = "met" if overhead <= TARGET_OVERHEAD else "NOT met"
            print(
                f"fast-view wall time vs decode alone ({ours}): ours {mine['wall_s']:.2f} s, decode "
                f"{ok[decode]['wall_s']:.2f} s, ratio {overhead:.2f}x (target <= {TARGET_OVERHEAD}x, {verdict})"
            )
        cpu_ref = f", reference {ok['reference']['cpu_s']:.2f} s" if "reference" in ok else ""
        cpu_dec = f", decode alone {ok[decode]['cpu_s']:.2f} s" if decode in ok else ""
        print(f"fast-view CPU time ({ours}, informational): ours {mine['cpu_s']:.2f} s{cpu_dec}{cpu_ref}")
        verdict = "met" if mine["peak_rss"] < TARGET_PEAK_GIB * GIB else "NOT met"
        ref_peak = ok["reference"]["peak_rss"] if "reference" in ok else None
        print(
            f"fast-view peak RSS ({ours}): ours {_gib(mine['peak_rss'])}, reference "
            f"{_gib(ref_peak) if ref_peak else 'n/a'} (target ours < {TARGET_PEAK_GIB:g} GiB, {verdict})"
        )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
