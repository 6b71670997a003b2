"""Stage-3 (decoupled GRPO) rewards and advantages, SPEC 4.

A rollout is two single-step decisions. Each reply is read by its opening:
``ANSWER_PREFIX`` ("I get the answer.\\n\\n") makes it an answer, ``ZOOM_PREFIX``
("I need to zoom in on the video.\\n\\n") a zoom, anything else is "other". Pass whole
replies, a forced prefix included (grounding step 1 is generated after ``ZOOM_PREFIX``).

Format (1 or 0):
- zoom: 0 when its last box does not parse (``decisions.parse_interval``, the reference
  rule, as given: no padding, no widening) or the interval is outside ``[0, D + 1]``,
  longer than ``min(D / 2, 60)`` s, shorter than 1 s, or has IoU > 0.7 with an interval
  already zoomed; else 1.
- answer: 1 with a box, 0 without.
- other: 1.

Accuracy (0 when the format is 0):
- QA: the first character of the first box, stripped, equals the answer (an answer of
  more than one character must equal the whole stripped box). At step 1 the reply must
  be an answer; a valid step-1 zoom earns the accuracy of the step-2 reply it led to.
- grounding: the zoom interval overlaps (IoU > 0) any ``tgt`` interval, at either step.

Reward = accuracy + format. A QA rollout is masked (left out of the loss and of the
group statistics) when its step 2 zooms again or its video failed to decode.

>>> qa_reward("I get the answer.\\n\\nIt is \\\\boxed{B}.", None, answer="B", duration=600)
Reward(accuracy=1.0, format=1.0, masked=False, reason='answer')
>>> group_advantages([2.0, 0.0, None], [False, False, True])
[0.7070567847218314, -0.7070567847218314, None]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lover1_plugin.decisions import BOX_OPEN, iou, last_boxed, parse_interval
from lover1_plugin.prompts import ANSWER_PREFIX, ZOOM_PREFIX

from .schema import Interval

ReplyKind = Literal["answer", "zoom", "other"]
Completion = str | list[dict[str, Any]] | dict[str, Any]

MIN_ZOOM_S = 1.0  # zoom intervals shorter than this are rejected
MAX_ZOOM_S = 60.0  # ... and longer than min(D / 2, this)
ZOOM_SLACK_S = 1.0  # zoom intervals may end up to D + 1
MAX_ZOOM_IOU = 0.7  # a zoom overlapping an already-zoomed interval more than this is rejected
ADV_EPS = 1e-4  # added to the group std


@dataclass(frozen=True)
class Reward:
    """One step's (or one rollout's) reward terms; ``reason`` explains them, for logs."""

    accuracy: float
    format: float
    masked: bool = False
    reason: str = ""

    @property
    def total(self) -> float:
        """``accuracy + format``."""
        return self.accuracy + self.format


def completion_text(completion: Completion) -> str:
    """The reply text of a TRL completion: a string, a message, or a list of messages (last one).

    >>> completion_text([{"role": "assistant", "content": "hi"}])
    'hi'
    """
    if isinstance(completion, list):
        completion = completion[-1] if completion else ""
    if isinstance(completion, dict):
        completion = completion.get("content", "")
    if isinstance(completion, list):  # content parts
        completion = "".join(p.get("text", "") for p in completion if isinstance(p, dict))
    return completion if isinstance(completion, str) else ""


def reply_kind(text: str) -> ReplyKind:
    """``"answer"``, ``"zoom"`` or ``"other"``, by the reply's opening."""
    if text.startswith(ANSWER_PREFIX):
        return "answer"
    if text.startswith(ZOOM_PREFIX):
        return "zoom"
    return "other"


def first_box(text: str) -> str | None:
    """Content of the first ``\\boxed{`` (``decisions.last_boxed`` on the text cut before the second).

    >>> first_box("\\\\boxed{A} or \\\\boxed{B}"), first_box("none")
    ('A', None)
    """
    first = text.find(BOX_OPEN)
    if first < 0:
        return None
    second = text.find(BOX_OPEN, first + len(BOX_OPEN))
    return last_boxed(text if second < 0 else text[:second])


def _check_zoom(text: str, duration: float, zoomed: Sequence[Interval]) -> tuple[tuple[int, int] | None, str | None]:
    """``(interval, None)`` for a zoom box that passes the format check, else ``(None, reason)``."""
    interval = parse_interval(last_boxed(text))
    if interval is None:
        return None, "zoom box does not parse"
    start, end = interval
    if start < 0 or end > duration + ZOOM_SLACK_S:
        return None, f"[{start}, {end}] is outside [0, D + 1]"
    if end - start > min(duration / 2, MAX_ZOOM_S):
        return None, f"longer than min(D / 2, {MAX_ZOOM_S:g}) s"
    if end - start < MIN_ZOOM_S:
        return None, f"shorter than {MIN_ZOOM_S:g} s"
    if any(iou(interval, done) > MAX_ZOOM_IOU for done in zoomed):
        return None, f"IoU > {MAX_ZOOM_IOU} with an interval already zoomed"
    return interval, None


