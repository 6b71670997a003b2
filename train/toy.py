"""``lover1 train toy``: a CPU-sized LOVE-R1 run that shows the whole recipe learns.

Starting from the tiny random Qwen2.5-VL (:func:`lover1_plugin.tiny.build_tiny_model`):

1. write needle videos (:func:`lover1_plugin.synthetic.make_needle_dataset`: a word on a
   small card, visible for 8-16 s of a 90, 150 or 600 s video at 1 fps), some for training and some
   held out;
2. measure how often the model's greedy reply is SPEC-valid on the held-out prompts
   (opening ``I need to zoom in on the video.\\n\\n`` with a readable ``\\boxed{[s, e]}``,
   or ``I get the answer.\\n\\n`` with an answer box; read by :mod:`lover1_plugin.decisions`);
3. SFT (:mod:`train.sft`, TRL ``SFTTrainer``) on SPEC-format replies: without a zoom
   clip ``I need to zoom in on the video.\\n\\nThe word is too small to read.\\n\\n\\boxed{[s, e]}``
   around the needle, with the needle clip in context ``I get the answer.\\n\\n\\boxed{X}``;
   the prompts are the loop's (``format_question``, the ``[s, e]`` clip the SPEC 3 policy
   makes of the proposal) and the GRPO ones (:mod:`train.samples`);
4. measure validity again (it must reach ``target_validity``, 90%);
5. decoupled GRPO (:mod:`train.grpo`) for a few steps, measuring the mean reward of
   sampled rollouts (temperature 0.9, fixed seed) on held-out questions before, during
   and after;
6. save the checkpoint atomically to :func:`lover1_plugin.paths.toy_checkpoint_dir`, where
   ``lover1 demo`` looks first, with ``lover1_toy.json`` (the view settings it was
   trained with, the measurements) beside it, and print a summary table.

Toy view settings (documented deviation from the 768+32-frame recipe, to fit a 2-core
CPU): fast view 16 frames at ``fast_res`` 8 (56x84 px, 48 tokens), zoom clips 8 frames at
``slow_res`` 16 (84x140 px, 60 tokens). Evaluate the checkpoint with the same settings
(``lover1_toy.json`` lists them as preset overrides); the default 768-frame views are
far outside what it saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lover1_plugin.config import LoopConfig, ViewConfig
from lover1_plugin.decisions import Decision, parse_decision
from lover1_plugin.paths import cache_dir, toy_checkpoint_dir
from lover1_plugin.policy import Zoom, next_step
from lover1_plugin.prompts import ANSWER_PREFIX, ZOOM_PREFIX, build_conversation, format_question
from lover1_plugin.synthetic import make_needle_dataset
from lover1_plugin.video import ViewRenderer, plan_fast_view, plan_slow_view

from .collator import VideoSFTCollator, sample_to_row
from .grpo import LoveR1GRPOArguments, RolloutRunner, build_grpo_trainer, grpo_record_to_row, summarize_rollouts
from .samples import SampleSpec, build_grpo_step1, build_grpo_step2
from .schema import GRPORecord
from .sft import LoveR1SFTArguments, build_sft_trainer, load_model

logger = logging.getLogger(__name__)

ZOOM_REASONING = "The word is too small to read.\n\n"  # the toy's short reasoning before the zoom box
GROUNDING_QUESTION = "When is the word on the small white card visible?"
GRID_S = 10  # zoom targets are whole multiples of 10 s (see jittered_proposal)
TOY_MARKER = "lover1_toy.json"


@dataclass
class ToyConfig:
    """Settings of the toy run (defaults: about 10 minutes on 2 CPU cores)."""

    output_dir: str | None = field(
        default=None, metadata={"help": "Where the checkpoint goes (default: toy_checkpoint_dir())."}
    )
    work_dir: str | None = field(
        default=None, metadata={"help": "Videos and trainer scratch (default: cache_dir('toy-run'))."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the data, the model and the samplers."})
    durations_s: str = field(
        default="90,150,600",
        metadata={
            "help": "Needle video lengths, comma-separated, used in turn (>= 60 s: no short-video factor); "
            "150 s is the love_r1_needle task's, 600 s the demo's."
        },
    )
    fps: float = field(default=1.0, metadata={"help": "Frame rate of the needle videos."})
    train_videos: int = field(default=24, metadata={"help": "Needle videos to train on."})
    eval_videos: int = field(default=12, metadata={"help": "Held-out needle videos (2 validity prompts each)."})
    reward_videos: int = field(default=8, metadata={"help": "Held-out videos the GRPO reward is measured on."})
    variants: int = field(default=3, metadata={"help": "Jittered SFT samples per video and prompt kind."})
    num_fast: int = field(default=16, metadata={"help": "Fast-view frames (toy size)."})
    fast_res: int = field(default=8, metadata={"help": "Fast-view budget in 28x28 patches (toy size)."})
    num_slow: int = field(default=8, metadata={"help": "Zoom-clip frames (toy size)."})
    slow_res: int = field(default=16, metadata={"help": "Zoom-clip budget in 28x28 patches (toy size)."})
    sft_steps: int = field(default=320, metadata={"help": "SFT optimizer steps."})
    sft_batch: int = field(default=4, metadata={"help": "SFT samples per step."})
    sft_lr: float = field(default=3e-3, metadata={"help": "SFT learning rate (a random 10M model needs a large one)."})
    grpo_steps: int = field(default=12, metadata={"help": "GRPO optimizer steps."})
    grpo_prompts: int = field(
        default=4, metadata={"help": "Questions per GRPO step (each with num_generations rollouts)."}
    )
    num_generations: int = field(default=8, metadata={"help": "Rollouts per question (SPEC 4: 8)."})
    grpo_lr: float = field(default=1e-3, metadata={"help": "GRPO peak learning rate (cosine decay to 0)."})
    temperature: float = field(default=0.9, metadata={"help": "Rollout temperature (SPEC 4: 0.9)."})
    max_new_tokens: int = field(default=40, metadata={"help": "Tokens per reply in evaluation and rollouts."})
    eval_points: int = field(default=5, metadata={"help": "GRPO reward measurements (before, ..., after); >= 2."})
    target_validity: float = field(default=0.9, metadata={"help": "Required share of SPEC-valid replies after SFT."})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (1 is fastest for this tiny model)."})

    def durations(self) -> list[float]:
        """:attr:`durations_s` as numbers."""
        values = [float(v) for v in str(self.durations_s).split(",") if v.strip()]
        if not values or any(v < 60 for v in values):
            raise ValueError(f"durations_s must list lengths of at least 60 s, got {self.durations_s!r}")
        return values

    def view_config(self) -> ViewConfig:
        return ViewConfig(
            num_fast=self.num_fast, fast_res=self.fast_res, num_slow=self.num_slow, slow_res=self.slow_res
        )

    def preset_overrides(self) -> dict[str, int]:
        """The view settings to evaluate the checkpoint with (``run_love_r1(..., **overrides)``)."""
        return {
            "num_fast": self.num_fast,
            "fast_res": self.fast_res,
            "num_slow": self.num_slow,
            "slow_res": self.slow_res,
        }


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class NeedleQuestion:
    """One needle video and its multiple-choice question (a ``make_needle_dataset`` record)."""

    video: str
    question: str
    options: tuple[str, ...]
    answer: str
    needle_span: tuple[float, float]
    duration: float
    id: str = ""

    def grpo_record(self) -> GRPORecord:
        """The stage-3 QA record of this question (no clip zoomed yet)."""
        return GRPORecord("toy", 0, self.video, self.question + "\n", self.options, "multiple choice", self.answer)

    def grounding_record(self) -> GRPORecord:
        """The stage-3 grounding record of this video: find the needle (``tgt``); step 2 sees a
        clip 10 s wider on each side than :func:`needle_interval` (so that proposing the needle
        there stays under the IoU 0.7 format limit)."""
        start, end = needle_interval(self)
        clip = (max(0, start - GRID_S), min(int(self.duration), end + GRID_S))
        return GRPORecord(
            "toy", 1, self.video, GROUNDING_QUESTION, (), "temporal localization", "", (clip,), (self.needle_span,)
        )


def make_questions(folder: Path, count: int, cfg: ToyConfig, seed: int) -> list[NeedleQuestion]:
    """``count`` needle questions spread over ``cfg.durations()`` (round robin), each duration's
    videos written once into ``folder/<D>s`` and reused when present."""
    durations = cfg.durations()
    questions: list[NeedleQuestion] = []
    for k, duration in enumerate(durations):
        share = count // len(durations) + (k < count % len(durations))
        if share:
            sub = folder / f"{duration:g}s"
            questions += _needle_questions(sub, share, duration, cfg.fps, seed * 10 + k)
    return questions


def _needle_questions(folder: Path, count: int, duration: float, fps: float, seed: int) -> list[NeedleQuestion]:
    index = folder / "needle.json"
    records = json.loads(index.read_text()) if index.exists() else None
    if records is not None and (len(records) != count or not all((folder / r["video"]).exists() for r in records)):
        records = None
    if records is None:
        records = make_needle_dataset(folder, num_questions=count, duration_s=duration, fps=fps, seed=seed)
    return [
        NeedleQuestion(
            video=str(folder / r["video"]),
            question=r["question"],
            options=tuple(r["options"]),
            answer=r["answer"],
            needle_span=(float(r["needle_span"][0]), float(r["needle_span"][1])),
            duration=float(r["duration"]),
            id=r["id"],
        )
        for r in records
    ]


def zoom_target(proposal: tuple[int, int]) -> str:
    """``I need to zoom in on the video.\\n\\n`` + short reasoning + ``\\boxed{[s, e]}``."""
    return f"{ZOOM_PREFIX}{ZOOM_REASONING}\\boxed{{[{proposal[0]}, {proposal[1]}]}}"


def answer_target(letter: str) -> str:
    """``I get the answer.\\n\\n\\boxed{X}``."""
    return f"{ANSWER_PREFIX}\\boxed{{{letter}}}"


def to_grid(start: float, end: float, duration: float) -> tuple[int, int]:
    """``[start, end]`` widened outwards to whole multiples of ``GRID_S`` (10 s), clamped to the video.

    >>> to_grid(22.0, 31.5, 90.0), to_grid(3.0, 9.0, 90.0), to_grid(80.0, 89.0, 90.0)
    ((20, 40), (0, 10), (80, 90))
    """
    low = int(math.floor(start / GRID_S)) * GRID_S
    high = int(math.ceil(end / GRID_S)) * GRID_S
    return (max(0, low), min(int(duration), max(high, low + GRID_S)))


def needle_interval(question: NeedleQuestion) -> tuple[int, int]:
    """The needle span on the 10 s grid (covering it): the toy's zoom target."""
    return to_grid(*question.needle_span, question.duration)


