"""lmms-eval hooks of the ``love_r1_*`` tasks: documents in, SPEC 2 question text and video paths out, scores back.

Use: ``lmms-eval --include_path <this folder> --tasks love_r1_videomme,...`` (or
``TaskManager(include_path=...)``). Each task reads the same dataset as lmms-eval's
built-in task of that benchmark (see ``_benchmarks.py`` for the mapping), so videos
already downloaded for the built-in task are reused.

Contract with the model
-----------------------
- ``doc_to_visual(doc) -> [video_path]``: one local video file (str) per document.
- ``doc_to_text(doc) -> str``: the question text of SPEC 2 for the benchmark, built by
  :func:`lover1_plugin.prompts.format_question` (zoom-loop form; a single-pass model turns
  it into the SPEC 3b form with :func:`lover1_plugin.prompts.to_single_pass`). The model
  adds the system prompt, the video labels and the zoom instruction itself.
- ``generation_kwargs`` carry ``love_r1_preset`` (``videomme``, ``mlvu``,
  ``longvideobench``, ``lvbench``, ``mvbench``, ``default``): the preset the model must use
  for the task's views and loop (``lover1_plugin.config.get_preset``); also
  ``max_new_tokens: 2048``, ``do_sample: false`` and ``until: []`` (no stop strings).
- The model's reply for a document is either the answer text (what ended up in the last
  ``\\boxed{}``), or a JSON object string ``{"answer": <answer text>, "trace": <any JSON>}``.
  Then ``answer`` is scored and ``trace`` (the rounds, intervals, raw outputs...) is kept
  in the logged sample under the ``love_r1`` key, next to the document id. When the trace
  is an object with ``"intervals": [[start, end], ...]`` (the zoomed intervals), the
  needle task also scores whether the loop zoomed onto the needle.

Metrics
-------
Every task reports the built-in task's official metric, computed with the built-in
extractor (same name, same scale), and ``reference_acc*`` metrics computed with the
LOVE-R1 reference's extraction (SPEC 3c; in %), comparable with the paper's Table 1.
A subset metric (``..._long``, ``..._600``) is ``None`` (N/A in lmms-eval's table) when a run
has no document of that subset.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from lover1_plugin.config import get_preset
from lover1_plugin.prompts import format_question


def _load_sibling(name: str) -> ModuleType:
    """Import ``<this folder>/<name>.py`` once per process.

    lmms-eval loads ``utils.py`` from its file path (a fresh module for every ``!function``),
    so relative imports are not available; the helpers next to it are loaded by path too
    and cached in ``sys.modules`` under a name tied to this folder.
    """
    path = Path(__file__).resolve().with_name(f"{name}.py")
    key = f"_lover1_tasks_{hashlib.sha1(str(path.parent).encode()).hexdigest()[:10]}_{name}"
    module = sys.modules.get(key)
    if module is None:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[key]
            raise
    return module


scoring = _load_sibling("_scoring")
benchmarks = _load_sibling("_benchmarks")
media = _load_sibling("_media")

VIDEOMME_DURATIONS = ("short", "medium", "long")
LONGVIDEOBENCH_DURATION_GROUPS = (15, 60, 600, 3600)  # seconds, LongVideoBench's duration_group values
MLVU_ORDER_TASK = "order"


def _question_text(question: Any, preset: str) -> str:
    """SPEC 2 text of a benchmark question, in the question format of ``preset``."""
    return format_question(question.text, question.options, get_preset(preset).question_format)


def _official_letter(prediction: str) -> str:
    """lmms-eval's shared multiple-choice extractor (what its Video-MME, MLVU and LVBench use)."""
    from lmms_eval.tasks._task_utils.mcq_extract import extract_mcq_answer

    return extract_mcq_answer(prediction, choices=["A", "B", "C", "D"])


def _love_r1_record(question: Any, answer: str, trace: Any) -> dict:
    """What the logged sample keeps besides the metrics: document id, scored answer, model trace."""
    return {"doc_id": question.question_id, "answer": answer, "trace": trace}


def _item(question: Any, pred: str, correct: bool, **extra: Any) -> dict:
    """A per-sample metric value: ``score`` 0/1 plus what the aggregation and the logs need."""
    return {"question_id": question.question_id, "pred_answer": pred, "answer": question.answer,
            "score": float(correct), **extra}  # fmt: skip


def _subset(item: dict, inside: bool) -> dict:
    """The item for documents of the subset, an empty value (skipped by the accuracy) otherwise."""
    return item if inside else {}


