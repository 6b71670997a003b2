"""Decoupled GRPO: rollouts as SPEC 4 says, group advantages with masks, and a step that learns."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lover1_plugin.config import ViewConfig
from lover1_plugin.positions import rope_position_ids
from lover1_plugin.prompts import ZOOM_PREFIX
from lover1_plugin.synthetic import make_needle_video
from lover1_plugin.train.grpo import (
    LoveR1GRPOArguments,
    Rollout,
    RolloutRunner,
    Turn,
    advantages_from_rows,
    build_grpo_trainer,
    clipped_surrogate,
    completion_logps,
    grpo_record_from_row,
    grpo_record_to_row,
    rollout_advantages,
    turn_forward_inputs,
)
from lover1_plugin.train.rewards import Reward, qa_reward
from lover1_plugin.train.samples import GRPO_SLOW_FRAMES, build_grpo_step1
from lover1_plugin.train.schema import GRPORecord
from lover1_plugin.video import ViewRenderer

# Toy views: the rollout logic does not depend on the sizes; small ones keep each forward fast.
SMALL = ViewConfig(num_fast=8, fast_res=4, num_slow=4, slow_res=8, short_video_s=60, factor_on_slow=False)
OPTIONS = ("A. APPLE", "B. RIVER", "C. MOUSE", "D. TIGER")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("grpo") / "needle.mp4"
    return str(
        make_needle_video(path, duration_s=80, fps=1.0, size=(96, 160), needle_span=(30, 40), needle_text="RIVER").path
    )


@pytest.fixture(scope="module")
def processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path)


@pytest.fixture(scope="module")
def renderer():
    return ViewRenderer(max_cached_views=64)


def qa_record(video: str, zoomed=()) -> GRPORecord:
    return GRPORecord("rl.jsonl", 0, video, "Which word is on the card?\n", OPTIONS, "multiple choice", "B", zoomed)


def grounding_record(video: str) -> GRPORecord:
    return GRPORecord(
        "rl.jsonl", 1, video, "When is the card shown?", (), "temporal localization", "", ((25, 45),), ((30, 40),)
    )


class ScriptedRunner(RolloutRunner):
    """A runner whose 'model' replies with scripted texts, in order, so rollout logic is tested exactly."""

    def __init__(self, processor, replies, **kwargs):
        super().__init__(processor, view_cfg=SMALL, **kwargs)
        self.replies = list(replies)
        self.prompts = []

    def sample(self, model, prompt, num):
        self.prompts.append(prompt)
        texts = [self.replies.pop(0) for _ in range(num)]
        return [self.processor.tokenizer(t + "<|im_end|>", return_tensors="pt")["input_ids"][0] for t in texts]


# --------------------------------------------------------------------------- rollout logic


def test_qa_rollouts_follow_spec4(processor, video, renderer):
    replies = [
        "I get the answer.\n\n\\boxed{B}",  # 1: direct answer, correct
        "I need to zoom in on the video.\n\nsee \\boxed{[28, 41]}",  # 2: valid zoom ...
        "I need to zoom in on the video.\n\n\\boxed{[10, 10]}",  # 3: invalid zoom (shorter than 1 s) ...
        "Hmm.",  # 4: neither opening
        "I get the answer.\n\n\\boxed{B}",  # ... 2's step 2: correct
        "I get the answer.\n\n\\boxed{A}",  # ... 3's step 2
    ]
    runner = ScriptedRunner(processor, replies, renderer=renderer)
    rollouts = runner.run(None, [qa_record(video)] * 4)
    direct, zoom, invalid, other = rollouts
    assert direct.step2 is None and direct.reward == Reward(1.0, 1.0, False, "answer")
    # a valid zoom: step 2 sees the interval exactly as proposed, with 16 frames, and earns its accuracy
    assert zoom.step2.spec.slow_labels == [(28, 41)]
    assert zoom.step2.spec.views[1].num_frames == GRPO_SLOW_FRAMES  # min(int(13 s * 2), 16)
    assert zoom.reward.total == 2.0
    # an invalid zoom: step 2 has no slow view at all, and the rollout scores 0
    assert invalid.step2.spec.slow_labels == [] and invalid.reward.total == 0.0
    assert other.step2 is None and other.reward == Reward(0.0, 1.0, False, "neither opening")
    # step 1 of all four rollouts was one batched call on the sample's context
    assert len(runner.prompts) == 3 and runner.prompts[0] is direct.step1.prompt


def test_step2_rezoom_masks_the_rollout(processor, video, renderer):
    replies = [
        "I need to zoom in on the video.\n\n\\boxed{[28, 41]}",
        "I need to zoom in on the video.\n\n\\boxed{[1, 9]}",
    ]
    (rollout,) = ScriptedRunner(processor, replies, renderer=renderer).run(None, [qa_record(video, ((5, 20),))])
    assert rollout.masked
    assert rollout.step2.spec.slow_labels == [(5, 20), (28, 41)]  # added to the sample's zoomin_intervals
    assert rollout_advantages([rollout, rollout], 2) == [(0.0, 0.0), (0.0, 0.0)]


def test_unreadable_video_masks_the_group(processor, tmp_path, renderer):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    rollouts = ScriptedRunner(processor, [], renderer=renderer).run(None, [qa_record(str(broken))] * 2)
    assert all(r.masked and r.step1 is None and "cannot read" in r.error for r in rollouts)


def test_grounding_rollouts_force_the_zoom_prefix_and_use_own_intervals(processor, video, renderer):
    replies = [
        "The card shows up here.\n\n\\boxed{[31, 38]}",  # step 1 (after the forced prefix): overlaps tgt
        "\\boxed{[60, 70]}",  # step 1: misses tgt
        "I need to zoom in on the video.\n\n\\boxed{[33, 36]}",  # step 2: hit
        "I get the answer.\n\n\\boxed{B}",  # step 2: an answer, no interval
    ]
    runner = ScriptedRunner(processor, replies, renderer=renderer)
    hit, miss = runner.run(None, [grounding_record(video)] * 2)
    assert hit.step1.spec.assistant_prefix == ZOOM_PREFIX and hit.step1.spec.slow_labels == []
    assert hit.step1.text.startswith(ZOOM_PREFIX)
    assert "<|im_start|>assistant\n" + ZOOM_PREFIX in processor.tokenizer.decode(hit.step1.prompt["input_ids"][0])
    assert hit.step2.spec.slow_labels == [(25, 45)]
    assert (hit.reward.total, miss.reward.total) == (2.0, 1.0)
    assert (hit.reward2.total, miss.reward2.total) == (2.0, 1.0)
    # grounding step 2 is normalised on its own rewards
    (a1, a2), (b1, b2) = rollout_advantages([hit, miss], 2)
    assert a1 > 0 > b1 and a2 > 0 > b2


def test_group_advantages_leave_masked_rollouts_out():
    rows = [(2.0, False, None), (0.0, False, None), (None, True, None), (1.0, False, None)]
    advantages = advantages_from_rows(rows, 4)
    assert advantages[2] == (0.0, 0.0)
    assert [round(a, 3) for a, _ in advantages] == [1.0, -1.0, 0.0, 0.0]
    assert all(a == b for a, b in advantages)  # QA: step 2 trained with the step-1 advantage
    # one unmasked rollout: std taken as 1; equal rewards: all zero
    assert advantages_from_rows([(2.0, False, None), (0.0, True, None)], 2) == [(0.0, 0.0), (0.0, 0.0)]
    assert advantages_from_rows([(1.0, False, None)] * 3, 3) == [(0.0, 0.0)] * 3
    with pytest.raises(ValueError):
        advantages_from_rows(rows, 3)


def test_clipped_surrogate_stops_the_gradient_outside_the_trust_region():
    logps = torch.tensor([-1.0, -1.0], requires_grad=True)
    old = torch.tensor([-1.0, -2.0])  # token 2: ratio e > 1.2
    loss, clipped = clipped_surrogate(logps, old, 1.0, 0.2, 0.2)
    loss.backward()
    assert clipped.tolist() == [False, True]
    assert logps.grad[1] == 0.0 and logps.grad[0] < 0.0
    # a negative advantage is clipped below 1 - eps instead
    logps = torch.tensor([-3.0], requires_grad=True)
    loss, clipped = clipped_surrogate(logps, torch.tensor([-1.0]), -1.0, 0.2, 0.2)
    assert clipped.tolist() == [True]


def test_record_rows_round_trip(video):
    for record in (qa_record(video, ((5.0, 20.0),)), grounding_record(video)):
        assert grpo_record_from_row(grpo_record_to_row(record)) == grpo_record_from_row(
            json.loads(json.dumps(grpo_record_to_row(record)))
        )
    assert grpo_record_from_row(grpo_record_to_row(grounding_record(video))).tgt == ((30.0, 40.0),)


# --------------------------------------------------------------------------- the loss on the tiny model


@pytest.fixture()
def trainer(tiny_model_path, processor, video, tmp_path, renderer):
    from datasets import Dataset
    from transformers import Qwen2_5_VLForConditionalGeneration
    from trl import GRPOConfig

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_path)
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=2,
        num_generations=2,  # a group of two: the smallest GRPO group
        max_completion_length=8,  # keep the test fast
        temperature=0.9,  # SPEC 4
        learning_rate=1e-3,
        beta=0.0,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
    )
    lover1 = LoveR1GRPOArguments(num_fast=SMALL.num_fast, fast_res=SMALL.fast_res, slow_res=SMALL.slow_res)
    dataset = Dataset.from_list([grpo_record_to_row(qa_record(video))])
    return build_grpo_trainer(lover1, args, train_dataset=dataset, model=model, processor=processor, renderer=renderer)


def hand_made(trainer, record: GRPORecord, text: str) -> Turn:
    runner = trainer.runner
    info = runner.renderer.probe(record.video)
    spec = build_grpo_step1(record, info, view_cfg=runner.view_cfg)
    ids = trainer.processing_class.tokenizer(text + "<|im_end|>", return_tensors="pt")["input_ids"][0]
    return Turn(spec, runner.prompt_inputs(spec), ids, text)


def sequence_logp(trainer, turn: Turn) -> float:
    with torch.no_grad():
        return float(completion_logps(trainer.model, turn, temperature=trainer.temperature)[0].sum())


def test_one_step_moves_probability_to_the_higher_reward_completion(trainer, video):
    record = qa_record(video)
    good = hand_made(trainer, record, "I get the answer.\n\n\\boxed{B}")
    bad = hand_made(trainer, record, "I get the answer.\n\n\\boxed{C}")
    rollouts = [
        Rollout(record, turn, reward=qa_reward(turn.text, None, answer="B", duration=80.0)) for turn in (good, bad)
    ]
    assert [r.reward.total for r in rollouts] == [2.0, 1.0]
    advantages = rollout_advantages(rollouts, 2)
    before = [sequence_logp(trainer, t) for t in (good, bad)]
    params = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, {"advantages": torch.tensor(advantages), "rollouts": rollouts})
    loss.backward()
    torch.optim.SGD([p for p in trainer.model.parameters() if p.requires_grad], lr=0.5).step()
    after = [sequence_logp(trainer, t) for t in (good, bad)]
    assert after[0] > before[0], "the higher-reward completion became more likely"
    assert after[1] < before[1], "the lower-reward completion became less likely"
    changed = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p, params[n])]
    assert changed
    assert all(not p.requires_grad for p in trainer.model.model.visual.parameters())  # vision tower frozen


def test_masked_rollouts_contribute_nothing(trainer, video):
    record = qa_record(video)
    turn = hand_made(trainer, record, "I get the answer.\n\n\\boxed{B}")
    rollouts = [Rollout(record, turn, masked=True), Rollout(record, turn, masked=True)]
    loss = trainer.compute_loss(trainer.model, {"advantages": torch.zeros(2, 2), "rollouts": rollouts})
    loss.backward()
    grads = [p.grad for p in trainer.model.parameters() if p.requires_grad and p.grad is not None]
    assert loss.item() == 0.0 and all(float(g.abs().sum()) == 0.0 for g in grads)


def test_loss_forward_continues_the_prompt_positions(trainer, video):
    turn = hand_made(trainer, qa_record(video), "I get the answer.\n\n\\boxed{B}")
    inputs, labels = turn_forward_inputs(turn)
    length = turn.prompt["input_ids"].shape[1]
    assert torch.equal(inputs["position_ids"][..., :length], turn.prompt["position_ids"])
    start = int(turn.prompt["position_ids"].max()) + 1
    n = turn.completion_ids.numel()
    assert torch.equal(inputs["position_ids"][:, 0, length:], torch.arange(start, start + n).expand(3, -1))
    assert (labels[0, :length] == -100).all() and torch.equal(labels[0, length:], turn.completion_ids)
    # reference quirk: videos placed at 1 s per grid step in the loss forward
    quirk, _ = turn_forward_inputs(turn, no_second_per_grid=True)
    ones = torch.ones_like(turn.prompt["second_per_grid_ts"])
    expected = rope_position_ids(inputs["input_ids"][0], turn.prompt["video_grid_thw"], ones)
    assert torch.equal(quirk["position_ids"][:, 0], expected)
    assert not torch.equal(quirk["position_ids"], inputs["position_ids"])  # 2 fps fast view differs from 1 s/step


def test_temperature_scales_the_trained_log_probs(trainer, video):
    turn = hand_made(trainer, qa_record(video), "I get the answer.\n\n\\boxed{B}")
    with torch.no_grad():
        warm, _ = completion_logps(trainer.model, turn, temperature=0.9)
        raw, _ = completion_logps(trainer.model, turn, temperature=1.0)
    assert not torch.allclose(warm, raw)
    assert trainer._logps(trainer.model, turn)[0].allclose(warm)  # default: divided by the temperature
    trainer.lover1_args.quirk_no_temperature = True
    assert trainer._logps(trainer.model, turn)[0].allclose(raw)


def test_step1_ratio_quirk_ignores_stored_log_probs(trainer, video):
    record = qa_record(video)
    turns = [hand_made(trainer, record, f"I get the answer.\n\n\\boxed{{{x}}}") for x in "BC"]
    rollouts = [Rollout(record, t, reward=Reward(1.0 - i, 1.0)) for i, t in enumerate(turns)]
    advantages = rollout_advantages(rollouts, 2)  # + for B, - for C
    for turn, (adv, _) in zip(turns, advantages, strict=True):
        # stored log-probs that put every ratio outside [0.8, 1.2] on the clipped side
        current = completion_logps(trainer.model, turn, temperature=trainer.temperature)[0].detach()
        turn.old_logps = current - 5.0 if adv > 0 else current + 5.0
    inputs = {"advantages": torch.tensor(advantages), "rollouts": rollouts}

    def grad_norm() -> float:
        trainer.model.zero_grad()
        trainer.compute_loss(trainer.model, inputs).backward()
        return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in trainer.model.parameters() if p.grad is not None))

    assert grad_norm() < 1e-8  # default: the stored log-probs are used, every token is clipped
    trainer.lover1_args.quirk_step1_ratio_one = True
    assert grad_norm() > 1e-4  # the reference: step 1 with the ratio fixed at 1


@pytest.mark.slow
def test_grpo_main_runs_two_steps_and_saves(tmp_path, video):
    from lover1_plugin.backends.hf import HFBackend
    from lover1_plugin.train.cli import config_path
    from lover1_plugin.train.grpo import main

    rows = [
        {"path": video, "problem": "Which word is on the card?\n", "options": list(OPTIONS),
         "problem_type": "multiple choice", "solution": "<answer>B</answer>"},
        {"path": video, "problem": "When is the card shown?", "problem_type": "temporal localization",
         "zoomin_intervals": [[25, 45]], "tgt": [[30, 40]]},
    ]  # fmt: skip
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    argv = ["--config", config_path("tiny_grpo.yaml"), "--train_file", str(data), "--output_dir", str(out)]
    assert main(argv + ["--num_fast", "8", "--fast_res", "4", "--slow_res", "8"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    logged = [entry for entry in state["log_history"] if "reward" in entry]
    assert logged and {"format", "accuracy", "masked_rate", "zoom_rate"} <= set(logged[0])
    assert (out / "checkpoint-2").is_dir()
    backend = HFBackend.from_pretrained(str(out), device="cpu")
    assert isinstance(
        backend.generate([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], [], max_new_tokens=2), str
    )


def test_generation_batch_samples_scores_and_stores_old_log_probs(trainer, video):
    """The trainer's own rollout hook on the tiny model: sampled completions, rewards, advantages."""
    trainer.num_iterations = 2  # a batch reused for two updates needs the sampling-time log-probs
    torch.manual_seed(0)
    rows = [grpo_record_to_row(qa_record(video))] * 2
    batch = trainer._generate_and_score_completions(rows)
    assert batch["advantages"].shape == (2, 2)
    for rollout in batch["rollouts"]:
        assert rollout.step1.completion_ids.numel() <= 8  # max_completion_length
        assert rollout.reward is not None and rollout.step1.old_logps is not None
        now = completion_logps(trainer.model, rollout.step1, temperature=0.9)[0]
        assert torch.allclose(rollout.step1.old_logps, now.detach(), atol=1e-5)
    metrics = trainer._metrics["eval" if not trainer.model.training else "train"]
    assert {"reward", "format", "accuracy", "masked_rate", "completion_length"} <= set(metrics)