def jittered_proposal(question: NeedleQuestion, rng: random.Random) -> tuple[int, int]:
    """A zoom proposal around the needle: its span widened by 0-3 s on each side, then put on the 10 s grid.

    Whole tens keep the number of distinct targets small, so a 10M-parameter model learns the
    ``\\boxed{[s, e]}`` format quickly; the interval still covers the needle.
    """
    start, end = question.needle_span
    return to_grid(start - rng.randint(0, 3), end + rng.randint(0, 3), question.duration)


def loop_clip(proposal: tuple[int, int], duration: float) -> tuple[int, int]:
    """The clip the inference loop zooms into for ``proposal`` (SPEC 3: pad, clamp, widen)."""
    step = next_step(Decision("zoom", interval=proposal), [], duration, LoopConfig())
    if not isinstance(step, Zoom):
        raise ValueError(f"the loop would not zoom into {proposal}: {step}")
    return step.interval


def loop_prompt(question: NeedleQuestion, renderer: ViewRenderer, view_cfg: ViewConfig, clip=None) -> SampleSpec:
    """The round the LangGraph loop builds: fast view, then the zoomed clip if any (SPEC 2)."""
    info = renderer.probe(question.video)
    plans = [plan_fast_view(info, view_cfg)]
    if clip is not None:
        plans.append(plan_slow_view(info, clip[0], clip[1], view_cfg))
    text = format_question(question.question, list(question.options), "mlvu")
    messages = build_conversation(int(info.duration), text, [p.label for p in plans[1:]])
    return SampleSpec(question.video, messages, tuple(plans), where=question.id)


