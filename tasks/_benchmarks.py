"""How each benchmark's lmms-eval documents read, and where their videos are on disk.

Our tasks load the same Hugging Face datasets, with the same ``dataset_kwargs``, as
lmms-eval's built-in ``videomme``, ``mlvu_dev``, ``longvideobench_val_v``, ``lvbench`` and
``mvbench`` tasks, so videos those tasks downloaded are reused. lmms-eval unpacks a video
dataset into ``resolve_cache_dir(dataset_kwargs.cache_dir, base_dir=$HF_HOME)``
(``$HF_HOME`` defaulting to ``~/.cache/huggingface/``); the functions below look there,
with the file layout each built-in task uses:

==================  ===============================  ==============================================
task                dataset (split)                  video file
==================  ===============================  ==============================================
love_r1_videomme    lmms-eval/Video-MME (test)       <hf>/videomme/data/<videoID>.mp4 (.MP4, .mkv)
love_r1_mlvu        sy1998/MLVU_dev (test)           <hf>/mlvu/<video_name>
love_r1_longvideo.. longvideobench/LongVideoBench    <hf>/datasets/longvideobench/videos/<video_path>
                    (validation)
love_r1_lvbench     lmms-eval/LVBench (train)        <hf>/lvbench/<video_path>
love_r1_mvbench_*   OpenGVLab/MVBench, revision      <hf>/mvbench_video/<folder of the sub-task>/<video>
                    ``video`` (train)                (or .../data0613/<folder>/<video>)
==================  ===============================  ==============================================

>>> question = videomme_question({"question_id": "001-1", "question": "Q?", "options": ["A. x", "B. y"],
...                               "answer": "B"})
>>> question.options, question.answer
(('A. x', 'B. y'), 'B')
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lover1_plugin.errors import VideoDecodeError

HF_HOME_DEFAULT = "~/.cache/huggingface/"

# ``dataset_kwargs.cache_dir`` of the built-in tasks; our YAML files carry the same values
# (a test checks both against the installed lmms-eval).
VIDEO_CACHE_DIRS: Mapping[str, str] = {
    "videomme": "videomme",
    "mlvu": "mlvu",
    "longvideobench": "datasets/longvideobench",
    "lvbench": "lvbench",
    "mvbench": "mvbench_video",
}

# MVBench sub-task -> folder of its videos in the dataset's ``video`` revision (the table
# lmms-eval's built-in task uses). Folders ending in ``_segment`` hold clips the MVBench
# authors already cut to each question's ``start``/``end``; ``*_mp4`` / ``*_convert`` hold
# webm/avi sources already re-encoded to mp4.
MVBENCH_FOLDERS: Mapping[str, str] = {
    "action_antonym": "ssv2_video_mp4",
    "action_count": "perception/videos",
    "action_localization": "sta/sta_video_segment",
    "action_prediction": "star/Charades_segment",
    "action_sequence": "star/Charades_segment",
    "character_order": "perception/videos",
    "counterfactual_inference": "clevrer/video_validation",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/video_fps3_hq_segment",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "fine_grained_pose": "nturgbd_convert",
    "moving_attribute": "clevrer/video_validation",
    "moving_count": "clevrer/video_validation",
    "moving_direction": "clevrer/video_validation",
    "object_existence": "clevrer/video_validation",
    "object_interaction": "star/Charades_segment",
    "object_shuffle": "perception/videos",
    "scene_transition": "scene_qa/video",
    "state_change": "perception/videos",
    "unexpected_action": "FunQA_test/test",
}
# Sub-tasks whose questions are about a clip (``start``/``end`` seconds) of a longer video.
MVBENCH_BOUND_TASKS = frozenset(
    {"action_localization", "action_prediction", "action_sequence", "episodic_reasoning", "object_interaction"}
)

_DOWNLOAD_HINT = (
    "download the benchmark once with lmms-eval's built-in task ({task}), or set HF_HOME to the folder that holds it"
)


@dataclass(frozen=True)
class Question:
    """One multiple-choice question as the benchmark states it."""

    question_id: str
    text: str  # the question alone (LVBench: with its options, as the dataset writes it)
    options: tuple[str, ...]  # candidate texts in letter order (Video-MME: "A. ..." as given)
    answer: str  # the right letter, "A", "B", ...


def hf_home() -> Path:
    """``$HF_HOME`` (default ``~/.cache/huggingface/``), user-expanded, as lmms-eval reads it."""
    return Path(os.path.expanduser(os.getenv("HF_HOME", HF_HOME_DEFAULT)))


def video_root(benchmark: str) -> Path:
    """Folder lmms-eval unpacks ``benchmark``'s videos into (``$VAR``, ``~`` and absolute paths allowed).

    >>> video_root("longvideobench").relative_to(hf_home()).as_posix()
    'datasets/longvideobench'
    """
    if benchmark not in VIDEO_CACHE_DIRS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of: {', '.join(VIDEO_CACHE_DIRS)}")
    cache_dir = os.path.expanduser(os.path.expandvars(VIDEO_CACHE_DIRS[benchmark]))
    return Path(cache_dir) if os.path.isabs(cache_dir) else hf_home() / cache_dir


def first_existing(candidates: Sequence[Path], builtin_task: str) -> Path:
    """The first path that exists; else ``VideoDecodeError`` naming the first one and the fix."""
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = ", ".join(str(c) for c in candidates[1:])
    cause = "no such file" + (f" (also tried {tried})" if tried else "")
    raise VideoDecodeError(str(candidates[0]), f"{cause}; {_DOWNLOAD_HINT.format(task=builtin_task)}")


def doc_id(doc: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The first of ``keys`` the document has, as a string ("" when none)."""
    for key in keys:
        value = doc.get(key)
        if value is not None and value != "":
            return str(value)
    return ""


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def _answer_letter(answer: Any, options: Sequence[str], where: str) -> str:
    """A letter answer (``"B"``, ``"(B)"``, ``"B."``) as its letter; an option text as its letter.

    >>> _answer_letter("(B)", ["x", "y"], "doc"), _answer_letter("y", ["x", "y"], "doc")
    ('B', 'B')
    """
    text = str(answer).strip()
    match = re.fullmatch(r"\(?([A-Z])[).]?", text)
    if match:
        return match.group(1)
    for index, option in enumerate(options):
        if str(option).strip() == text:
            return _letter(index)
    raise ValueError(f"{where}: answer {answer!r} is neither a letter nor one of the options {list(options)!r}")


