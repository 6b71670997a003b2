"""Training records (SPEC 4) as typed dataclasses, and their readers.

Two record kinds, read from JSON (a list of objects) or JSONL (one object a line):

SFT records (stages 1 and 2, one script)::

    {"video": "clips/a.mp4",
     "messages": [{"role": "user", "content": "<video>\\nWhat is on the sign?"},
                  {"role": "assistant", "content": "I get the answer.\\n\\n... \\\\boxed{B}"}],
     "zoomin_intervals": [[100, 130]],   # optional: clips already zoomed (stage 2)
     "cot_data": {...},                  # optional: present and non-empty on zoom-in CoT samples
     "tgt": [[102.4, 118.9]]}            # optional: clue intervals (stage 1)

GRPO records (stage 3)::

    {"path": "clips/a.mp4", "problem": "What is on the sign?\\n", "options": ["A. a cat", "B. a dog"],
     "problem_type": "multiple choice", "solution": "<answer>B</answer>",
     "zoomin_intervals": [[100, 130]], "tgt": [[102, 118]]}   # tgt only on grounding samples

Every validation error is a :class:`DataError` naming the file, the record index
(0-based) and the field:

>>> try:
...     parse_grpo_record({"path": "a.mp4", "problem": "Q", "problem_type": "numerical",
...                        "solution": "42"}, source="rl.jsonl", index=7)
... except DataError as err:
...     print(err)
rl.jsonl: record 7: field 'solution': must read '<answer>X</answer>', got '42'
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lover1_plugin.errors import Lover1Error
from lover1_plugin.prompts import ZOOM_INSTRUCTION

Interval = tuple[float, float]
R = TypeVar("R")

DATA_VIDEO_MARKER = "<video>"  # LLaVA-style marker in user texts; the views are placed by build_conversation
_SOLUTION = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

# Canonical GRPO problem types, and the spellings the data sets in the wild use for them.
PROBLEM_TYPES: tuple[str, ...] = (
    "multiple choice",
    "numerical",
    "regression",
    "free-form",
    "OCR",
    "temporal localization",
)
_PROBLEM_TYPE_ALIASES: Mapping[str, str] = {
    "multiple choice": "multiple choice",
    "multiple_choice": "multiple choice",
    "mc": "multiple choice",
    "numerical": "numerical",
    "regression": "regression",
    "free-form": "free-form",
    "free form": "free-form",
    "free_form": "free-form",
    "ocr": "OCR",
    "temporal localization": "temporal localization",
    "temporal localisation": "temporal localization",
    "temporal grounding": "temporal localization",
}


class DataError(Lover1Error, ValueError):
    """A training file or record is malformed; says which file, record and field."""

    def __init__(self, source: str, index: int | None, field: str | None, problem: str) -> None:
        self.source = str(source)
        self.index = index
        self.field = field
        where = [self.source]
        if index is not None:
            where.append(f"record {index}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(": ".join(where + [problem]))


@dataclass(frozen=True)
class SFTRecord:
    """One stage-1/stage-2 SFT sample.

    Attributes:
        source, index: where the record came from (file, 0-based record index).
        video: video path (joined to ``video_root`` when relative and one was given).
        question: the user text, ``<video>`` placeholders removed, whitespace stripped.
        target: the assistant turn (the answer, or the CoT text on stage-2 samples).
        zoomin_intervals: clips already zoomed, as in the data (rounded when built).
        cot: whether this is a zoom-in CoT sample (``cot_data`` present and non-empty).
        tgt: clue intervals (stage 1), as in the data (truncated when built).
    """

    source: str
    index: int
    video: str
    question: str
    target: str
    zoomin_intervals: tuple[Interval, ...] = ()
    cot: bool = False
    tgt: tuple[Interval, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.source}#{self.index}"


@dataclass(frozen=True)
class GRPORecord:
    """One stage-3 GRPO sample.

    Attributes:
        source, index: where the record came from (file, 0-based record index).
        video: the ``path`` field (joined to ``video_root`` when relative and one was given).
        problem, options, problem_type: the question (``problem_type`` canonical, see
            :data:`PROBLEM_TYPES`; ``options`` empty unless multiple choice).
        answer: the text inside ``<answer>...</answer>`` of ``solution``, stripped
            (``""`` for grounding samples given without a solution).
        zoomin_intervals: clips already zoomed, as given.
        tgt: clue intervals; ``None`` on QA samples, set on grounding samples.
    """

    source: str
    index: int
    video: str
    problem: str
    options: tuple[str, ...]
    problem_type: str
    answer: str
    zoomin_intervals: tuple[Interval, ...] = ()
    tgt: tuple[Interval, ...] | None = None

    @property
    def is_grounding(self) -> bool:
        return self.tgt is not None

    @property
    def where(self) -> str:
        return f"{self.source}#{self.index}"


class _Fields:
    """Typed field access on one raw record; every failure names file, record and field."""

    def __init__(self, raw: Any, source: str, index: int) -> None:
        if not isinstance(raw, Mapping):
            raise DataError(source, index, None, f"a record must be a JSON object, got {type(raw).__name__}")
        self.raw, self.source, self.index = raw, source, index

    def error(self, field: str, problem: str) -> DataError:
        return DataError(self.source, self.index, field, problem)

    def string(self, field: str, *, required: bool = True) -> str | None:
        value = self.raw.get(field)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            raise self.error(field, f"must be a non-empty string, got {value!r}")
        return value

    def intervals(self, field: str, *, single_pair: bool = False) -> tuple[Interval, ...] | None:
        """``[[s, e], ...]`` (or one ``[s, e]`` when ``single_pair``) -> float pairs, in the given order."""
        value = self.raw.get(field)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(field, f"must be a list of [start, end] pairs, got {value!r}")
        if single_pair and len(value) == 2 and all(_is_number(v) for v in value):
            value = [value]
        pairs = []
        for pos, pair in enumerate(value):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_number(v) for v in pair)):
                raise self.error(field, f"item {pos} must be a [start, end] pair of numbers, got {pair!r}")
            start, end = float(pair[0]), float(pair[1])
            if start < 0 or end < start:
                raise self.error(field, f"item {pos} must satisfy 0 <= start <= end, got {pair!r}")
            pairs.append((start, end))
        return tuple(pairs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _resolve(video: str, video_root: str | os.PathLike | None) -> str:
    if video_root is None or os.path.isabs(video):
        return video
    return os.path.join(video_root, video)


def _message_text(content: Any) -> str | None:
    """Text of a chat message: a string, or the ``text`` parts of a content list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    return None


