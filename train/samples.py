"""Training samples (SPEC 4) built on the same views and prompts as inference.

Every builder is a pure function of a record, the video's :class:`VideoInfo` and (where
SPEC 4 samples at random) a ``random.Random`` the caller seeds; nothing here touches
the global RNG or decodes a frame. The result is a :class:`SampleSpec`: plain data
that the trainers render with ``lover1_plugin.video.render_view`` and feed to the
processor exactly as the loop does at inference.

SFT rules (stages 1 and 2, one script), checked in this order for each record:

1. CoT sample (``cot_data``): its ``zoomin_intervals``, ``int(round())``-ed, a clip shorter
   than 5 s re-centred to ``[mid - 3, mid + 3]`` (clamped to ``[0, D]``); 32 / 24 / 16 slow
   frames per view for 1 / 2 / 3 views; the zoom instruction after the question.
2. other sample with ``zoomin_intervals``: those clips, ``int(round())``-ed, 32 frames for
   one view, 16 each for 2-3.
3. stage-1 sample with clues (``tgt``): 60% the clue intervals (:func:`clue_intervals`),
   20% the whole video as one 32-frame slow view, 20% no slow view.
4. any other sample: 90% the whole video, 10% :func:`random_intervals` (possibly none).

Views: ``SFT_VIEW_CONFIG`` (``factor = 2 if D < 120`` on the fast view only, slow views at
``256 * 28 * 28``); GRPO: ``GRPO_VIEW_CONFIG`` (``factor = 2 if D < 60`` on the fast view
only) and 16 frames per slow view.

>>> sorted(COT_SLOW_FRAMES.items()), sorted(OTHER_SLOW_FRAMES.items())
([(1, 32), (2, 24), (3, 16)], [(1, 32), (2, 16), (3, 16)])
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lover1_plugin.config import ViewConfig
from lover1_plugin.errors import ViewError
from lover1_plugin.prompts import (
    FREE_FORM_SUFFIX,
    MC_SUFFIX,
    NUMERICAL_SUFFIX,
    OCR_SUFFIX,
    TEMPORAL_GROUNDING_SUFFIX,
    ZOOM_PREFIX,
    build_conversation,
)
from lover1_plugin.video import VideoInfo, plan_fast_view, plan_slow_view, plan_whole_video_view
from lover1_plugin.views import ViewPlan

from .schema import DataError, GRPORecord, Interval, SFTRecord

logger = logging.getLogger(__name__)

SFT_VIEW_CONFIG = ViewConfig(short_video_s=120.0, factor_on_slow=False)  # SPEC 4: factor on the fast view only
GRPO_VIEW_CONFIG = ViewConfig(short_video_s=60.0, factor_on_slow=False)
MAX_SFT_TOKENS = 20_500  # stage-2 samples longer than this are dropped

COT_SLOW_FRAMES = {1: 32, 2: 24, 3: 16}  # slow frames per view, by the number of views
OTHER_SLOW_FRAMES = {1: 32, 2: 16, 3: 16}
GRPO_SLOW_FRAMES = 16

COT_MIN_SPAN_S = 5  # a CoT clip shorter than this ...
COT_HALF_SPAN_S = 3  # ... becomes [mid - 3, mid + 3]
MAX_CLUES = 3
CLUE_WIDEN_MAX_S = 5  # each side of a clue widened by randint(0, 5) s
CLUE_SHARE, CLUE_WHOLE_SHARE = 0.6, 0.2  # stage 1 with clues: 60% clues, 20% whole video, 20% no slow view
NO_CLUE_WHOLE_SHARE = 0.9  # stage 1 without clues: 90% whole video, 10% random intervals
RANDOM_MIN_SPAN_S = 16

SUFFIXES = {
    "multiple choice": MC_SUFFIX,
    "numerical": NUMERICAL_SUFFIX,
    "regression": NUMERICAL_SUFFIX,
    "free-form": FREE_FORM_SUFFIX,
    "OCR": OCR_SUFFIX,
    "temporal localization": TEMPORAL_GROUNDING_SUFFIX,
}


@dataclass(frozen=True)
class SampleSpec:
    """One model input, as plain data.

    Attributes:
        video: the video path.
        messages: the conversation from ``build_conversation`` (system, user).
        views: the views to render, in the order of the video parts: fast first, then the
            slow views sorted by start.
        target: the assistant text to learn (SFT); ``None`` for GRPO prompts.
        assistant_prefix: text forced at the start of the reply (GRPO grounding step 1).
        where: ``file#index`` of the record, for logs.
    """

    video: str
    messages: list[dict[str, Any]]
    views: tuple[ViewPlan, ...]
    target: str | None = None
    assistant_prefix: str | None = None
    where: str = ""

    @property
    def slow_labels(self) -> list[tuple[int, int]]:
        """The ``[start, end]`` labels of the slow views, in prompt order."""
        return [plan.label for plan in self.views[1:]]

    @property
    def visual_tokens(self) -> int:
        return sum(plan.visual_tokens for plan in self.views)

    def full_messages(self) -> list[dict[str, Any]]:
        """``messages`` plus the assistant turn holding ``target`` (what SFT tokenises)."""
        if self.target is None:
            return list(self.messages)
        return [*self.messages, {"role": "assistant", "content": [{"type": "text", "text": self.target}]}]


def round_intervals(intervals: Iterable[Interval]) -> list[tuple[int, int]]:
    """``int(round())`` both ends (Python rounds halves to even, as the reference did).

    >>> round_intervals([(10.4, 20.5), (3.5, 7.6)])
    [(10, 20), (4, 8)]
    """
    return [(int(round(s)), int(round(e))) for s, e in intervals]


def recentre_short(interval: Interval, duration: float) -> Interval:
    """A CoT clip shorter than 5 s becomes ``[mid - 3, mid + 3]``, clamped to ``[0, D]``.

    >>> recentre_short((10, 12), 600), recentre_short((0, 1), 600), recentre_short((10, 15), 600)
    ((8.0, 14.0), (0.0, 3.5), (10, 15))
    """
    start, end = interval
    if end - start >= COT_MIN_SPAN_S:
        return interval
    mid = (start + end) / 2
    return (max(0.0, mid - COT_HALF_SPAN_S), min(float(duration), mid + COT_HALF_SPAN_S))


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping (or touching) intervals.

    >>> merge_intervals([(30, 40), (0, 10), (5, 12), (12, 15)])
    [(0, 15), (30, 40)]
    """
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def clue_intervals(tgt: Sequence[Interval], duration: float, rng: random.Random) -> list[Interval]:
    """Stage-1 clue clips: ``int()`` both ends, merge, keep the first 3 by start, then widen
    each side independently by ``rng.randint(0, 5)`` s (start side first) and clamp to ``[0, D]``.
    """
    merged = merge_intervals((int(s), int(e)) for s, e in tgt)[:MAX_CLUES]
    widened = []
    for start, end in merged:
        start = max(0, start - rng.randint(0, CLUE_WIDEN_MAX_S))
        end = min(duration, end + rng.randint(0, CLUE_WIDEN_MAX_S))
        widened.append((start, end))
    return widened