def sft_samples(
    questions: Sequence[NeedleQuestion], renderer: ViewRenderer, view_cfg: ViewConfig, variants: int, seed: int
) -> list[SampleSpec]:
    """SFT samples: per question and variant, the loop's two rounds, the two steps of a GRPO QA
    rollout and of a GRPO grounding rollout, each with its SPEC-format target."""
    rng = random.Random(seed)
    grpo_cfg = dataclasses.replace(view_cfg, factor_on_slow=False)
    samples = []
    for question in questions:
        info = renderer.probe(question.video)
        record = question.grpo_record()
        for _ in range(variants):
            proposal = jittered_proposal(question, rng)
            zoom, answer = zoom_target(proposal), answer_target(question.answer)
            clip = loop_clip(proposal, info.duration)
            samples.append(dataclasses.replace(loop_prompt(question, renderer, view_cfg), target=zoom))
            samples.append(dataclasses.replace(loop_prompt(question, renderer, view_cfg, clip), target=answer))
            samples.append(dataclasses.replace(build_grpo_step1(record, info, view_cfg=grpo_cfg), target=zoom))
            step2 = build_grpo_step2(record, info, proposal, view_cfg=grpo_cfg)
            samples.append(dataclasses.replace(step2, target=answer))
            grounding = question.grounding_record()
            step1 = build_grpo_step1(grounding, info, view_cfg=grpo_cfg)  # ZOOM_PREFIX is forced, not trained
            samples.append(dataclasses.replace(step1, target=zoom[len(ZOOM_PREFIX) :]))
            # step 2 already sees a clip around the needle: propose the needle itself (IoU with the clip <= 0.6)
            step2 = build_grpo_step2(grounding, info, view_cfg=grpo_cfg)
            samples.append(dataclasses.replace(step2, target=zoom_target(needle_interval(question))))
    rng.shuffle(samples)
    return samples


