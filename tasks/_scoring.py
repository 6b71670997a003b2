"""Answer extraction and aggregation for the ``love_r1_*`` lmms-eval tasks (pure functions).

Two families of rules live side by side (SPEC 3c):

- **reference** rules: how the LOVE-R1 authors' evaluation (a VLMEvalKit fork) turned an
  answer text into a letter. The paper's Table 1 was computed with them, so the
  ``reference_acc*`` metrics reproduce it like for like.
- **official** rules that lmms-eval's built-in tasks apply and that need no lmms-eval
  import (LongVideoBench's). The other official extractors are imported from lmms-eval
  itself in ``utils.py``, so their numbers match the built-in tasks exactly.

Per-sample metric values are small dicts; a value with a ``"score"`` (0 or 1) takes part
in an accuracy, a value without one (a document outside a subset metric such as
``reference_acc_long``) is skipped. That is also the convention lmms-eval's CLT standard
error uses, so subset metrics get a standard error over their own documents only.

>>> reference_letter("The answer is C. The man leaves.")
'C'
>>> mlvu_reference_letter("(B) a red car")
'B'
>>> mvbench_reference_correct("(A) yes", "A"), mvbench_reference_correct("", "A")
(True, False)
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Answer openings removed before the first letter is searched, in this order.
ANSWER_PREFIXES: tuple[str, ...] = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is",
    "The correct option is",
    "Best answer:",
    "Best option:",
    "Answer:",
    "Option:",
)
# lmms-eval's built-in LongVideoBench scorer removes the first eight only.
LONGVIDEOBENCH_OFFICIAL_PREFIXES: tuple[str, ...] = ANSWER_PREFIXES[:8]


def split_prediction(raw: Any) -> tuple[str, Any]:
    """Split what the model returned into ``(answer_text, trace)``.

    The love_r1 model may return a JSON object ``{"answer": str, "trace": ...}`` (as a
    string, or already decoded); then the answer is scored and the trace is kept for the
    logs. Anything else is the answer itself, with no trace.

    >>> split_prediction('{"answer": "B", "trace": {"rounds": 2}}')
    ('B', {'rounds': 2})
    >>> split_prediction("B")
    ('B', None)
    >>> split_prediction('{"answer": "B"}')  # both keys are needed
    ('{"answer": "B"}', None)
    """
    obj = raw
    if isinstance(raw, str):
        if not raw.lstrip().startswith("{"):
            return raw, None
        try:
            obj = json.loads(raw)
        except ValueError:
            return raw, None
    if isinstance(obj, Mapping) and "answer" in obj and "trace" in obj and isinstance(obj["answer"], str):
        return obj["answer"], obj["trace"]
    if raw is None:
        return "", None
    return raw if isinstance(raw, str) else json.dumps(raw), None


def strip_answer_prefixes(text: str, prefixes: Sequence[str] = ANSWER_PREFIXES) -> str:
    """Remove every occurrence of each answer opening, in order.

    >>> strip_answer_prefixes("Best answer: C")
    ' C'
    """
    for prefix in prefixes:
        text = text.replace(prefix, "")
    return text


def reference_letter(prediction: str, letters: str = "ABCD") -> str:
    """The reference's letter for Video-MME / LVBench (``ABCD``) and LongVideoBench (``ABCDE``).

    Strip the text, remove the answer openings, take the first capital letter among
    ``letters``; ``""`` when there is none. (The reference also returns ``""`` for texts of
    more than 10 words without such a letter: the same outcome, so one rule covers both.)

    >>> reference_letter("  D. The third one")
    'D'
    >>> reference_letter("Answer: B")  # "Answer:" itself contains a capital A
    'B'
    >>> reference_letter("E", "ABCD"), reference_letter("E", "ABCDE")
    ('', 'E')
    >>> reference_letter("the man walks out of the room and closes the door behind him slowly")
    ''
    """
    match = re.search(f"[{re.escape(letters)}]", strip_answer_prefixes(prediction.strip()))
    return match.group(0) if match else ""


def mlvu_reference_letter(prediction: str) -> str:
    """The reference's MLVU extraction: the character before the first ``)``, else the whole text.

    The text is stripped first; a ``)`` in first position gives ``""``.

    >>> mlvu_reference_letter("C) a dog"), mlvu_reference_letter(" B "), mlvu_reference_letter("B. a dog")
    ('C', 'B', 'B. a dog')
    """
    text = prediction.strip()
    index = text.find(")")
    if index < 0:
        return text
    return text[index - 1 : index] if index > 0 else ""


def mvbench_reference_option(prediction: str) -> str:
    """The reference's MVBench token: the first whitespace-separated token, lowercased, ``.`` removed.

    >>> mvbench_reference_option("(B). The cup"), mvbench_reference_option("  "), mvbench_reference_option(".")
    ('(b)', '', '')
    """
    tokens = prediction.lower().split()
    return tokens[0].replace(".", "") if tokens else ""


def mvbench_reference_correct(prediction: str, answer_letter: str) -> bool:
    """Whether the reference counts ``prediction`` right: its token is a substring of ``"(x)"``.

    Quirk fixed here (SPEC 3c): the reference counted an empty token (an empty prediction)
    as right, because ``"" in "(a)"``; we count it wrong and report how many there were.

    >>> [mvbench_reference_correct(p, "A") for p in ("A", "a.", "(A)", "A) yes", "B", "", "apple")]
    [True, True, True, True, False, False, False]
    """
    option = mvbench_reference_option(prediction)
    return bool(option) and option in f"({answer_letter.lower()})"


def longvideobench_official_letter(prediction: str, num_choices: int, seed: str) -> str:
    """lmms-eval's LongVideoBench extraction, with its random fallback made reproducible.

    Like :func:`reference_letter` with ``ABCDE`` (but without the ``Answer:`` / ``Option:``
    openings); where that finds nothing, the built-in task picks a random choice, as the
    LongVideoBench authors did. We seed that choice with ``seed`` (the document id), so a
    rerun gives the same number.

    >>> longvideobench_official_letter("E", 5, "q1")
    'E'
    >>> longvideobench_official_letter("no idea", 4, "q1") == longvideobench_official_letter("???", 4, "q1")
    True
    """
    text = strip_answer_prefixes(prediction.strip(), LONGVIDEOBENCH_OFFICIAL_PREFIXES)
    match = re.search("[ABCDE]", text)
    if match:
        return match.group(0)
    if num_choices < 1:
        raise ValueError(f"num_choices must be >= 1, got {num_choices}")
    return random.Random(seed).choice("ABCDE"[:num_choices])


# ---------------------------------------------------------------------------------------
# Aggregation


def scored(items: Iterable[Any]) -> list[float]:
    """The ``"score"`` of every item that has one (dicts; plain numbers count as scores).

    >>> scored([{"score": 1}, {}, {"score": 0.0}, 1])
    [1.0, 0.0, 1.0]
    """
    scores = []
    for item in items:
        if isinstance(item, Mapping):
            if "score" in item:
                scores.append(float(item["score"]))
        elif isinstance(item, (int, float)):
            scores.append(float(item))
    return scores


def accuracy(items: Iterable[Any], *, percent: bool = True) -> float | None:
    """Mean score of the items that carry one; ``None`` (lmms-eval prints N/A) when none does.

    >>> accuracy([{"score": 1}, {"score": 0}, {}]), accuracy([{"score": 1}], percent=False)
    (50.0, 1.0)
    >>> accuracy([{}]) is None
    True
    """
    scores = scored(items)
    if not scores:
        return None
    mean = sum(scores) / len(scores)
    return 100.0 * mean if percent else mean


def mean_over_groups(items: Iterable[Any], group_key: str, *, exclude: Sequence[str] = ()) -> float | None:
    """Mean of the per-group accuracies (in %), groups taken from ``item[group_key]``.

    Groups in ``exclude`` are left out; groups with no documents do not count (lmms-eval's
    built-in MLVU counts an absent task type as 0; on the full benchmark both agree).

    >>> items = [{"task_type": "count", "score": 1}, {"task_type": "order", "score": 0},
    ...          {"task_type": "count", "score": 0}]
    >>> mean_over_groups(items, "task_type"), mean_over_groups(items, "task_type", exclude=["order"])
    (25.0, 50.0)
    """
    groups: dict[str, list[float]] = {}
    for item in items:
        if isinstance(item, Mapping) and "score" in item and item.get(group_key) not in exclude:
            groups.setdefault(str(item.get(group_key)), []).append(float(item["score"]))
    if not groups:
        return None
    return 100.0 * sum(sum(s) / len(s) for s in groups.values()) / len(groups)


def answered_accuracy(items: Iterable[Any]) -> float:
    """Accuracy (in %) over the items whose prediction is not empty (lmms-eval's MVBench rule).

    >>> answered_accuracy([{"pred_answer": "", "score": 0}, {"pred_answer": "A", "score": 1}])
    100.0
    """
    answered = [item for item in items if isinstance(item, Mapping) and item.get("pred_answer", "") != ""]
    return accuracy(answered) or 0.0


def intervals_overlap(intervals: Iterable[Sequence[float]], span: Sequence[float]) -> bool:
    """Whether any ``[start, end]`` interval overlaps ``span`` (touching ends do not count).

    >>> intervals_overlap([[0, 10], [40, 60]], [55, 70]), intervals_overlap([[0, 10]], [10, 20])
    (True, False)
    """
    lo, hi = float(span[0]), float(span[1])
    for interval in intervals:
        try:
            start, end = float(interval[0]), float(interval[1])
        except (TypeError, ValueError, IndexError):
            continue
        if min(end, hi) > max(start, lo):
            return True
    return False


__all__ = [
    "ANSWER_PREFIXES",
    "LONGVIDEOBENCH_OFFICIAL_PREFIXES",
    "accuracy",
    "answered_accuracy",
    "intervals_overlap",
    "longvideobench_official_letter",
    "mean_over_groups",
    "mlvu_reference_letter",
    "mvbench_reference_correct",
    "mvbench_reference_option",
    "reference_letter",
    "scored",
    "split_prediction",
    "strip_answer_prefixes",
]