def _question_and_target(fields: _Fields) -> tuple[str, str]:
    """``messages``: an optional system turn (ignored: SYSTEM_PROMPT is fixed), one user, one assistant."""
    messages = fields.raw.get("messages")
    if not isinstance(messages, list):
        raise fields.error("messages", f"must be a list of chat messages, got {messages!r}")
    turns = [m for m in messages if not (isinstance(m, Mapping) and m.get("role") == "system")]
    roles = [m.get("role") if isinstance(m, Mapping) else None for m in turns]
    if roles != ["user", "assistant"]:
        raise fields.error("messages", f"must hold one user turn then one assistant turn, got roles {roles}")
    question, target = (_message_text(m.get("content")) for m in turns)
    if question is None or target is None:
        raise fields.error("messages", "content must be a string or a list of {'type': 'text', 'text': ...} parts")
    question = question.replace(DATA_VIDEO_MARKER, "").strip()
    if not question:
        raise fields.error("messages", "the user turn has no question text")
    if not target.strip():
        raise fields.error("messages", "the assistant turn is empty")
    return question, target


def parse_sft_record(
    raw: Any, *, source: str = "<memory>", index: int = 0, video_root: str | os.PathLike | None = None
) -> SFTRecord:
    """Validate one SFT record (see the module docstring for the layout)."""
    fields = _Fields(raw, source, index)
    video = fields.string("video")
    question, target = _question_and_target(fields)
    zoomed = fields.intervals("zoomin_intervals") or ()
    if len(zoomed) > 3:
        raise fields.error("zoomin_intervals", f"at most 3 zoomed clips are supported, got {len(zoomed)}")
    cot = bool(raw.get("cot_data"))
    if cot and ZOOM_INSTRUCTION in question:
        raise fields.error("messages", "CoT user text already holds the zoom instruction; the builder appends it")
    return SFTRecord(
        source=source,
        index=index,
        video=_resolve(video, video_root),
        question=question,
        target=target,
        zoomin_intervals=zoomed,
        cot=cot,
        tgt=fields.intervals("tgt", single_pair=True) or (),
    )


