"""SFT over TRL: configs with the paper's settings, the video loss, frozen vision, save and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from lover1_plugin.config import ViewConfig
from lover1_plugin.prompts import build_conversation
from lover1_plugin.synthetic import make_needle_video
from lover1_plugin.train.cli import config_path
from lover1_plugin.train.collator import VideoSFTCollator, sample_to_row
from lover1_plugin.train.samples import SampleSpec
from lover1_plugin.train.sft import (
    LoveR1SFTArguments,
    build_sft_trainer,
    freeze_vision_tower,
    parse_sft_args,
    vision_tower,
)
from lover1_plugin.video import ViewRenderer, plan_fast_view, plan_slow_view

SMALL = ViewConfig(num_fast=8, fast_res=4, num_slow=4, slow_res=8, short_video_s=120, factor_on_slow=False)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("sft") / "needle.mp4"
    return str(
        make_needle_video(path, duration_s=30, fps=1.0, size=(96, 160), needle_span=(10, 16), needle_text="RIVER").path
    )


@pytest.fixture(scope="module")
def processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path)


def test_vision_tower_is_frozen_and_the_language_model_is_not(tiny_model_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_path)
    assert vision_tower(model) is model.model.visual  # transformers 5 layout
    assert freeze_vision_tower(model) > 0
    assert not any(p.requires_grad for p in model.model.visual.parameters())
    assert all(p.requires_grad for p in model.model.language_model.parameters())


def test_stage_configs_carry_the_papers_settings():
    # bf16 needs a GPU; the configs are parsed here with it off, everything else as written
    stages = {}
    for name in ("stage1", "stage2"):
        args, training = parse_sft_args(["--config", config_path(f"{name}.yaml"), "--bf16", "false"])
        stages[name] = (args, training)
        assert training.learning_rate == 1e-5 and training.warmup_steps == 0.05
        assert training.per_device_train_batch_size * training.gradient_accumulation_steps * 8 == 128
        assert training.max_grad_norm == 5.0 and args.freeze_vision and args.max_tokens == 20500
        assert (args.num_fast, args.fast_res, args.slow_res, args.short_video_s) == (768, 32, 256, 120)
        raw = yaml.safe_load(Path(config_path(f"{name}.yaml")).read_text())
        assert raw["bf16"] is True and raw["gradient_checkpointing"] is True
    assert stages["stage1"][1].num_train_epochs == 1 and stages["stage2"][1].num_train_epochs == 2
    assert stages["stage2"][0].model_name_or_path == stages["stage1"][1].output_dir

    from lover1_plugin.train.grpo import parse_grpo_args

    # one process: 8 rollouts per micro-step make a full group (8 GPUs run 1 each)
    args, grpo = parse_grpo_args(
        ["--config", config_path("stage3.yaml"), "--bf16", "false", "--per_device_train_batch_size", "8"]
    )
    assert (grpo.num_generations, grpo.temperature, grpo.max_completion_length) == (8, 0.9, 512)
    assert (grpo.beta, grpo.epsilon, grpo.learning_rate, grpo.weight_decay) == (0.0, 0.2, 1e-6, 0.01)
    assert grpo.lr_scheduler_type == "cosine" and grpo.gradient_accumulation_steps == 4 and grpo.max_grad_norm == 5
    assert args.short_video_s == 60 and args.freeze_vision
    assert not (args.quirk_step1_ratio_one or args.quirk_no_second_per_grid or args.quirk_no_temperature)
    assert args.model_name_or_path == stages["stage2"][1].output_dir


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    single = load_config_from_file(config_path("accelerate/single_gpu.yaml"))
    zero3 = load_config_from_file(config_path("accelerate/zero3_8gpu.yaml"))
    offload = load_config_from_file(config_path("accelerate/zero3_offload_8gpu.yaml"))
    assert single.num_processes == 1 and str(single.distributed_type).endswith("NO")
    for config in (zero3, offload):
        assert config.num_processes == 8 and config.deepspeed_config["zero_stage"] == 3
        assert config.deepspeed_config["zero3_save_16bit_model"] is True  # checkpoints load with from_pretrained
    assert offload.deepspeed_config["offload_optimizer_device"] == "cpu"
    assert zero3.deepspeed_config["offload_optimizer_device"] == "none"


def test_loss_sees_the_3d_positions_and_equals_full_logits_cross_entropy(tmp_path, processor, tiny_model_path, video):
    from datasets import Dataset
    from transformers import Qwen2_5_VLForConditionalGeneration
    from trl import SFTConfig

    renderer = ViewRenderer()
    info = renderer.probe(video)
    plans = (plan_fast_view(info, SMALL), plan_slow_view(info, 8, 20, SMALL))
    zoomed = build_conversation(int(info.duration), "Which word?", [plans[1].label])
    overview = build_conversation(int(info.duration), "Which word?")
    samples = [
        SampleSpec(video, zoomed, plans, target="I get the answer.\n\n\\boxed{B}"),
        SampleSpec(video, overview, plans[:1], target="I need to zoom in on the video.\n\n\\boxed{[9, 17]}"),
    ]
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_path)
    collator = VideoSFTCollator(processor, renderer=renderer)
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", gradient_checkpointing=False)
    trainer = build_sft_trainer(
        LoveR1SFTArguments(max_tokens=0),
        args,
        train_dataset=Dataset.from_list([sample_to_row(s) for s in samples]),
        collator=collator,
        model=model,
        processor=processor,
    )
    assert trainer.args.remove_unused_columns is False
    assert trainer.args.dataset_kwargs["skip_prepare_dataset"] is True
    batch = collator(samples)
    seen = {}

    def capture(module, args, kwargs):
        seen["position_ids"] = kwargs["position_ids"]

    hook = model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    hook.remove()
    assert torch.equal(seen["position_ids"], batch["position_ids"])  # (3, B, L), the collator's SPEC 1b ids
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    reference = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1), ignore_index=-100
    )
    assert torch.allclose(loss, reference, atol=1e-5)
    assert 0.0 <= trainer._metrics["train"]["mean_token_accuracy"][-1] <= 1.0


def write_sft_records(folder: Path, video: str) -> Path:
    records = [
        {"video": video, "messages": [{"role": "user", "content": "<video>\nWhich word is on the card?"},
                                      {"role": "assistant", "content": "I get the answer.\n\n\\boxed{B}"}],
         "zoomin_intervals": [[8, 20]], "cot_data": {"steps": 1}},
        {"video": video, "messages": [{"role": "user", "content": "<video>\nWhen is the card shown?"},
                                      {"role": "assistant", "content": "I need to zoom in on the video.\n\n\\boxed{[9, 17]}"}],
         "cot_data": {"steps": 1}},
    ]  # fmt: skip
    path = folder / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.slow
def test_sft_main_trains_saves_a_loadable_checkpoint_and_resumes(tmp_path, video, tiny_model_path):
    from safetensors.torch import load_file
    from transformers import AutoProcessor

    from lover1_plugin.backends.hf import HFBackend
    from lover1_plugin.tiny import CHAT_TEMPLATE
    from lover1_plugin.train.sft import main

    out = tmp_path / "out"
    argv = ["--config", config_path("tiny_sft.yaml"), "--train_file", str(write_sft_records(tmp_path, video))]
    argv += ["--output_dir", str(out), "--num_fast", "8", "--fast_res", "4", "--slow_res", "8", "--save_steps", "1"]
    assert main(argv + ["--max_steps", "2"]) == 0
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    assert json.loads((out / "lover1_train.json").read_text())["stage"] == "sft"
    # the saved model: language model trained, vision tower untouched
    before, after = (
        load_file(str(Path(tiny_model_path) / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("visual" in k for k in before)  # the checkpoint holds the vision tower ...
    assert not any("visual" in k for k in changed)  # ... untouched
    assert any("layers" in k for k in changed)  # the language model was trained
    # processor + chat template saved: the HF backend (and so the graph and lmms-eval) loads it as is
    assert AutoProcessor.from_pretrained(out).chat_template == CHAT_TEMPLATE
    backend = HFBackend.from_pretrained(str(out), device="cpu")
    assert isinstance(
        backend.generate([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], [], max_new_tokens=3), str
    )
    # a second run with a larger budget resumes from checkpoint-2 instead of starting over
    assert main(argv + ["--max_steps", "3"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3]


def test_train_cli_dispatches_and_explains_itself(capsys):
    from lover1_plugin.train.cli import USAGE, main

    assert main(["--help"]) == 0 and USAGE in capsys.readouterr().out
    assert main([]) == 2
    assert main(["pretrain"]) == 2 and "unknown training stage 'pretrain'" in capsys.readouterr().err
    assert Path(config_path("stage3.yaml")).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_stages_run_as_modules(stage):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", f"lover1_plugin.train.{stage}", "--help"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "--model_name_or_path" in done.stdout and "--config" not in done.stderr
    assert ("--loss_on" in done.stdout) == (stage == "sft") and ("--quirk_no_temperature" in done.stdout) == (
        stage == "grpo"
    )


def test_overlong_and_unreadable_records_are_dropped(tmp_path, processor, video):
    from lover1_plugin.train.schema import SFTRecord
    from lover1_plugin.train.sft import filter_overlong

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    short = SFTRecord("sft.jsonl", 0, video, "Q?", "I get the answer.\n\n\\boxed{B}", zoomin_intervals=((8, 20),))
    long = SFTRecord("sft.jsonl", 1, video, "Q? " * 400, "I get the answer.\n\n\\boxed{B}", zoomin_intervals=((8, 20),))
    unreadable = SFTRecord("sft.jsonl", 2, str(broken), "Q?", "I get the answer.\n\n\\boxed{B}")
    kept = filter_overlong([short, long, unreadable], processor, SMALL, max_tokens=600)
    assert kept == [short]