# ---------------------------------------------------------------------------------------
# Questions


def videomme_question(doc: Mapping[str, Any]) -> Question:
    """Video-MME: ``question``, ``options`` (``["A. ...", ...]``), ``answer`` letter, ``question_id``."""
    options = tuple(str(o) for o in doc["options"])
    qid = doc_id(doc, ("question_id", "videoID"))
    return Question(qid, str(doc["question"]), options, _answer_letter(doc["answer"], options, f"Video-MME {qid}"))


_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.)])\s*(.*)$")


def _split_embedded_options(text: str) -> tuple[str, list[str]]:
    """Split ``"Q?\\n(A) x\\n(B) y"`` into ``("Q?", ["x", "y"])``; lines must run A, B, C..."""
    lines = text.split("\n")
    for start in range(1, len(lines)):
        match = _OPTION_LINE.match(lines[start])
        if not match or (match.group(1) or match.group(2)) != "A":
            continue
        options = []
        for offset, line in enumerate(lines[start:]):
            found = _OPTION_LINE.match(line)
            if not found or (found.group(1) or found.group(2)) != _letter(offset):
                break
            options.append(found.group(3).strip())
        else:
            question_lines = lines[:start]
            if question_lines and question_lines[-1].strip().rstrip(":").lower() in ("options", "option"):
                question_lines = question_lines[:-1]
            return "\n".join(question_lines).rstrip(), options
    return text, []


def mlvu_question(doc: Mapping[str, Any]) -> Question:
    """MLVU dev: ``question`` (the dataset may append the options to it), ``candidates``, ``answer``.

    The options are taken from ``candidates`` and any option lines the question carries
    are removed, so the question reads as in MLVU's own files (what the reference used).

    >>> q = mlvu_question({"question": "Why?\\n(A) rain\\n(B) sun", "candidates": ["rain", "sun"],
    ...                    "answer": "B", "task_type": "plotQA", "video_name": "1.mp4"})
    >>> q.text, q.options, q.answer
    ('Why?', ('rain', 'sun'), 'B')
    """
    question, embedded = _split_embedded_options(str(doc["question"]))
    candidates = doc.get("candidates") or embedded
    options = tuple(str(c) for c in candidates)
    if not options:
        raise ValueError(f"MLVU document without options: {dict(doc)!r}")
    qid = doc_id(doc, ("question_id", "id", "video_name"))
    return Question(qid, question, options, _answer_letter(doc["answer"], options, f"MLVU {qid}"))


def longvideobench_question(doc: Mapping[str, Any]) -> Question:
    """LongVideoBench: ``question``, ``option0``..``option4`` (``"N/A"`` when absent), ``correct_choice``."""
    options = []
    for index in range(5):
        option = doc.get(f"option{index}")
        if option is None or option == "N/A":
            break
        options.append(str(option))
    correct = int(doc["correct_choice"])
    qid = doc_id(doc, ("id",))
    if not 0 <= correct < len(options):
        raise ValueError(f"LongVideoBench {qid}: correct_choice {correct} outside the {len(options)} options")
    return Question(qid, str(doc["question"]), tuple(options), _letter(correct))