# --------------------------------------------------------------------------- measurements


def is_spec_valid(reply: str) -> bool:
    """An opening of SPEC 2 followed by a box that decides: a readable zoom interval, or an answer.

    >>> is_spec_valid("I need to zoom in on the video.\\n\\nx \\\\boxed{[3, 9]}<|im_end|>")
    True
    >>> is_spec_valid("I get the answer.\\n\\n\\\\boxed{[3, 9}"), is_spec_valid("\\\\boxed{B}")
    (False, False)
    """
    decision = parse_decision(reply)
    if reply.startswith(ZOOM_PREFIX):
        return decision.kind == "zoom"
    if reply.startswith(ANSWER_PREFIX):
        return decision.kind == "answer"
    return False


def validity_prompts(
    questions: Sequence[NeedleQuestion], renderer: ViewRenderer, view_cfg: ViewConfig, seed: int
) -> list[tuple[SampleSpec, str]]:
    """Held-out prompts and the opening each should get: the loop's first round (zoom) and,
    with the needle clip zoomed, its second round (answer)."""
    rng = random.Random(seed + 1)
    prompts = []
    for question in questions:
        info = renderer.probe(question.video)
        clip = loop_clip(jittered_proposal(question, rng), info.duration)
        prompts.append((loop_prompt(question, renderer, view_cfg), "zoom"))
        prompts.append((loop_prompt(question, renderer, view_cfg, clip), "answer"))
    return prompts