# ---------------------------------------------------------------------------------------
# Aggregations (named in the YAML files)


def accuracy_percent(items: Sequence[Any]) -> float | None:
    """Accuracy in % over the items with a score."""
    return scoring.accuracy(items, percent=True)


def accuracy_fraction(items: Sequence[Any]) -> float | None:
    """Accuracy in [0, 1] over the items with a score (LongVideoBench's and LVBench's scale)."""
    return scoring.accuracy(items, percent=False)


def mlvu_mean_over_tasks(items: Sequence[Any]) -> float | None:
    """MLVU's M-Avg: the mean of the per-task-type accuracies, in %."""
    return scoring.mean_over_groups(items, "task_type")


def mlvu_mean_over_tasks_wo_order(items: Sequence[Any]) -> float | None:
    """MLVU's M-Avg without the ``order`` task, in % (the reference's second aggregation)."""
    return scoring.mean_over_groups(items, "task_type", exclude=(MLVU_ORDER_TASK,))


def mvbench_official_accuracy(items: Sequence[Any]) -> float:
    """lmms-eval's MVBench accuracy, in %: empty predictions are left out of the count."""
    return scoring.answered_accuracy(items)


def count(items: Sequence[Any]) -> int:
    """How many documents were flagged (per-sample values 0/1)."""
    return int(sum(int(item) for item in items if isinstance(item, (int, float))))


def sum_over_subtasks(metrics: Sequence[float], sizes: Sequence[int], weight_by_size: bool = False) -> float:
    """Group aggregation for counts: the sum over the sub-tasks."""
    return sum(metrics)


# ---------------------------------------------------------------------------------------
# Video-MME (w/o subtitles)


def videomme_doc_to_visual(doc: Mapping[str, Any]) -> list[str]:
    return [str(benchmarks.videomme_video(doc))]


def videomme_doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _question_text(benchmarks.videomme_question(doc), "videomme")


def videomme_doc_to_target(doc: Mapping[str, Any]) -> str:
    return benchmarks.videomme_question(doc).answer


def videomme_process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict:
    question = benchmarks.videomme_question(doc)
    answer, trace = scoring.split_prediction(results[0])
    meta = {"duration": doc.get("duration"), "category": doc.get("domain"), "sub_category": doc.get("sub_category"),
            "task_category": doc.get("task_type"), "videoID": doc.get("videoID")}  # fmt: skip
    official = _official_letter(answer)
    reference = scoring.reference_letter(answer, "ABCD")
    official_item = _item(question, official, official == question.answer, **meta)
    reference_item = _item(question, reference, reference == question.answer, **meta)
    out = {"videomme_perception_score": official_item, "reference_acc": reference_item}
    for duration in VIDEOMME_DURATIONS:
        out[f"videomme_perception_score_{duration}"] = _subset(official_item, meta["duration"] == duration)
        out[f"reference_acc_{duration}"] = _subset(reference_item, meta["duration"] == duration)
    out["love_r1"] = _love_r1_record(question, answer, trace)
    return out


# ---------------------------------------------------------------------------------------
# MLVU (multiple-choice dev)


def mlvu_doc_to_visual(doc: Mapping[str, Any]) -> list[str]:
    return [str(benchmarks.mlvu_video(doc))]


def mlvu_doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _question_text(benchmarks.mlvu_question(doc), "mlvu")


def mlvu_doc_to_target(doc: Mapping[str, Any]) -> str:
    return benchmarks.mlvu_question(doc).answer


def mlvu_process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict:
    question = benchmarks.mlvu_question(doc)
    answer, trace = scoring.split_prediction(results[0])
    task_type = doc.get("task_type")
    official = _official_letter(answer)
    reference = scoring.mlvu_reference_letter(answer)
    reference_item = _item(question, reference, reference == question.answer, task_type=task_type)
    return {
        "mlvu_percetion_score": _item(question, official, official == question.answer, task_type=task_type),
        "reference_acc": reference_item,
        "reference_acc_wo_order": reference_item,
        "love_r1": _love_r1_record(question, answer, trace),
    }


# ---------------------------------------------------------------------------------------
# LongVideoBench (validation, video only)


def longvideobench_doc_to_visual(doc: Mapping[str, Any]) -> list[str]:
    return [str(benchmarks.longvideobench_video(doc))]


def longvideobench_doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _question_text(benchmarks.longvideobench_question(doc), "longvideobench")


def longvideobench_doc_to_target(doc: Mapping[str, Any]) -> str:
    return benchmarks.longvideobench_question(doc).answer


