"""What the loop does after a reply (SPEC 3): pad, clamp, min width, widen, IoU stop.

``next_step`` is pure: it turns one parsed ``Decision`` into ``Zoom``, ``Answer`` or
``ForceAnswer``. It does not count rounds: the caller (the LangGraph graph) forces the
answer once ``loop_cfg.max_rounds`` zoom rounds have run, whatever ``next_step`` says.

Worked example (D = 600 s, defaults): the box ``[100, 110]`` is padded to ``(95, 115)``;
its width 20 is under ``min(30, 600 / 8) = 30``, so it is re-centred on 105 with width
30: ``(90, 120)``.

>>> from .decisions import Decision
>>> next_step(Decision("zoom", interval=(100, 110)), [], 600.0, LoopConfig())
Zoom(interval=(90, 120))
>>> next_step(Decision("zoom", interval=(100, 110)), [(90, 120)], 600.0, LoopConfig()).reason
'interval [90, 120] overlaps the zoomed [90, 120] (IoU 1.00 > 0.3)'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from .config import LoopConfig
from .decisions import Decision, iou


@dataclass(frozen=True)
class Zoom:
    """Zoom in on ``interval`` (whole seconds, sorted, inside ``[0, int(D)]``) next round."""

    interval: tuple[int, int]


@dataclass(frozen=True)
class Answer:
    """The reply answered directly; ``text`` is the stripped box content."""

    text: str


@dataclass(frozen=True)
class ForceAnswer:
    """End the loop with the forced-answer turn; ``reason`` says why (for traces)."""

    reason: str


Step = Zoom | Answer | ForceAnswer


def _check_duration(duration: float) -> float:
    try:
        value = float(duration) if isinstance(duration, numbers.Real) else math.nan
    except OverflowError:  # an int beyond the float range
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {duration!r}")
    return value


def next_step(
    decision: Decision,
    zoomed: Sequence[tuple[int, int]],
    duration: float,
    loop_cfg: LoopConfig | None = None,
) -> Step:
    """SPEC 3: the next step after one reply, given the intervals zoomed so far.

    ``"invalid"`` -> ``ForceAnswer``; ``"answer"`` -> ``Answer``; ``"zoom"`` with ``(a, b)``:
    ``s = max(a - pad, 0)``, ``e = min(b + pad, int(D))``; ``e - s < min_width`` ->
    ``ForceAnswer``; with ``widen`` (all presets but LongVideoBench) and
    ``e - s < w = min(widen_max_s, D * widen_fraction)``, re-centre on the midpoint:
    ``s = int(max(mid - w / 2, 0))``, ``e = int(min(mid + w / 2, D))`` (this only ever
    enlarges the interval); IoU above ``iou_stop`` with any zoomed interval ->
    ``ForceAnswer``; else ``Zoom((s, e))``.

    A model reply can never make this raise; ``ValueError`` only for a caller's bad
    ``duration`` (negative or not finite).

    >>> next_step(Decision("zoom", interval=(0, 1)), [], 600.0, LoopConfig(min_width_s=10)).reason
    'interval [0, 6] is narrower than 10 s'
    """
    cfg = loop_cfg if loop_cfg is not None else LoopConfig()
    duration = _check_duration(duration)
    if decision.kind == "answer":
        return Answer(decision.answer if decision.answer is not None else "")
    if decision.kind != "zoom" or decision.interval is None:
        return ForceAnswer(decision.reason or "the reply was not a readable answer or zoom")
    a, b = sorted(decision.interval)
    end_cap = int(duration)
    s = max(a - cfg.pad_s, 0)
    e = min(b + cfg.pad_s, end_cap)
    if e - s < cfg.min_width_s:
        return ForceAnswer(f"interval [{s}, {e}] is narrower than {cfg.min_width_s:g} s")
    if cfg.widen:
        width = min(cfg.widen_max_s, duration * cfg.widen_fraction)
        if e - s < width:
            mid = (s + e) / 2
            s = int(max(mid - width / 2, 0))
            e = int(min(mid + width / 2, duration))
    # Guard beyond SPEC: with min_width_s = 0 (allowed by LoopConfig) a zero-width
    # interval passes the check above and would give a slow view of 0 frames. Unreachable
    # with the SPEC default of 3 s.
    if e <= s:
        return ForceAnswer(f"interval [{s}, {e}] is empty")
    for previous in zoomed:
        overlap = iou((s, e), previous)
        if overlap > cfg.iou_stop:
            return ForceAnswer(
                f"interval [{s}, {e}] overlaps the zoomed [{previous[0]}, {previous[1]}] "
                f"(IoU {overlap:.2f} > {cfg.iou_stop:g})"
            )
    return Zoom((s, e))


def add_interval(zoomed: Sequence[tuple[int, int]], interval: tuple[int, int]) -> list[tuple[int, int]]:
    """The zoomed intervals with ``interval`` added, sorted by start (the order of the slow views).

    >>> add_interval([(300, 330)], (90, 120))
    [(90, 120), (300, 330)]
    """
    return sorted([*(tuple(iv) for iv in zoomed), tuple(interval)])


def forced_answer_intervals(zoomed: Sequence[tuple[int, int]], duration: float) -> list[tuple[int, int]]:
    """The slow-view intervals of the forced-answer turn (SPEC 3).

    Every zoomed interval, sorted; ``[(0, int(D))]`` when none was zoomed, in which case
    the caller renders the whole-video slow view (``plan_whole_video_view``, sample fps
    floored at 0.01) rather than an ordinary zoom clip.

    >>> forced_answer_intervals([], 600.7), forced_answer_intervals([(300, 330), (90, 120)], 600.7)
    ([(0, 600)], [(90, 120), (300, 330)])
    """
    duration = _check_duration(duration)
    if zoomed:
        return sorted(tuple(iv) for iv in zoomed)
    return [(0, int(duration))]


__all__ = ["Answer", "ForceAnswer", "Step", "Zoom", "add_interval", "forced_answer_intervals", "next_step"]