def measure_validity(
    model: Any, processor: Any, prompts: Sequence[tuple[SampleSpec, str]], renderer: ViewRenderer, max_new_tokens: int
) -> dict[str, Any]:
    """Greedy replies through the HF backend (the inference path); share valid and share of the right kind."""
    from lover1_plugin.backends.hf import HFBackend

    was_training = model.training
    model.eval()
    backend = HFBackend(model, processor, reuse=False)
    valid = right = 0
    examples = []
    for spec, expected in prompts:
        views = [renderer.render(plan) for plan in spec.views]
        reply = backend.generate(spec.messages, views, max_new_tokens=max_new_tokens)
        ok = is_spec_valid(reply)
        valid += ok
        right += ok and parse_decision(reply).kind == expected
        if len(examples) < 4:
            examples.append(reply)
    model.train(was_training)
    n = max(1, len(prompts))
    return {"validity": valid / n, "right_kind": right / n, "prompts": len(prompts), "examples": examples}


def measure_reward(
    model: Any, runner: RolloutRunner, records: Sequence[GRPORecord], num_generations: int, seed: int
) -> dict[str, float]:
    """Mean reward of sampled rollouts on fixed records (same seed each time; training RNG untouched)."""
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rollouts = runner.run(model, [r for r in records for _ in range(num_generations)])
    model.train(was_training)
    return summarize_rollouts(rollouts)


# --------------------------------------------------------------------------- the run