def zoom_rejection(text: str, duration: float, zoomed: Sequence[Interval] = ()) -> str | None:
    """Why the zoom box of a reply fails the format check, or ``None`` when it passes.

    >>> zoom_rejection("\\\\boxed{[10, 40]}", 600), zoom_rejection("\\\\boxed{[10, 10]}", 600)
    (None, 'shorter than 1 s')
    """
    return _check_zoom(text, duration, zoomed)[1]


def valid_zoom(text: str, duration: float, zoomed: Sequence[Interval] = ()) -> tuple[int, int] | None:
    """The interval of a zoom reply that passes the format check, as given; else ``None``.

    This is what step 2 of a QA rollout adds to its context (``samples.build_grpo_step2``).
    """
    return _check_zoom(text, duration, zoomed)[0] if reply_kind(text) == "zoom" else None


def format_score(text: str, duration: float, zoomed: Sequence[Interval] = ()) -> tuple[float, str]:
    """The format term of one reply and the reason for it.

    >>> format_score("I get the answer.\\n\\nB", 600)
    (0.0, 'answer without a box')
    """
    kind = reply_kind(text)
    if kind == "zoom":
        rejection = zoom_rejection(text, duration, zoomed)
        return (0.0, rejection) if rejection else (1.0, "zoom")
    if kind == "answer":
        return (1.0, "answer") if last_boxed(text) is not None else (0.0, "answer without a box")
    return 1.0, "neither opening"


def answer_matches(text: str, answer: str) -> bool:
    """The first character of the first box (stripped) equals a one-character answer;
    a longer answer must equal the whole stripped box.

    >>> answer_matches("\\\\boxed{ B. a dog }", "B"), answer_matches("\\\\boxed{42}", "42"), answer_matches("B", "B")
    (True, True, False)
    """
    box = first_box(text)
    if box is None or not answer:
        return False
    box = box.strip()
    return box[:1] == answer if len(answer) == 1 else box == answer


def is_masked(step2: str | None, decode_failed: bool = False) -> bool:
    """A QA rollout is left out when its video failed to decode or its step 2 zooms again."""
    return decode_failed or (step2 is not None and reply_kind(step2) == "zoom")


def qa_reward(
    step1: str,
    step2: str | None,
    *,
    answer: str,
    duration: float,
    zoomed: Sequence[Interval] = (),
    decode_failed: bool = False,
) -> Reward:
    """Reward of a QA rollout (it is trained on step 1's terms; step 2 shares its advantage).

    ``zoomed`` are the sample's ``zoomin_intervals``; ``step2`` is the reply after a step-1
    zoom (``None`` when step 1 answered). A valid zoom with no step-2 reply is a caller error.
    """
    masked = is_masked(step2, decode_failed)
    fmt, reason = format_score(step1, duration, zoomed)
    kind = reply_kind(step1)
    if fmt == 0.0 or kind == "other":
        return Reward(0.0, fmt, masked, reason)
    if kind == "answer":
        return Reward(float(answer_matches(step1, answer)), 1.0, masked, "answer")
    if step2 is None:
        raise ValueError("a valid step-1 zoom needs its step-2 reply (step2=None)")
    reason = "step 2 zoomed again" if masked else "zoom, then step-2 answer"
    return Reward(float(answer_matches(step2, answer)), 1.0, masked, reason)


def grounding_reward(
    reply: str,
    *,
    tgt: Sequence[Interval],
    duration: float,
    zoomed: Sequence[Interval] = (),
    decode_failed: bool = False,
) -> Reward:
    """Reward of one grounding step: accuracy 1 when a valid zoom overlaps any ``tgt`` interval.

    ``zoomed`` is what that step saw: nothing at step 1, the sample's ``zoomin_intervals`` at step 2.
    """
    fmt, reason = format_score(reply, duration, zoomed)
    interval = valid_zoom(reply, duration, zoomed)
    hit = interval is not None and any(iou(interval, t) > 0 for t in tgt)
    return Reward(float(hit), fmt, decode_failed, reason)


def _per_completion(values: Any, n: int, name: str) -> list[Any]:
    """A TRL keyword column (a list, one value per completion), or one plain value for all."""
    if isinstance(values, (list, tuple)):
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} values for {n} completions")
        return list(values)
    return [values] * n


