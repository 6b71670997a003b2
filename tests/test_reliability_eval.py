"""lmms-eval reliability: a corrupt video inside a run, and restarting runs without redoing documents.

- A corrupt video fails only its own document: the run completes, the other documents are
  scored, the broken one is scored wrong with its ``VideoDecodeError`` (and path) in its
  logged sample.
- lmms-eval 0.7.3's response cache (``--use_cache DIR``, :mod:`lmms_eval.caching.response_cache`)
  works with ``love_r1``: our requests are deterministic (``do_sample: false``) and keyed on
  task, document id, question text, generation kwargs, the task's config and ``--model_args``.
  A finished run is served from the cache, and a run can be done in chunks (``--limit`` /
  ``--offset``): each finished chunk is kept.
- What it does not do: keep anything of a run that was killed. It stores responses only
  after the model's ``generate_until`` returned for *all* requests (``ResponseCache.execute``),
  and ``love_r1`` answers every document of a run in one such call.
- It also replays failed documents (their JSON trace is a non-empty response), so a run
  after fixing a broken video needs a fresh cache directory.

The model is named by its lmms-eval id (``model="love_r1"``) as on the command line, with
``load_backend`` patched to hand out a counting :class:`ScriptedBackend`: lmms-eval
fingerprints a model passed as an object by its ``repr`` (memory address included), so a
second instance, like a restarted process, would never hit the cache.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lover1_plugin.backends.scripted import ScriptedBackend
from lover1_plugin.cli import tasks_path
from lover1_plugin.evaluation import model as model_module
from lover1_plugin.tasks import _media as media

TASK = "love_r1_needle"
NEEDLE_DOCS = json.loads((tasks_path() / "needle.json").read_text())
TINY_MODEL_ARGS = ",".join(
    [
        "pretrained=tiny",
        "max_new_tokens=4",  # random weights never stop: 4 new tokens a turn instead of 2048
        "num_fast=16",  # 16 fast-view frames instead of 300 (150 s at 2 per second): decoding dominates on CPU
        "num_slow=4",  # 4 frames in the forced answer's whole-video clip instead of 32, for the same reason
        "slow_res=16",  # 16 patches per slow frame instead of 256, for the same reason
    ]
)
SCRIPTED_MODEL_ARGS = "pretrained=tiny,num_fast=16,num_slow=4,slow_res=16"  # as above; the model is scripted
ANSWER = "I get the answer.\n\n\\boxed{C}"


class ProcessKilled(BaseException):
    """Stands in for the evaluation process dying (not an ``Exception``: no document handler catches it)."""


@pytest.fixture(scope="module")
def task_manager():
    from lmms_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_path()))  # indexes every lmms-eval task (~6 s): once per module


@pytest.fixture(scope="module")
def needle_dir(tmp_path_factory) -> Path:
    """The four needle videos, generated once for the module."""
    folder = tmp_path_factory.mktemp("needle")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(media.NEEDLE_DIR_ENV, str(folder))
        media.needle_video(NEEDLE_DOCS[0])  # generates the whole set
    return folder


def evaluate(task_manager, model_args: str, **kwargs) -> dict:
    from lmms_eval.evaluator import simple_evaluate

    return simple_evaluate(
        model="love_r1", model_args=model_args, tasks=[TASK], task_manager=task_manager, log_samples=True, **kwargs
    )


def predictions(results: dict) -> dict[int, dict]:
    """doc id -> the model's ``{"answer", "trace"}`` of each logged sample."""
    out = {}
    for sample in results["samples"][TASK]:
        response = sample["filtered_resps"]
        out[sample["doc_id"]] = json.loads(response[0] if isinstance(response, list) else response)
    return out


class Backends:
    """Every backend the love_r1 model loads (one per run), scripted to answer C at once: one call per document."""

    def __init__(self) -> None:
        self.made: list[ScriptedBackend] = []
        self.kill_on_call: int | None = None  # the process "dies" on this generate call of the run (1-based)

    def load_backend(self, name: str, model: str, **kwargs) -> ScriptedBackend:
        self.made.append(ScriptedBackend(self.reply))
        return self.made[-1]

    def reply(self, conversation, views, assistant_prefix) -> str:
        if self.kill_on_call is not None and len(self.made[-1].calls) + 1 == self.kill_on_call:
            raise ProcessKilled
        return ANSWER

    def videos_asked(self) -> list[str]:
        """The video file of every generate call of the last run (its fast view's source), in order."""
        return [Path(call.plans[0].source).name for call in self.made[-1].calls]


@pytest.fixture
def backends(monkeypatch) -> Backends:
    made = Backends()
    monkeypatch.setattr(model_module, "load_backend", made.load_backend)
    return made


# --------------------------------------------------------------------------- a corrupt video inside a run


