"""Train -> save -> load everywhere: a toy checkpoint zooms for real in the graph and in lmms-eval.

A reduced toy recipe (fewer videos and steps than ``lover1 train toy``; each shrunk
setting says why) trains the tiny model with SFT and one GRPO step, saves it, and the
checkpoint is then loaded by the HF backend, run through the LangGraph loop and through
``lmms_eval.evaluator.simple_evaluate`` on the offline ``love_r1_needle`` task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lover1_plugin.decisions import iou, parse_decision
from lover1_plugin.prompts import ANSWER_PREFIX, ZOOM_PREFIX
from lover1_plugin.train.toy import (
    ToyConfig,
    is_spec_valid,
    make_questions,
    parse_toy_args,
    save_checkpoint_atomically,
    sft_samples,
)
from lover1_plugin.video import ViewRenderer

# --------------------------------------------------------------------------- the toy recipe's pieces


def test_toy_sft_samples_cover_the_loop_and_both_rollout_kinds(tmp_path):
    cfg = ToyConfig(durations_s="90")
    questions = make_questions(tmp_path, 2, cfg, seed=5)
    samples = sft_samples(questions, ViewRenderer(), cfg.view_config(), variants=2, seed=0)
    assert len(samples) == 2 * 2 * 6  # questions x variants x (2 loop rounds + 2 QA steps + 2 grounding steps)
    by_video = {q.video: q for q in questions}
    kinds = {"zoom": 0, "answer": 0, "forced": 0}
    for spec in samples:
        question = by_video[spec.video]
        if spec.assistant_prefix == ZOOM_PREFIX:  # grounding step 1: the prefix is forced, the rest is trained
            kinds["forced"] += 1
            reply = ZOOM_PREFIX + spec.target
        else:
            reply = spec.target
        assert is_spec_valid(reply), reply
        decision = parse_decision(reply)
        if decision.kind == "zoom":
            kinds["zoom"] += 1
            assert iou(decision.interval, question.needle_span) > 0  # zoom targets cover the needle
            assert decision.interval[0] % 10 == 0 and decision.interval[1] % 10 == 0
        else:
            kinds["answer"] += 1
            assert reply == f"{ANSWER_PREFIX}\\boxed{{{question.answer}}}"
            assert spec.slow_labels  # answers only once a clip is in context
            assert any(iou(label, question.needle_span) > 0 for label in spec.slow_labels)
    assert kinds == {"zoom": 16, "answer": 8, "forced": 4}


def test_toy_settings_parse_from_flags():
    cfg = parse_toy_args(["--sft_steps", "7", "--durations_s", "90,600", "--grpo_lr", "0.01"])
    assert (cfg.sft_steps, cfg.durations(), cfg.grpo_lr) == (7, [90.0, 600.0], 0.01)
    assert cfg.preset_overrides() == {"num_fast": 16, "fast_res": 8, "num_slow": 8, "slow_res": 16}
    with pytest.raises(ValueError, match="at least 60 s"):
        ToyConfig(durations_s="30").durations()


def test_checkpoint_save_is_atomic_and_replaces_the_old_one(tmp_path, tiny_model_path):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_path)
    processor = AutoProcessor.from_pretrained(tiny_model_path)
    target = tmp_path / "toy-love-r1"
    target.mkdir()
    (target / "stale.txt").write_text("from an older run")
    save_checkpoint_atomically(model, processor, target, {"preset_overrides": {"num_fast": 16}})
    assert not (target / "stale.txt").exists()
    assert (target / "config.json").exists() and json.loads((target / "lover1_toy.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy-love-r1"]  # no temporary folder left behind


# --------------------------------------------------------------------------- train -> graph -> lmms-eval


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from lover1_plugin.train.toy import run_toy

    root = tmp_path_factory.mktemp("toy")
    cfg = ToyConfig(
        output_dir=str(root / "checkpoint"),
        work_dir=str(root / "work"),
        eval_videos=4,  # 8 validity prompts instead of 24: the test checks the loop itself
        reward_videos=2,  # the reward curve is not under test here
        sft_steps=240,  # 3/4 of the full recipe's SFT: the loop's zoom-then-answer is learned, the numbers less sharply
        grpo_steps=1,  # one GRPO step: the checkpoint must come out of the whole pipeline
        grpo_prompts=1,
        eval_points=2,
        target_validity=0.0,  # asserted below on the loop's own behaviour instead
    )
    report = run_toy(cfg)
    return cfg, report


@pytest.mark.slow
def test_checkpoint_is_complete(toy):
    cfg, report = toy
    folder = Path(report.checkpoint)
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    marker = json.loads((folder / "lover1_toy.json").read_text())
    assert marker["preset_overrides"] == cfg.preset_overrides()
    assert not list(folder.parent.glob(f".{folder.name}.*"))  # the atomic save left no temporary folder
    assert report.validity_after > report.validity_before


@pytest.mark.slow
def test_graph_runs_real_zoom_rounds_with_the_trained_checkpoint(toy, tmp_path):
    from lover1_plugin.backends.hf import HFBackend
    from lover1_plugin.graphs.context import LoveR1Context
    from lover1_plugin.graphs.love_r1 import run_love_r1
    from lover1_plugin.synthetic import make_needle_dataset

    cfg, report = toy
    backend = HFBackend.from_pretrained(report.checkpoint, device="cpu")
    context = LoveR1Context(backend=backend, renderer=ViewRenderer())
    # fresh questions, 150 s long like the love_r1_needle task's
    questions = make_needle_dataset(tmp_path, num_questions=4, duration_s=150, fps=cfg.fps, seed=99)
    zoomed = 0
    for q in questions:
        state = run_love_r1(
            str(tmp_path / q["video"]), q["question"], q["options"], context=context,
            max_new_tokens=cfg.max_new_tokens, **cfg.preset_overrides(),
        )  # fmt: skip
        assert not state.get("errors"), state.get("errors")
        accepted = [r for r in state["rounds"] if r["decision"] == "zoom" and r["interval"]]
        zoomed += bool(accepted)
        if accepted:  # the accepted clip joined the context of the following turns
            assert accepted[0]["interval"] in state["intervals"]
    assert zoomed >= len(questions) // 2, "the trained checkpoint should zoom on needle questions, not only answer"


@pytest.mark.slow
def test_lmms_eval_runs_the_trained_checkpoint(toy):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from lover1_plugin.cli import tasks_path

    cfg, report = toy
    overrides = ",".join(f"{k}={v}" for k, v in cfg.preset_overrides().items())
    results = simple_evaluate(
        model="love_r1",
        model_args=f"pretrained={report.checkpoint},device=cpu,max_new_tokens={cfg.max_new_tokens},{overrides}",
        tasks=["love_r1_needle"],
        limit=2,  # two 150 s documents keep the run short
        task_manager=TaskManager(include_path=str(tasks_path())),
        log_samples=True,
    )
    samples = results["samples"]["love_r1_needle"]
    traces = [
        json.loads(s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"])
        for s in samples
    ]
    assert all(t["trace"]["errors"] == [] for t in traces)
    rounds = [r for t in traces for r in t["trace"]["rounds"]]
    assert any(r["decision"] == "zoom" and r["interval"] for r in rounds), rounds
    assert 0.0 <= results["results"]["love_r1_needle"]["needle_zoom_hit,none"] <= 100.0
