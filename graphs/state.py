"""State of the LOVE-R1 graph: plain, serialisable data only (no tensors, images or models).

Views are never stored here; nodes re-plan them from the video path and the intervals
(plans are pure and cheap) and fetch the pixels from the context's view cache.
"""

from __future__ import annotations

from typing import Literal

from typing_extensions import NotRequired, Required, TypedDict


class LoveR1Input(TypedDict, total=False):
    """What a caller provides."""

    video: Required[str]
    """Path of the video file."""
    question: Required[str]
    """The question as the benchmark asks it (without options)."""
    options: NotRequired[list[str]]
    """Candidate answers, e.g. ``["A. red", "B. blue"]`` (Video-MME style) or bare texts."""
    preset: NotRequired[str]
    """Benchmark preset name (``default``, ``videomme``, ``mlvu``, ``longvideobench``, ``lvbench``, ``mvbench``)."""
    overrides: NotRequired[dict]
    """ViewConfig / LoopConfig settings that replace the preset's, e.g. ``{"num_fast": 256}``."""
    question_text: NotRequired[str]
    """An already formatted question (SPEC 2), used verbatim instead of ``question`` + ``options``."""


class RoundRecord(TypedDict, total=False):
    """One reasoning turn of the loop."""

    round: int
    raw: str
    decision: Literal["answer", "zoom", "invalid"]
    reason: str
    box: str | None
    answer: str | None
    proposal: list[int] | None
    edited_proposal: list[int] | None
    interval: list[int] | None
    outcome: str


class FinalRecord(TypedDict, total=False):
    """The turn that produced the answer, when it was not a direct answer of the loop."""

    raw: str
    forced: bool
    reason: str
    intervals: list[list[int]]


class ErrorRecord(TypedDict):
    node: str
    type: str
    message: str


class LoveR1Output(TypedDict, total=False):
    """What a caller reads back."""

    answer: str
    forced: bool
    rounds: list[RoundRecord]
    intervals: list[list[int]]
    final: FinalRecord
    duration: float
    fast_view: dict
    errors: list[ErrorRecord]


class LoveR1State(LoveR1Input, LoveR1Output, total=False):
    """The full state: input, output and the loop's bookkeeping."""

    round: int
    proposal: list[int] | None
    status: Literal["overview", "answer", "invalid", "zoom", "zoomed", "force", "error", "done"]
    force_reason: str


__all__ = ["ErrorRecord", "FinalRecord", "LoveR1Input", "LoveR1Output", "LoveR1State", "RoundRecord"]
