"""Reading the model's reply (SPEC 3, steps 1-4): total, linear-time functions.

Every function here accepts any string (and any other object) and never raises: model
output is untrusted text, and a reply the rules cannot read is a decision too
(``"invalid"``, which sends the loop to the forced answer). No regular expression here
can backtrack catastrophically, and each function runs in time linear in the input.

>>> parse_decision("I need to zoom in on the video.\\n\\n... \\\\boxed{[100, 110]}")
Decision(kind='zoom', answer=None, interval=(100, 110), reason='zoom in on [100, 110]')
>>> parse_decision("I get the answer.\\n\\n\\\\boxed{ B }").answer
'B'
>>> parse_decision("\\\\boxed{[12.5, 30]}").kind, parse_decision("\\\\boxed{[12.5, 30]}", lenient=True).interval
('invalid', (12, 30))
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from typing import Literal

BOX_OPEN = "\\boxed{"

DecisionKind = Literal["answer", "zoom", "invalid"]

_BRACE = re.compile(r"[{}]")
# CPython's int() refuses strings of more than 4300 digits by default; a part longer than
# this (sign, underscores and slack included) is rejected before int() sees it, which
# keeps parsing linear even in a process that lifted that limit.
_MAX_NUMBER_CHARS = 4400
# Lenient numbers: an optional minus sign (only at the start or after a space, "[", "(" or
# ",", so "12-30" and "12s-30s" are ranges), digits not glued to a previous number, up to
# two ":"-separated clock fields, an optional decimal fraction. Every quantifier is
# separated by a literal, so matching cannot backtrack.
_LENIENT_NUMBER = re.compile(r"(?:(?<![^\s\[(,])-)?(?<![\d.:])\d+(?::\d+){0,2}(?:\.\d+)?")
_REASON_PREVIEW = 60  # characters of the offending box quoted in a reason


def last_boxed(text: object) -> str | None:
    """Content of the last ``\\boxed{`` up to its balancing ``}`` (or to the end when unbalanced).

    Braces inside are balanced; the content is not stripped. ``None`` when there is no box
    (or ``text`` is not a string).

    >>> last_boxed("\\\\boxed{A} then \\\\boxed{ {x} }"), last_boxed("\\\\boxed{[1, 2"), last_boxed("B")
    (' {x} ', '[1, 2', None)
    """
    if not isinstance(text, str):
        return None
    start = text.rfind(BOX_OPEN)
    if start < 0:
        return None
    begin = start + len(BOX_OPEN)
    depth = 1
    for match in _BRACE.finditer(text, begin):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            return text[begin : match.start()]
    return text[begin:]


def _strict_interval(content: str) -> tuple[int, int] | None:
    """The reference rule: ``[`` first; drop first and last character; ``int()`` each ``,`` part."""
    stripped = content.strip()
    if not stripped.startswith("["):
        return None
    values = []
    for part in stripped[1:-1].split(","):
        if len(part) > _MAX_NUMBER_CHARS and len(part.strip()) > _MAX_NUMBER_CHARS:
            return None
        try:
            values.append(int(part))
        except ValueError:  # also covers UnicodeEncodeError and the int digit limit
            return None
    if len(values) < 2:
        return None
    low, high = heapq.nsmallest(2, values)  # == sorted(values)[:2]
    return low, high


def _lenient_value(token: str) -> int | float | None:
    """Seconds of one lenient token: ``"12"``, ``"12.5"``, ``"1:05"``, ``"1:02:03.5"``."""
    if len(token) > _MAX_NUMBER_CHARS:
        return None
    sign = -1 if token.startswith("-") else 1
    fields = token.lstrip("-").split(":")
    try:
        *clock, last = fields
        seconds: int | float = float(last) if "." in last else int(last)
        for power, field in enumerate(reversed(clock), start=1):
            seconds += int(field) * 60**power
    except ValueError:
        return None
    if isinstance(seconds, float) and not math.isfinite(seconds):
        return None
    return sign * seconds


def _lenient_interval(content: str) -> tuple[int, int] | None:
    values = []
    for match in _LENIENT_NUMBER.finditer(content):
        value = _lenient_value(match.group())
        if value is None:
            return None
        values.append(value)
    if len(values) < 2:
        return None
    low, high = heapq.nsmallest(2, values)
    return math.floor(low), math.ceil(high)


def parse_interval(content: object, lenient: bool = False) -> tuple[int, int] | None:
    """A zoom box's ``(start, end)`` in whole seconds, or ``None``.

    Default (the reference rule, SPEC 3 step 4): the stripped content must start with
    ``[``; its first and last characters are dropped, the rest is split on ``,``, each part
    goes through Python's ``int()`` (so surrounding spaces, ``+``, ``_`` and non-ASCII
    digits are accepted, decimals and units are not), the values are sorted and the two
    smallest kept. Fewer than two values or any error gives ``None``. Note that an
    unclosed ``"[10, 20"`` loses its last character, as in the reference: ``(2, 10)``.

    ``lenient=True`` first tries that rule (same result whenever it succeeds), then reads
    every number in the content, bracket or not: decimals (``12.5``), negative numbers
    (``-5`` at the start or after a space, ``[``, ``(`` or ``,``; ``12-30`` is the range
    12 to 30), clock times (``1:05`` = 65 s,
    ``1:02:03`` = 3723 s) and any surrounding text or units (``[12 s, 30 s]``,
    ``from 12 to 30``). The two smallest numbers are kept; the start is rounded down and
    the end up so the interval covers what was asked. Exponents (``1e3``), ``nan`` and
    ``inf`` are never numbers; a number too long to convert gives ``None``.

    >>> parse_interval("[30, 12]"), parse_interval("[12 s, 30 s]"), parse_interval("[12 s, 30 s]", lenient=True)
    ((12, 30), None, (12, 30))
    >>> parse_interval("12-30", lenient=True), parse_interval("[12.5, 30.2]", lenient=True)
    ((12, 30), (12, 31))
    """
    if not isinstance(content, str):
        return None
    interval = _strict_interval(content)
    if interval is None and lenient:
        interval = _lenient_interval(content)
    return interval


@dataclass(frozen=True)
class Decision:
    """What one reply asks for: an answer, a zoom interval, or nothing readable.

    ``answer`` is set (stripped box content) only for ``"answer"``; ``interval`` (sorted
    whole seconds, before padding) only for ``"zoom"``; ``reason`` says why, for traces.
    """

    kind: DecisionKind
    answer: str | None = None
    interval: tuple[int, int] | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("answer", "zoom", "invalid"):
            raise ValueError(f"kind must be 'answer', 'zoom' or 'invalid', got {self.kind!r}")
        if self.interval is not None:
            if len(self.interval) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in self.interval
            ):
                raise ValueError(f"interval must be two integers, got {self.interval!r}")


def _preview(content: str) -> str:
    if len(content) <= _REASON_PREVIEW:
        return repr(content)
    return repr(content[:_REASON_PREVIEW]) + f"... ({len(content)} characters)"


def parse_decision(text: object, lenient: bool = False) -> Decision:
    """SPEC 3 steps 1-4 on one loop reply.

    1. take the last box content, stripped; 2. no box or an empty box: ``"invalid"``;
    3. content not starting with ``[``: ``"answer"``; 4. otherwise ``parse_interval``:
    ``"zoom"`` or, when it cannot be read, ``"invalid"``. ``lenient`` only changes step 4
    (answers are still told from zooms by the ``[``).

    >>> parse_decision("no box here").reason
    'no \\\\boxed{} in the reply'
    >>> parse_decision("\\\\boxed{[12 s, 30 s]}").kind
    'invalid'
    """
    box = last_boxed(text)
    if box is None:
        return Decision("invalid", reason="no \\boxed{} in the reply")
    content = box.strip()
    if not content:
        return Decision("invalid", reason="empty \\boxed{}")
    if not content.startswith("["):
        return Decision("answer", answer=content, reason="answer")
    interval = parse_interval(content, lenient=lenient)
    if interval is None:
        return Decision("invalid", reason=f"cannot read the zoom interval {_preview(content)}")
    return Decision("zoom", interval=interval, reason=f"zoom in on [{interval[0]}, {interval[1]}]")


def parse_answer(text: object) -> str:
    """The forced answer (SPEC 3): the last box content, not stripped; ``''`` without a box.

    >>> parse_answer("so \\\\boxed{ C }"), parse_answer("C")
    (' C ', '')
    """
    box = last_boxed(text)
    return "" if box is None else box


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """1-D intersection over union of two closed intervals; 0.0 when the union has no length.

    Each interval is read in sorted order; non-finite values give 0.0.

    >>> iou((0, 10), (5, 15)), iou((0, 10), (10, 20)), iou((5, 5), (5, 5))
    (0.3333333333333333, 0.0, 0.0)
    """
    try:
        a0, a1 = sorted((float(a[0]), float(a[1])))
        b0, b1 = sorted((float(b[0]), float(b[1])))
    except (TypeError, ValueError, OverflowError, IndexError):
        return 0.0
    if not all(math.isfinite(v) for v in (a0, a1, b0, b1)):
        return 0.0
    union = max(a1, b1) - min(a0, b0)
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    if not math.isfinite(union) or union <= 0:  # an infinite union: two huge values
        return 0.0
    return inter / union


__all__ = [
    "BOX_OPEN",
    "Decision",
    "DecisionKind",
    "iou",
    "last_boxed",
    "parse_answer",
    "parse_decision",
    "parse_interval",
]