def max_random_intervals(duration: float) -> int:
    """How many random clips a clue-less stage-1 sample may get: ``D < 30``: 1, ``< 180``: 2, else 3."""
    return 1 if duration < 30 else 2 if duration < 180 else 3


def random_intervals(duration: float, rng: random.Random) -> list[Interval]:
    """``randint(0, max_random_intervals(D))`` clips, each ``max(randint(0, D // 8), 16)`` s long,
    starting at a random whole second that keeps it inside the video (clipped to ``[0, D]``
    when the video is shorter than the clip).
    """
    clips = []
    for _ in range(rng.randint(0, max_random_intervals(duration))):
        span = max(rng.randint(0, int(duration // 8)), RANDOM_MIN_SPAN_S)
        start = rng.randint(0, max(0, int(duration - span)))
        clips.append((start, min(duration, start + span)))
    return clips


def sft_slow_intervals(record: SFTRecord, duration: float, rng: random.Random) -> list[Interval] | None:
    """The slow clips of one SFT sample, by the rules in the module docstring.

    Returns ``None`` for "the whole video as one 32-frame slow view", else the clips (maybe none).
    Draws from ``rng`` only for stage-1 samples (rules 3 and 4).
    """
    if record.cot:
        return [recentre_short(clip, duration) for clip in round_intervals(record.zoomin_intervals)]
    if record.zoomin_intervals:
        return list(round_intervals(record.zoomin_intervals))
    draw = rng.random()
    if record.tgt:
        if draw < CLUE_SHARE:
            return clue_intervals(record.tgt, duration, rng)
        return None if draw < CLUE_SHARE + CLUE_WHOLE_SHARE else []
    if draw < NO_CLUE_WHOLE_SHARE:
        return None
    return random_intervals(duration, rng)


def _plan_clips(
    info: VideoInfo,
    clips: Sequence[Interval],
    cfg: ViewConfig,
    frames: int,
    record: SFTRecord | GRPORecord,
    field: str,
    proposed: tuple[int, int] | None = None,
) -> list[ViewPlan]:
    """Slow views of the record's ``clips`` (a clip the video cannot hold is a ``DataError`` on
    ``field``) plus the model's ``proposed`` zoom (its ``ViewError`` passes through), sorted by
    start as the prompt lists them.
    """
    pairs = []
    for start, end in clips:
        try:
            pairs.append(((start, end), plan_slow_view(info, start, end, cfg, num_frames=frames)))
        except ViewError as err:
            raise DataError(
                record.source, record.index, field, f"cannot plan the clip [{start}, {end}] ({err})"
            ) from err
    if proposed is not None:
        pairs.append((proposed, plan_slow_view(info, *proposed, cfg, num_frames=frames)))
    # build_conversation sorts the labels (int seconds): order the views the same way
    return [plan for _, plan in sorted(pairs, key=lambda pair: (pair[1].label, pair[0]))]


def build_sft_sample(
    record: SFTRecord, info: VideoInfo, rng: random.Random, *, view_cfg: ViewConfig = SFT_VIEW_CONFIG
) -> SampleSpec:
    """The SFT sample of ``record`` on the video described by ``info`` (see the module rules).

    ``rng`` is only drawn from for stage-1 samples; pass one seeded per sample / epoch.
    """
    duration = info.duration
    clips = sft_slow_intervals(record, duration, rng)
    fast = plan_fast_view(info, view_cfg)
    if clips is None:  # the whole video, one 32-frame slow view (as in single-pass inference)
        whole_cfg = dataclasses.replace(view_cfg, num_slow=OTHER_SLOW_FRAMES[1])
        slow = [plan_whole_video_view(info, whole_cfg)]
    elif clips:
        frames = (COT_SLOW_FRAMES if record.cot else OTHER_SLOW_FRAMES)[len(clips)]
        field = "zoomin_intervals" if record.zoomin_intervals else "tgt" if record.tgt else "video"
        slow = _plan_clips(info, clips, view_cfg, frames, record, field)
    else:
        slow = []
    messages = build_conversation(int(duration), record.question, [p.label for p in slow], zoom_instruction=record.cot)
    return SampleSpec(record.video, messages, (fast, *slow), target=record.target, where=record.where)


def sample_tokens(spec: SampleSpec, count_text_tokens: Callable[[list[dict[str, Any]]], int]) -> int:
    """Tokens of a sample: ``count_text_tokens(spec.full_messages())`` + the planned visual tokens.

    ``count_text_tokens`` gets the chat messages (assistant turn included), e.g.
    ``lambda m: len(tokenizer.apply_chat_template(m, tokenize=True))``, which counts one
    pad token per video part; the views' tokens are added from their plans.
    """
    return count_text_tokens(spec.full_messages()) + spec.visual_tokens


def drop_overlong(
    specs: Iterable[SampleSpec],
    count_text_tokens: Callable[[list[dict[str, Any]]], int],
    max_tokens: int = MAX_SFT_TOKENS,
) -> list[SampleSpec]:
    """Keep the samples of at most ``max_tokens`` tokens (SPEC 4, stage 2); log each one dropped.

    Dropped samples are not replaced by others (the reference drew random replacements).
    """
    kept = []
    for spec in specs:
        tokens = sample_tokens(spec, count_text_tokens)
        if tokens > max_tokens:
            logger.warning("dropping %s: %d tokens > %d", spec.where or spec.video, tokens, max_tokens)
        else:
            kept.append(spec)
    return kept


def grpo_question(record: GRPORecord) -> str:
    """The stage-3 question text (the zoom instruction is added by ``build_conversation``).

    Multiple choice: ``problem + "Options:\\n" + "".join(o + "\\n" for o in options)`` + ``MC_SUFFIX``;
    other types: ``problem`` + their SPEC 2 suffix.

    >>> rec = GRPORecord("f", 0, "v.mp4", "Q?\\n", ("A. x", "B. y"), "multiple choice", "A")
    >>> grpo_question(rec)
    'Q?\\nOptions:\\nA. x\\nB. y\\n\\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer.'
    """
    if record.problem_type == "multiple choice":
        return record.problem + "Options:\n" + "".join(o + "\n" for o in record.options) + MC_SUFFIX
    return record.problem + SUFFIXES[record.problem_type]


def _grpo_spec(
    record: GRPORecord,
    info: VideoInfo,
    cfg: ViewConfig,
    *,
    zoomed: bool = True,
    proposed: tuple[int, int] | None = None,
    prefix: str | None = None,
) -> SampleSpec:
    clips = record.zoomin_intervals if zoomed else ()
    slow = _plan_clips(info, clips, cfg, GRPO_SLOW_FRAMES, record, "zoomin_intervals", proposed)
    messages = build_conversation(int(info.duration), grpo_question(record), [p.label for p in slow])
    return SampleSpec(
        record.video, messages, (plan_fast_view(info, cfg), *slow), assistant_prefix=prefix, where=record.where
    )


def build_grpo_step1(record: GRPORecord, info: VideoInfo, *, view_cfg: ViewConfig = GRPO_VIEW_CONFIG) -> SampleSpec:
    """The first decision of a rollout.

    QA sample: the sample's ``zoomin_intervals`` as slow views. Grounding sample: no slow
    view, and the reply forced to open with ``ZOOM_PREFIX``.
    """
    if record.is_grounding:
        return _grpo_spec(record, info, view_cfg, zoomed=False, prefix=ZOOM_PREFIX)
    return _grpo_spec(record, info, view_cfg)


def build_grpo_step2(
    record: GRPORecord,
    info: VideoInfo,
    zoom: tuple[int, int] | None = None,
    *,
    view_cfg: ViewConfig = GRPO_VIEW_CONFIG,
) -> SampleSpec:
    """The second decision of a rollout.

    QA sample (after a step-1 zoom): ``zoom`` is the step-1 interval when it passed the
    format check (``rewards.valid_zoom``); it is added as given, no padding or widening,
    to the sample's ``zoomin_intervals``. ``zoom=None`` (an invalid zoom) gives step 2 no
    slow view at all. A valid zoom can still hold no frame (``[D, D + 1]``): that raises
    ``ViewError``, which the trainer treats as a video that failed to decode (masked).

    Grounding sample: the sample's own ``zoomin_intervals``; ``zoom`` must be ``None``
    (the step-1 proposal is not shown).
    """
    if record.is_grounding:
        if zoom is not None:
            raise ValueError(f"grounding step 2 uses {record.where}'s own zoomin_intervals; pass zoom=None")
        return _grpo_spec(record, info, view_cfg)
    if zoom is None:
        return _grpo_spec(record, info, view_cfg, zoomed=False)
    return _grpo_spec(record, info, view_cfg, proposed=zoom)


__all__ = [
    "COT_SLOW_FRAMES",
    "GRPO_SLOW_FRAMES",
    "GRPO_VIEW_CONFIG",
    "MAX_SFT_TOKENS",
    "OTHER_SLOW_FRAMES",
    "SFT_VIEW_CONFIG",
    "SUFFIXES",
    "SampleSpec",
    "build_grpo_step1",
    "build_grpo_step2",
    "build_sft_sample",
    "clue_intervals",
    "drop_overlong",
    "grpo_question",
    "max_random_intervals",
    "merge_intervals",
    "random_intervals",
    "recentre_short",
    "round_intervals",
    "sample_tokens",
    "sft_slow_intervals",
]
