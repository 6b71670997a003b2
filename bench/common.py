"""Shared parts of the benchmarks: generated videos, the 3-turn question driver, report lines.

Every benchmark measures our path and a reference-equivalent path side by side in one
run on this machine and prints ratios; nothing here asserts a time.

The 3-turn question (what the LOVE-R1 loop does when the model zooms twice and the round
cap forces the answer, SPEC 3):

1. the fast view alone, the model proposes ``zooms[0]``;
2. the fast view + the first slow view, the model proposes ``zooms[1]``;
3. the forced answer: the fast view + both slow views (sorted by start), the assistant
   prefix ``I get the answer.\\n\\n``, special tokens skipped.

The proposals go through :func:`lover1_plugin.policy.next_step` (pad 5 s, widen to 30 s),
so the slow views are the ones the loop would render. The tiny model's replies are
random text: the scripted proposals decide the zooms, the model does real prefill and
real greedy decoding.

>>> turns = question_turns(VideoInfo("v.mp4", 1200, 2.0, 640, 360), "Q?", [(100, 110), (400, 410)])
>>> [[p.label for p in turn.plans] for turn in turns]
[[(0, 600)], [(0, 600), (90, 120)], [(0, 600), (90, 120), (390, 420)]]
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lover1_plugin.config import LoopConfig, ViewConfig
from lover1_plugin.decisions import Decision
from lover1_plugin.paths import cache_dir
from lover1_plugin.policy import Zoom, add_interval, next_step
from lover1_plugin.prompts import ANSWER_PREFIX, build_conversation, format_question
from lover1_plugin.video import VideoInfo, plan_fast_view, plan_slow_view
from lover1_plugin.views import View, ViewPlan

logger = logging.getLogger("bench")

GIB = 1024**3

# Three questions on one video, each zooming twice (the model's proposed boxes, before
# the loop pads and widens them). Question 1 zooms forward, question 2 backward (its
# second clip sorts before the first), question 3 forward again.
QUESTIONS: tuple[tuple[str, tuple[str, ...], tuple[tuple[int, int], tuple[int, int]]], ...] = (
    ("What is written on the small white card?", ("APPLE", "RIVER", "MOUSE", "TIGER"), ((100, 110), (400, 410))),
    ("Which colour is the moving square?", ("red", "green", "blue", "white"), ((300, 310), (50, 60))),
    ("How often does the card appear?", ("once", "twice", "three times", "never"), ((200, 210), (500, 510))),
)


# --------------------------------------------------------------------------- machine


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. ``'1.02 0.88 0.75'``."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine_line() -> str:
    """One line describing the machine the numbers come from."""
    import torch

    return (
        f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {platform.python_version()}, load average {load_average()}"
    )


def available_memory() -> int:
    """Bytes of memory the kernel says are available (``MemAvailable``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def ratio_line(
    label: str, ours: float, reference: float, *, unit: str = "", target: float, fmt: str = "{:,.0f}"
) -> str:
    """``label: ours X, reference Y, ratio Rx (target >= Tx)`` where ratio = reference / ours.

    >>> ratio_line("prefill tokens per 3-turn question", 1234, 5678, target=2.0)
    'prefill tokens per 3-turn question: ours 1,234, reference 5,678, ratio 4.60x (target >= 2.0x, met)'
    """
    ratio = reference / ours if ours else float("inf")
    verdict = "met" if ratio >= target else "NOT met"
    return (
        f"{label}: ours {fmt.format(ours)}{unit}, reference {fmt.format(reference)}{unit}, "
        f"ratio {ratio:.2f}x (target >= {target:.1f}x, {verdict})"
    )


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["s"]`` holds the wall seconds."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


# --------------------------------------------------------------------------- arguments


def add_question_flags(parser) -> None:
    """The generated video, the questions asked about it, and where videos and figures go (prefill, round_time)."""
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of the generated video")
    parser.add_argument("--fps", type=float, default=2.0, help="frame rate of the generated video")
    parser.add_argument("--size", type=parse_size, default=(360, 640), help="HEIGHTxWIDTH of the generated video")
    parser.add_argument("--questions", type=int, default=3, choices=(1, 2, 3), help="questions asked about the video")
    parser.add_argument(
        "--cache-dir", default=None, help="where generated videos are kept (default $LOVER1_CACHE/bench)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    add_view_flags(parser)


def add_view_flags(parser) -> None:
    """``--fast-res/--slow-res/--num-fast/--num-slow``: smaller views for smoke runs (default: SPEC values)."""
    for name, help_text in (
        ("num-fast", "most fast-view frames (SPEC: 768)"),
        ("fast-res", "fast-view budget in 28x28 patches (SPEC: 32)"),
        ("num-slow", "most frames per zoom clip (SPEC: 32)"),
        ("slow-res", "zoom-clip budget in 28x28 patches (SPEC: 256)"),
    ):
        parser.add_argument(f"--{name}", type=int, default=None, help=help_text)


def view_config(args) -> ViewConfig:
    """The :class:`ViewConfig` of the view flags (SPEC defaults for those not given)."""
    names = ("num_fast", "fast_res", "num_slow", "slow_res")
    return ViewConfig(**{n: getattr(args, n) for n in names if getattr(args, n, None) is not None})


# --------------------------------------------------------------------------- videos


def parse_size(text: str) -> tuple[int, int]:
    """``'360x640'`` -> ``(360, 640)`` (height x width).

    >>> parse_size("720x1280")
    (720, 1280)
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"size must read HEIGHTxWIDTH, e.g. 360x640, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def bench_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where generated benchmark videos live (outside the repository): ``$LOVER1_CACHE/bench``."""
    return Path(override).expanduser() if override else cache_dir("bench")


def generated_video(
    kind: str,
    *,
    duration_s: float,
    fps: float,
    size: tuple[int, int],
    directory: str | os.PathLike | None = None,
) -> Path:
    """Write (once) and return a generated video: ``kind`` ``"test"`` (barcoded) or ``"needle"``.

    The file is written under a temporary name and renamed into place, so an interrupted
    run never leaves a truncated video behind.
    """
    from lover1_plugin.synthetic import make_needle_video, make_test_video

    height, width = size
    folder = bench_cache_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}_{duration_s:g}s_{fps:g}fps_{height}x{width}.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.mp4")
    logger.info("writing %s (%g s at %g fps, %dx%d); done once", path, duration_s, fps, width, height)
    with timer() as took:
        if kind == "test":
            make_test_video(tmp, duration_s=duration_s, fps=fps, size=size)
        elif kind == "needle":
            span_end = min(duration_s, max(duration_s / 2 + 8, 1))
            make_needle_video(
                tmp,
                duration_s=duration_s,
                fps=fps,
                size=size,
                needle_span=(duration_s / 2, span_end),
                needle_text="RIVER",
            )
        else:
            raise ValueError(f"kind must be 'test' or 'needle', got {kind!r}")
    os.replace(tmp, path)
    logger.info("wrote %s (%.1f MiB) in %.1f s", path, path.stat().st_size / 2**20, took["s"])
    return path


# --------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class Turn:
    """One model turn of a question: the views in prompt order and how to decode."""

    conversation: list[dict]
    plans: tuple[ViewPlan, ...]
    assistant_prefix: str | None
    skip_special_tokens: bool


def question_turns(
    info: VideoInfo,
    question_text: str,
    zooms: Sequence[tuple[int, int]],
    view_cfg: ViewConfig | None = None,
    loop_cfg: LoopConfig | None = None,
) -> list[Turn]:
    """The turns of one question whose model proposes ``zooms`` (then is forced to answer)."""
    view_cfg = view_cfg or ViewConfig()
    duration = info.duration
    fast = plan_fast_view(info, view_cfg)
    intervals: list[tuple[int, int]] = []
    turns = []
    for proposal in zooms:
        turns.append(_turn(info, fast, question_text, intervals, view_cfg, None))
        step = next_step(
            Decision(kind="zoom", answer=None, interval=tuple(proposal), reason=""), intervals, duration, loop_cfg
        )
        if not isinstance(step, Zoom):
            raise ValueError(f"the scripted zoom {proposal} is rejected by the loop policy: {step}")
        intervals = add_interval(intervals, step.interval)
    turns.append(_turn(info, fast, question_text, intervals, view_cfg, ANSWER_PREFIX))
    return turns


def _turn(
    info: VideoInfo,
    fast: ViewPlan,
    question_text: str,
    intervals: Sequence[tuple[int, int]],
    view_cfg: ViewConfig,
    prefix: str | None,
) -> Turn:
    slows = [plan_slow_view(info, s, e, view_cfg) for s, e in sorted(intervals)]
    conversation = build_conversation(int(info.duration), question_text, [p.label for p in slows])
    return Turn(conversation, (fast, *slows), prefix, skip_special_tokens=prefix is not None)


def scaled_questions(duration: float) -> list[tuple[str, list[int | tuple[int, int]]]]:
    """:data:`QUESTIONS` with their proposals scaled from a 600 s video to ``duration`` seconds."""
    scale = duration / 600.0
    out = []
    for question, options, zooms in QUESTIONS:
        text = format_question(question, list(options), "mlvu")
        scaled = [(int(a * scale), max(int(a * scale) + 1, int(b * scale))) for a, b in zooms]
        out.append((text, scaled))
    return out


@dataclass
class TurnRecord:
    """What one turn did: generated token ids, text, and the backend's counters for it."""

    text: str
    token_ids: list[int]
    prefill_tokens: int
    cached_tokens: int
    vision_encodes: int
    seconds: float


@dataclass
class TokenRecorder:
    """Wraps ``model.generate`` to record each call's new token ids (the backend returns only text)."""

    model: object
    outputs: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._generate = self.model.generate

        def generate(*args, **kwargs):
            output = self._generate(*args, **kwargs)
            prompt = kwargs["input_ids"].shape[1]
            self.outputs.append(output[0, prompt:].tolist())
            return output

        self.model.generate = generate

    def close(self) -> None:
        self.model.generate = self._generate


def run_turns(
    turns: Sequence[Turn],
    backend,
    render: Callable[[Sequence[ViewPlan]], list[View]],
    recorder: TokenRecorder,
    *,
    max_new_tokens: int,
) -> list[TurnRecord]:
    """Render each turn's views with ``render`` and generate with ``backend``; record every turn."""
    records = []
    for turn in turns:
        before = backend.stats.as_dict()
        start = time.perf_counter()
        views = render(turn.plans)
        text = backend.generate(
            turn.conversation,
            views,
            assistant_prefix=turn.assistant_prefix,
            max_new_tokens=max_new_tokens,
            skip_special_tokens=turn.skip_special_tokens,
        )
        seconds = time.perf_counter() - start
        after = backend.stats.as_dict()
        records.append(
            TurnRecord(
                text=text,
                token_ids=recorder.outputs[-1],
                prefill_tokens=after["prefill_tokens"] - before["prefill_tokens"],
                cached_tokens=after["cached_tokens"] - before["cached_tokens"],
                vision_encodes=after["vision_encodes"] - before["vision_encodes"],
                seconds=seconds,
            )
        )
    return records


def shared_renderer_render(renderer) -> Callable[[Sequence[ViewPlan]], list[View]]:
    """Ours: one :class:`ViewRenderer` for the whole run (fast view rendered once per video)."""
    return lambda plans: [renderer.render(plan) for plan in plans]


def fresh_renderer_render(font_path: str | None = None) -> Callable[[Sequence[ViewPlan]], list[View]]:
    """Reference-equivalent: a new renderer (new reader, empty cache) every round, every view decoded again."""
    from lover1_plugin.video import ViewRenderer

    def render(plans: Sequence[ViewPlan]) -> list[View]:
        with ViewRenderer(font_path=font_path, max_cached_views=0) as renderer:
            return [renderer.render(plan) for plan in plans]

    return render


def load_tiny_pair():
    """The tiny model loaded once: ``(ours, reference, recorder)`` HF backends sharing its weights."""
    from lover1_plugin.backends.hf import HFBackend
    from lover1_plugin.tiny import build_tiny_model

    loaded = HFBackend.from_pretrained(str(build_tiny_model()), device="cpu")
    ours = HFBackend(loaded.model, loaded.processor, reuse=True)
    reference = HFBackend(loaded.model, loaded.processor, reuse=False)
    return ours, reference, TokenRecorder(loaded.model)


def write_json(path: str | os.PathLike | None, payload: dict) -> None:
    """Write ``payload`` as JSON when ``path`` is given (for CI artefacts)."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = [
    "GIB",
    "QUESTIONS",
    "TokenRecorder",
    "add_view_flags",
    "view_config",
    "Turn",
    "TurnRecord",
    "available_memory",
    "bench_cache_dir",
    "fresh_renderer_render",
    "generated_video",
    "load_average",
    "load_tiny_pair",
    "machine_line",
    "parse_size",
    "question_turns",
    "ratio_line",
    "run_turns",
    "scaled_questions",
    "shared_renderer_render",
    "setup_logging",
    "timer",
    "write_json",
]