@dataclass
class ToyReport:
    """What the toy run measured."""

    checkpoint: str
    validity_before: float
    validity_after: float
    right_kind_after: float
    validity_after_grpo: float
    reward_curve: list[tuple[int, dict[str, float]]]
    sft_loss: list[float]
    seconds: dict[str, float]
    examples: list[str]

    def table(self) -> str:
        """The summary table ``lover1 train toy`` prints."""
        rows = [
            ("SPEC-valid replies before SFT", f"{self.validity_before:.0%}"),
            ("SPEC-valid replies after SFT", f"{self.validity_after:.0%}"),
            ("right decision after SFT", f"{self.right_kind_after:.0%}"),
            ("SPEC-valid replies after GRPO", f"{self.validity_after_grpo:.0%}"),
            ("SFT loss first -> last", f"{self.sft_loss[0]:.3f} -> {self.sft_loss[-1]:.3f}" if self.sft_loss else "-"),
        ]
        for step, stats in self.reward_curve:
            rows.append(
                (
                    f"GRPO reward at step {step}",
                    f"{stats['reward']:.3f} (format {stats['format']:.2f}, accuracy {stats['accuracy']:.2f})",
                )
            )
        rows += [(f"time: {name}", f"{value:.0f} s") for name, value in self.seconds.items()]
        rows.append(("checkpoint", self.checkpoint))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _reward_callback(runner: RolloutRunner, records, cfg: ToyConfig, curve: list, at_steps: set[int]):
    from transformers import TrainerCallback

    class RewardCurve(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in at_steps and all(step != state.global_step for step, _ in curve):
                stats = measure_reward(model, runner, records, cfg.num_generations, cfg.seed + 7)
                curve.append((state.global_step, stats))
                logger.info("GRPO step %d: eval reward %.3f", state.global_step, stats["reward"])

    return RewardCurve()


def _eval_steps(total: int, points: int) -> set[int]:
    """``points - 1`` evenly spread steps in ``1..total`` (step 0 is measured before training)."""
    return {max(1, round(total * k / (points - 1))) for k in range(1, points)}


def run_sft(model, processor, samples, cfg: ToyConfig, work: Path, renderer: ViewRenderer) -> list[float]:
    """The SFT phase through :func:`train.sft.build_sft_trainer`; returns the logged losses."""
    from datasets import Dataset
    from trl import SFTConfig

    args = LoveR1SFTArguments(model_name_or_path="tiny", max_tokens=0)
    training_args = SFTConfig(
        output_dir=str(work / "sft"),
        max_steps=cfg.sft_steps,
        per_device_train_batch_size=cfg.sft_batch,
        learning_rate=cfg.sft_lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.0,
        max_grad_norm=5.0,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    collator = VideoSFTCollator(processor, renderer=renderer)
    dataset = Dataset.from_list([sample_to_row(s) for s in samples])
    trainer = build_sft_trainer(
        args, training_args, train_dataset=dataset, collator=collator, model=model, processor=processor
    )
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def run_grpo(model, processor, cfg: ToyConfig, work: Path, train_records, eval_records, renderer) -> list:
    """The GRPO phase through :func:`train.grpo.build_grpo_trainer`; returns the reward curve."""
    from datasets import Dataset
    from trl import GRPOConfig

    view_cfg = dataclasses.replace(cfg.view_config(), factor_on_slow=False)
    args = LoveR1GRPOArguments(
        model_name_or_path="tiny", num_fast=cfg.num_fast, fast_res=cfg.fast_res, slow_res=cfg.slow_res
    )
    training_args = GRPOConfig(
        output_dir=str(work / "grpo"),
        max_steps=cfg.grpo_steps,
        per_device_train_batch_size=cfg.num_generations,  # one group per micro-step
        gradient_accumulation_steps=cfg.grpo_prompts,
        num_generations=cfg.num_generations,
        temperature=cfg.temperature,
        max_completion_length=cfg.max_new_tokens,
        beta=0.0,
        epsilon=0.2,
        learning_rate=cfg.grpo_lr,
        lr_scheduler_type="cosine",  # as SPEC 4's stage 3; the decay also steadies the last steps
        weight_decay=0.01,
        max_grad_norm=5.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    runner = RolloutRunner(
        processor,
        view_cfg=view_cfg,
        temperature=cfg.temperature,
        max_completion_length=cfg.max_new_tokens,
        renderer=renderer,
    )
    curve = [(0, measure_reward(model, runner, eval_records, cfg.num_generations, cfg.seed + 7))]
    logger.info("GRPO step 0: eval reward %.3f", curve[0][1]["reward"])
    callback = _reward_callback(runner, eval_records, cfg, curve, _eval_steps(cfg.grpo_steps, cfg.eval_points))
    dataset = Dataset.from_list([grpo_record_to_row(r) for r in train_records])
    trainer = build_grpo_trainer(
        args,
        training_args,
        train_dataset=dataset,
        model=model,
        processor=processor,
        callbacks=[callback],
        renderer=renderer,
    )
    trainer.train()
    return curve


def save_checkpoint_atomically(model, processor, target: Path, extra: dict[str, Any]) -> Path:
    """Write model + processor to a temporary sibling, then swap it into ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / TOY_MARKER).write_text(json.dumps(extra, indent=2) + "\n")
        tmp.chmod(0o755)
        if target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def run_toy(cfg: ToyConfig | None = None) -> ToyReport:
    """The whole toy run (see the module docstring); raises ``RuntimeError`` when SFT misses the target."""
    from lover1_plugin.tiny import build_tiny_model

    cfg = cfg or ToyConfig()
    if cfg.eval_points < 2:
        raise ValueError(f"eval_points must be >= 2 (before and after), got {cfg.eval_points}")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    try:
        work = Path(cfg.work_dir) if cfg.work_dir else cache_dir("toy-run")
        tick = time.perf_counter()
        train_q = make_questions(work / f"train-{cfg.seed}", cfg.train_videos, cfg, seed=1000 + cfg.seed)
        eval_q = make_questions(work / f"eval-{cfg.seed}", cfg.eval_videos, cfg, seed=2000 + cfg.seed)
        renderer = ViewRenderer(max_cached_views=4096, max_open_videos=cfg.train_videos + cfg.eval_videos)
        view_cfg = cfg.view_config()
        samples = sft_samples(train_q, renderer, view_cfg, cfg.variants, cfg.seed)
        prompts = validity_prompts(eval_q, renderer, view_cfg, cfg.seed)
        seconds["data"] = time.perf_counter() - tick

        torch.manual_seed(cfg.seed)
        model, processor = load_model(str(build_tiny_model()))
        tick = time.perf_counter()
        before = measure_validity(model, processor, prompts, renderer, cfg.max_new_tokens)
        logger.info("validity before SFT: %.0f%%", 100 * before["validity"])
        losses = run_sft(model, processor, samples, cfg, work, renderer)
        after = measure_validity(model, processor, prompts, renderer, cfg.max_new_tokens)
        logger.info("validity after SFT: %.0f%% (%s)", 100 * after["validity"], after["examples"][:2])
        seconds["sft"] = time.perf_counter() - tick
        if after["validity"] < cfg.target_validity:
            raise RuntimeError(
                f"SFT reached {after['validity']:.0%} SPEC-valid replies, below the target {cfg.target_validity:.0%}; "
                "raise sft_steps or sft_lr"
            )

        tick = time.perf_counter()
        train_records = [q.grounding_record() for q in train_q]
        eval_records = [q.grounding_record() for q in eval_q[: cfg.reward_videos]]
        curve = run_grpo(model, processor, cfg, work, train_records, eval_records, renderer)
        final = measure_validity(model, processor, prompts, renderer, cfg.max_new_tokens)
        seconds["grpo"] = time.perf_counter() - tick

        target = Path(cfg.output_dir) if cfg.output_dir else toy_checkpoint_dir()
        seconds["total"] = time.perf_counter() - started
        report = ToyReport(
            checkpoint=str(target),
            validity_before=before["validity"],
            validity_after=after["validity"],
            right_kind_after=after["right_kind"],
            validity_after_grpo=final["validity"],
            reward_curve=curve,
            sft_loss=losses,
            seconds=seconds,
            examples=after["examples"],
        )
        extra = {
            "preset_overrides": cfg.preset_overrides(),
            "durations_s": cfg.durations(),
            "validity_before": report.validity_before,
            "validity_after": report.validity_after,
            "validity_after_grpo": report.validity_after_grpo,
            "reward_curve": [[step, stats] for step, stats in curve],
            "seconds": seconds,
        }
        save_checkpoint_atomically(model, processor, target, extra)
        return report
    finally:
        torch.set_num_threads(threads)


def parse_toy_args(argv: Sequence[str] | None = None) -> ToyConfig:
    """``lover1 train toy [--sft_steps N ...]``: one flag per :class:`ToyConfig` field."""
    parser = argparse.ArgumentParser(prog="lover1 train toy", description=__doc__.split("\n\n")[0])
    for item in dataclasses.fields(ToyConfig):
        kind = {"int": int, "float": float}.get(str(item.type).split(" ")[0], str)
        parser.add_argument(f"--{item.name}", type=kind, default=item.default, help=item.metadata.get("help"))
    return ToyConfig(**vars(parser.parse_args(list(argv) if argv is not None else None)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the toy recipe and print its summary table; 0 on success, 1 when SFT missed its target."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = parse_toy_args(argv)
    try:
        report = run_toy(cfg)
    except RuntimeError as error:
        logger.error("%s", error)
        return 1
    print(report.table())  # the command's output, not a log line
    return 0


__all__ = [
    "NeedleQuestion",
    "ToyConfig",
    "ToyReport",
    "answer_target",
    "is_spec_valid",
    "main",
    "make_questions",
    "measure_reward",
    "measure_validity",
    "parse_toy_args",
    "run_toy",
    "save_checkpoint_atomically",
    "sft_samples",
    "validity_prompts",
    "zoom_target",
]