def lvbench_question(doc: Mapping[str, Any]) -> Question:
    """LVBench: ``question`` already lists its options (``(A) ...``); ``answer`` letter.

    A document that carries a separate ``options`` list gets them appended as ``(A) ...``
    lines, as lmms-eval's built-in task does.
    """
    text = str(doc["question"])
    options = tuple(str(o) for o in (doc.get("options") or ()))
    if options:
        text += "\n" + "\n".join(f"({_letter(i)}) {o}" for i, o in enumerate(options))
    qid = doc_id(doc, ("uid", "key", "video_path"))
    return Question(qid, text, options, _answer_letter(doc["answer"], options, f"LVBench {qid}"))


def mvbench_question(doc: Mapping[str, Any]) -> Question:
    """MVBench: ``question``, ``candidates``, ``answer`` (the right candidate's text)."""
    options = tuple(str(c) for c in doc["candidates"])
    qid = doc_id(doc, ("question_id", "video"))
    return Question(qid, str(doc["question"]), options, _answer_letter(doc["answer"], options, f"MVBench {qid}"))


def needle_question(doc: Mapping[str, Any]) -> Question:
    """Our synthetic needle task: ``id``, ``question``, ``options`` (``["A. ...", ...]``), ``answer`` letter."""
    options = tuple(str(o) for o in doc["options"])
    return Question(str(doc["id"]), str(doc["question"]), options, _answer_letter(doc["answer"], options, "needle"))


# ---------------------------------------------------------------------------------------
# Video files


def videomme_video(doc: Mapping[str, Any]) -> Path:
    """``<hf>/videomme/data/<videoID>.mp4``, else ``.MP4`` or ``.mkv`` (as the built-in task)."""
    folder = video_root("videomme") / "data"
    stem = str(doc["videoID"])
    return first_existing([folder / f"{stem}.{ext}" for ext in ("mp4", "MP4", "mkv")], "videomme")


def mlvu_video(doc: Mapping[str, Any]) -> Path:
    """``<hf>/mlvu/<video_name>`` (the built-in task), else ``<hf>/mlvu/<task_type>/<video_name>``."""
    root = video_root("mlvu")
    name = str(doc["video_name"])
    candidates = [root / name]
    if doc.get("task_type"):
        candidates.append(root / str(doc["task_type"]) / name)
    return first_existing(candidates, "mlvu_dev")


def longvideobench_video(doc: Mapping[str, Any]) -> Path:
    """``<hf>/datasets/longvideobench/videos/<video_path>``."""
    return first_existing([video_root("longvideobench") / "videos" / str(doc["video_path"])], "longvideobench_val_v")


def lvbench_video(doc: Mapping[str, Any]) -> Path:
    """``<hf>/lvbench/<video_path>``."""
    return first_existing([video_root("lvbench") / str(doc["video_path"])], "lvbench")


def mvbench_source(doc: Mapping[str, Any], sub_task: str) -> Path:
    """The MVBench source (file, or frame folder) of a document of ``sub_task``."""
    if sub_task not in MVBENCH_FOLDERS:
        raise ValueError(f"unknown MVBench sub-task {sub_task!r}; choose one of: {', '.join(MVBENCH_FOLDERS)}")
    root, folder, name = video_root("mvbench"), MVBENCH_FOLDERS[sub_task], str(doc["video"])
    return first_existing([root / folder / name, root / "data0613" / folder / name], f"mvbench_{sub_task}")


def mvbench_bound(doc: Mapping[str, Any], sub_task: str) -> tuple[float, float] | None:
    """The ``(start, end)`` clip to cut for this document, or ``None`` (whole source).

    Only the five clip sub-tasks have bounds, and only sources that are not already cut
    (folders ending in ``_segment`` hold the cut clips) need cutting.

    >>> mvbench_bound({"start": 2.0, "end": 9.5}, "action_sequence") is None  # already a segment
    True
    """
    if sub_task not in MVBENCH_BOUND_TASKS or MVBENCH_FOLDERS.get(sub_task, "").endswith("_segment"):
        return None
    start, end = doc.get("start"), doc.get("end")
    if start is None or end is None:
        return None
    return float(start), float(end)


__all__ = [
    "HF_HOME_DEFAULT",
    "MVBENCH_BOUND_TASKS",
    "MVBENCH_FOLDERS",
    "VIDEO_CACHE_DIRS",
    "Question",
    "doc_id",
    "first_existing",
    "hf_home",
    "longvideobench_question",
    "longvideobench_video",
    "lvbench_question",
    "lvbench_video",
    "mlvu_question",
    "mlvu_video",
    "mvbench_bound",
    "mvbench_question",
    "mvbench_source",
    "needle_question",
    "video_root",
    "videomme_question",
    "videomme_video",
]