def longvideobench_process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict:
    question = benchmarks.longvideobench_question(doc)
    answer, trace = scoring.split_prediction(results[0])
    meta = {"duration_group": doc.get("duration_group"), "question_category": doc.get("question_category")}
    official = scoring.longvideobench_official_letter(answer, len(question.options), seed=question.question_id)
    reference = scoring.reference_letter(answer, "ABCDE")
    official_item = _item(question, official, official == question.answer, **meta)
    reference_item = _item(question, reference, reference == question.answer, **meta)
    out = {"lvb_acc": official_item, "reference_acc": reference_item}
    for group in LONGVIDEOBENCH_DURATION_GROUPS:
        inside = str(meta["duration_group"]) == str(group)
        out[f"lvb_acc_{group}"] = _subset(official_item, inside)
        out[f"reference_acc_{group}"] = _subset(reference_item, inside)
    out["love_r1"] = _love_r1_record(question, answer, trace)
    return out


# ---------------------------------------------------------------------------------------
# LVBench


def lvbench_doc_to_visual(doc: Mapping[str, Any]) -> list[str]:
    return [str(benchmarks.lvbench_video(doc))]


def lvbench_doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _question_text(benchmarks.lvbench_question(doc), "lvbench")


def lvbench_doc_to_target(doc: Mapping[str, Any]) -> str:
    return benchmarks.lvbench_question(doc).answer


def lvbench_process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict:
    question = benchmarks.lvbench_question(doc)
    answer, trace = scoring.split_prediction(results[0])
    official = _official_letter(answer)
    reference = scoring.reference_letter(answer, "ABCD")
    return {
        "lvbench_score": _item(question, official, official == question.answer),
        "reference_acc": _item(question, reference, reference == question.answer),
        "love_r1": _love_r1_record(question, answer, trace),
    }


# ---------------------------------------------------------------------------------------
# MVBench (one task per sub-task; ``lmms_eval_specific_kwargs.sub_task`` names it)


def _sub_task(lmms_eval_specific_kwargs: Mapping[str, Any] | None) -> str:
    sub_task = (lmms_eval_specific_kwargs or {}).get("sub_task")
    if not sub_task:
        raise ValueError("MVBench tasks need lmms_eval_specific_kwargs.default.sub_task in their YAML")
    return str(sub_task)


def mvbench_doc_to_visual(doc: Mapping[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> list[str]:
    sub_task = _sub_task(lmms_eval_specific_kwargs)
    source = benchmarks.mvbench_source(doc, sub_task)
    return [str(media.prepare_mvbench_video(source, bound=benchmarks.mvbench_bound(doc, sub_task)))]


def mvbench_doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _question_text(benchmarks.mvbench_question(doc), "mvbench")


def mvbench_doc_to_target(doc: Mapping[str, Any]) -> str:
    return benchmarks.mvbench_question(doc).answer


def mvbench_process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict:
    from lmms_eval.tasks.mvbench.utils import mcq_acc  # the built-in task's scorer

    question = benchmarks.mvbench_question(doc)
    answer, trace = scoring.split_prediction(results[0])
    empty = scoring.mvbench_reference_option(answer) == ""
    return {
        "mvbench_accuracy": _item(question, answer, bool(mcq_acc(question.answer, answer))),
        "reference_acc": _item(
            question,
            scoring.mvbench_reference_option(answer),
            scoring.mvbench_reference_correct(answer, question.answer),
        ),
        "empty_predictions": int(empty),
        "love_r1": _love_r1_record(question, answer, trace),
    }


# ---------------------------------------------------------------------------------------
# Needle (offline, generated)


def needle_doc_to_visual(doc: Mapping[str, Any]) -> list[str]:
    return [str(media.needle_video(doc))]


def needle_doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return _question_text(benchmarks.needle_question(doc), "default")


def needle_doc_to_target(doc: Mapping[str, Any]) -> str:
    return benchmarks.needle_question(doc).answer


def needle_process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict:
    question = benchmarks.needle_question(doc)
    answer, trace = scoring.split_prediction(results[0])
    letter = scoring.reference_letter(answer, "ABCD")
    intervals = trace.get("intervals") if isinstance(trace, Mapping) else None
    zoomed = bool(intervals) and scoring.intervals_overlap(intervals, doc["needle_span"])
    return {
        "needle_acc": _item(question, letter, letter == question.answer),
        "needle_zoom_hit": _item(question, letter, zoomed, needle_span=list(doc["needle_span"])),
        "love_r1": _love_r1_record(question, answer, trace),
    }