def _zoomed_column(zoomed: Sequence[Sequence[Interval]] | None, n: int) -> list[Sequence[Interval]]:
    return [()] * n if zoomed is None else _per_completion(zoomed, n, "zoomed")


def format_reward(
    completions: Sequence[Completion],
    duration: float | Sequence[float],
    zoomed: Sequence[Sequence[Interval]] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: the format term of each completion.

    ``duration`` (seconds): one value per completion, or one for all; ``zoomed``: the
    intervals already zoomed, one list per completion (``None``: nothing zoomed).

    >>> format_reward(["I get the answer.\\n\\n\\\\boxed{A}", "I get the answer.\\n\\nA", "Hmm."], duration=600)
    [1.0, 0.0, 1.0]
    """
    n = len(completions)
    columns = zip(completions, _per_completion(duration, n, "duration"), _zoomed_column(zoomed, n), strict=True)
    return [format_score(completion_text(c), d, z)[0] for c, d, z in columns]


def accuracy_reward(
    completions: Sequence[Completion],
    answer: str | Sequence[str],
    duration: float | Sequence[float],
    zoomed: Sequence[Sequence[Interval]] | None = None,
    step2_completions: Sequence[Completion | None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: QA step-1 accuracy (a valid zoom scores its step-2 reply).

    ``step2_completions``: the step-2 reply of each rollout (``None`` where step 1 answered).

    >>> accuracy_reward(["I get the answer.\\n\\n\\\\boxed{A}", "\\\\boxed{A}"], answer="A", duration=600)
    [1.0, 0.0]
    """
    n = len(completions)
    step2s = [None] * n if step2_completions is None else _per_completion(step2_completions, n, "step2_completions")
    columns = zip(
        completions,
        step2s,
        _per_completion(answer, n, "answer"),
        _per_completion(duration, n, "duration"),
        _zoomed_column(zoomed, n),
        strict=True,
    )
    return [
        qa_reward(
            completion_text(c), s2 if s2 is None else completion_text(s2), answer=a, duration=d, zoomed=z
        ).accuracy
        for c, s2, a, d, z in columns
    ]


def grounding_accuracy_reward(
    completions: Sequence[Completion],
    tgt: Sequence[Sequence[Interval]],
    duration: float | Sequence[float],
    zoomed: Sequence[Sequence[Interval]] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: grounding accuracy (a valid zoom overlapping any ``tgt`` interval).

    ``tgt``: the clue intervals, one list per completion.
    """
    n = len(completions)
    columns = zip(
        completions,
        _per_completion(tgt, n, "tgt"),
        _per_completion(duration, n, "duration"),
        _zoomed_column(zoomed, n),
        strict=True,
    )
    return [grounding_reward(completion_text(c), tgt=t, duration=d, zoomed=z).accuracy for c, t, d, z in columns]


def group_advantages(rewards: Sequence[float | None], masked: Sequence[bool]) -> list[float | None]:
    """Advantages of one group: ``(r - mean) / (std + 1e-4)`` over the unmasked rollouts.

    ``std`` is the sample standard deviation (``n - 1``, as ``torch.std``), taken as 1 when
    only one rollout is unmasked. Masked rollouts (``masked[i]`` true) get ``None``; their
    rewards are ignored (and may be ``None``).

    >>> group_advantages([2.0, 1.0, 1.0, 0.0], [False] * 4)
    [1.2245948897605123, 0.0, 0.0, -1.2245948897605123]
    >>> group_advantages([2.0, 1.0], [False, True])
    [0.0, None]
    """
    if len(rewards) != len(masked):
        raise ValueError(f"{len(rewards)} rewards but {len(masked)} mask entries")
    kept = [r for r, m in zip(rewards, masked, strict=True) if not m]
    if any(r is None for r in kept):
        raise ValueError("an unmasked rollout has no reward")
    if not kept:
        return [None] * len(rewards)
    mean = sum(kept) / len(kept)
    std = math.sqrt(sum((r - mean) ** 2 for r in kept) / (len(kept) - 1)) if len(kept) > 1 else 1.0
    return [None if m else (r - mean) / (std + ADV_EPS) for r, m in zip(rewards, masked, strict=True)]


__all__ = [
    "Reward",
    "accuracy_reward",
    "answer_matches",
    "completion_text",
    "first_box",
    "format_reward",
    "format_score",
    "grounding_accuracy_reward",
    "grounding_reward",
    "group_advantages",
    "is_masked",
    "qa_reward",
    "reply_kind",
    "valid_zoom",
    "zoom_rejection",
]