def parse_grpo_record(
    raw: Any, *, source: str = "<memory>", index: int = 0, video_root: str | os.PathLike | None = None
) -> GRPORecord:
    """Validate one GRPO record (see the module docstring for the layout)."""
    fields = _Fields(raw, source, index)
    video = fields.string("path")
    problem = fields.string("problem")
    kind = raw.get("problem_type")
    problem_type = _PROBLEM_TYPE_ALIASES.get(kind.strip().lower()) if isinstance(kind, str) else None
    if problem_type is None:
        raise fields.error("problem_type", f"must be one of {', '.join(PROBLEM_TYPES)}, got {kind!r}")
    options = raw.get("options") or []
    if not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
        raise fields.error("options", f"must be a list of strings, got {options!r}")
    if problem_type == "multiple choice" and not options:
        raise fields.error("options", "a multiple-choice problem needs its options")
    tgt = fields.intervals("tgt", single_pair=True)
    if tgt is not None and not tgt:
        raise fields.error("tgt", "a grounding sample needs at least one interval")
    solution = fields.string("solution", required=tgt is None)
    answer = ""
    if solution is not None:
        match = _SOLUTION.search(solution)
        if match is None or not match.group(1).strip():
            raise fields.error("solution", f"must read '<answer>X</answer>', got {solution!r}")
        answer = match.group(1).strip()
    return GRPORecord(
        source=source,
        index=index,
        video=_resolve(video, video_root),
        problem=problem,
        options=tuple(options),
        problem_type=problem_type,
        answer=answer,
        zoomin_intervals=fields.intervals("zoomin_intervals") or (),
        tgt=tgt,
    )


def _read_raw(path: str | os.PathLike) -> list[tuple[int, Any]]:
    """``(record index, object)`` pairs of a JSON list or JSONL file (blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(str(path), None, None, f"cannot read the file ({err})") from err
    if path.suffix.lower() == ".jsonl":
        records = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(str(path), len(records), None, f"line {line_no} is not valid JSON ({err})") from err
        return list(enumerate(records))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(str(path), None, None, f"not valid JSON ({err}); use .jsonl for one record a line") from err
    if not isinstance(data, list):
        raise DataError(str(path), None, None, f"a .json file must hold a list of records, got {type(data).__name__}")
    return list(enumerate(data))


def _load(path: str | os.PathLike, parse: Callable[..., R], video_root: str | os.PathLike | None) -> list[R]:
    return [parse(raw, source=str(path), index=i, video_root=video_root) for i, raw in _read_raw(path)]


def load_sft_records(path: str | os.PathLike, *, video_root: str | os.PathLike | None = None) -> list[SFTRecord]:
    """Read and validate a stage-1/stage-2 SFT file (``.json`` list or ``.jsonl``)."""
    return _load(path, parse_sft_record, video_root)


def load_grpo_records(path: str | os.PathLike, *, video_root: str | os.PathLike | None = None) -> list[GRPORecord]:
    """Read and validate a stage-3 GRPO file (``.json`` list or ``.jsonl``)."""
    return _load(path, parse_grpo_record, video_root)


__all__ = [
    "PROBLEM_TYPES",
    "DataError",
    "GRPORecord",
    "Interval",
    "SFTRecord",
    "load_grpo_records",
    "load_sft_records",
    "parse_grpo_record",
    "parse_sft_record",
]