@pytest.mark.slow  # lmms-eval, the tiny model and 3 documents: about 30 s on 2 cores
def test_a_corrupt_video_fails_only_its_own_document(task_manager, tiny_model_path, tmp_path, monkeypatch):
    folder = tmp_path / "needle videos"
    folder.mkdir()
    bad = folder / NEEDLE_DOCS[1]["video"]
    corrupt = np.random.default_rng(1).integers(0, 256, 30_000, dtype=np.uint8).tobytes()
    bad.write_bytes(corrupt)  # planted before the run: the generator fills in only the missing videos
    monkeypatch.setenv(media.NEEDLE_DIR_ENV, str(folder))

    results = evaluate(task_manager, TINY_MODEL_ARGS, limit=3)  # 3 of the 4 documents keep the test short

    assert bad.read_bytes() == corrupt  # the run neither replaced nor "fixed" the user's file
    samples = {sample["doc_id"]: sample for sample in results["samples"][TASK]}
    assert sorted(samples) == [0, 1, 2]  # the run went on past the broken document
    answers = predictions(results)

    broken = answers[1]
    assert broken["answer"] == ""
    assert broken["trace"]["errors"] == [
        {
            "node": "overview",
            "type": "VideoDecodeError",
            "message": f"cannot read {str(bad)!r} (not a video file, or its header is corrupt or truncated)",
        }
    ]
    assert samples[1]["needle_acc"]["score"] == 0.0  # scored, and wrong
    assert samples[1]["love_r1"]["trace"]["errors"][0]["type"] == "VideoDecodeError"  # kept in the sample log

    for doc_id in (0, 2):
        trace = answers[doc_id]["trace"]
        assert trace["errors"] == [] and trace["rounds"]  # the model ran on the good videos
        assert trace["fast_view"]["frames"] == 16 and trace["duration"] == pytest.approx(150.0)
        item = samples[doc_id]["needle_acc"]
        assert item["question_id"] == NEEDLE_DOCS[doc_id]["id"]
        assert item["score"] == float(item["pred_answer"] == NEEDLE_DOCS[doc_id]["answer"])
    assert 0.0 <= results["results"][TASK]["needle_acc,none"] <= 100.0


# --------------------------------------------------------------------------- restarting a run


@pytest.mark.slow  # three lmms-eval runs: about 10 s
def test_use_cache_keeps_finished_runs_and_chunks(task_manager, needle_dir, backends, tmp_path, monkeypatch):
    monkeypatch.setenv(media.NEEDLE_DIR_ENV, str(needle_dir))
    cache = str(tmp_path / "cache")
    videos = [doc["video"] for doc in NEEDLE_DOCS]

    first = evaluate(task_manager, SCRIPTED_MODEL_ARGS, limit=1, use_cache=cache)  # a first chunk: document 0
    assert backends.videos_asked() == videos[:1]

    second = evaluate(task_manager, SCRIPTED_MODEL_ARGS, limit=2, use_cache=cache)  # documents 0 and 1
    assert backends.videos_asked() == videos[1:2]  # document 0 came from the cache

    third = evaluate(task_manager, SCRIPTED_MODEL_ARGS, limit=2, use_cache=cache)  # the same run again
    assert backends.videos_asked() == []  # nothing asked: every response from the cache
    assert predictions(third) == predictions(second)
    assert predictions(third)[0] == predictions(first)[0]
    assert [p["answer"] for p in predictions(third).values()] == ["C", "C"]
    assert third["results"][TASK]["needle_acc,none"] == second["results"][TASK]["needle_acc,none"]


# lmms-eval 0.7.3 stores responses only after generate_until returned for all requests (ResponseCache.execute),
# and love_r1 answers a whole run in one generate_until call: --use_cache alone keeps nothing of a killed run.
# love_r1's resume_log (lover1_plugin/evaluation/resume.py) keeps each finished document.


@pytest.mark.slow  # two lmms-eval runs: about 8 s
def test_a_killed_run_restarts_without_redoing_finished_documents(
    task_manager, needle_dir, backends, tmp_path, monkeypatch
):
    monkeypatch.setenv(media.NEEDLE_DIR_ENV, str(needle_dir))
    monkeypatch.setenv("LMMS_CACHE_RUN_ID", "evaluation-1")  # the restart continues the same cache run directory
    cache = str(tmp_path / "cache")

    model_args = f"{SCRIPTED_MODEL_ARGS},resume_log={tmp_path / 'finished.jsonl'}"  # love_r1's own per-document log
    backends.kill_on_call = 2  # the process dies while answering document 1
    with pytest.raises(ProcessKilled):
        evaluate(task_manager, model_args, limit=2, use_cache=cache)
    assert backends.videos_asked() == [NEEDLE_DOCS[0]["video"]]  # document 0 was finished

    backends.kill_on_call = None
    restarted = evaluate(task_manager, model_args, limit=2, use_cache=cache)
    assert backends.videos_asked() == [NEEDLE_DOCS[1]["video"]]  # only the unfinished document is redone
    assert [p["answer"] for p in predictions(restarted).values()] == ["C", "C"]


@pytest.mark.slow  # three lmms-eval runs: about 10 s
def test_use_cache_replays_a_failed_document_until_the_cache_is_cleared(
    task_manager, needle_dir, backends, tmp_path, monkeypatch
):
    folder = tmp_path / "needle"
    folder.mkdir()
    shutil.copy(needle_dir / NEEDLE_DOCS[0]["video"], folder)
    broken = folder / NEEDLE_DOCS[1]["video"]
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 and nothing else")
    monkeypatch.setenv(media.NEEDLE_DIR_ENV, str(folder))
    cache = str(tmp_path / "cache")

    first = evaluate(task_manager, SCRIPTED_MODEL_ARGS, limit=2, use_cache=cache)
    assert predictions(first)[1]["trace"]["errors"][0]["type"] == "VideoDecodeError"

    shutil.copy(needle_dir / NEEDLE_DOCS[1]["video"], broken)  # the user fixes the video
    again = evaluate(task_manager, SCRIPTED_MODEL_ARGS, limit=2, use_cache=cache)
    assert backends.videos_asked() == []  # served from the cache...
    assert predictions(again)[1]["trace"]["errors"][0]["type"] == "VideoDecodeError"  # ...failure included

    fresh = evaluate(task_manager, SCRIPTED_MODEL_ARGS, limit=2, use_cache=str(tmp_path / "fresh cache"))
    assert predictions(fresh)[1]["trace"]["errors"] == [] and predictions(fresh)[1]["answer"] == "C"
    assert os.path.exists(os.path.join(cache, "cache.db"))
