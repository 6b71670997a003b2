"""Stage 3 (SPEC 4): decoupled GRPO over TRL's ``GRPOTrainer``.

Run it as::

    lover1 train grpo --config train/configs/stage3.yaml
    accelerate launch --config_file train/configs/accelerate/zero3_8gpu.yaml \\
        -m lover1_plugin.train.grpo --config train/configs/stage3.yaml

Why a subclass and which hooks. ``GRPOTrainer`` (trl 1.16) samples one completion per
prompt and scores it with ``pixel_values`` (images) only: it cannot build video inputs,
cannot run a rollout of two dependent decisions, and has no notion of masked rollouts.
Its loop around that (repeat sampler, generation buffering, optimizer, logging,
checkpoints, DeepSpeed) is what we want, so :class:`DecoupledGRPOTrainer` keeps it and
overrides two hooks:

- ``_generate_and_score_completions``: for each prompt row, one rollout per
  repetition (``num_generations`` = 8): step 1, then step 2, exactly as SPEC 4 says
  (see :class:`RolloutRunner`), rewards from :mod:`train.rewards`, group-normalised
  advantages (masked rollouts left out), old log-probs when the batch is reused;
- ``_compute_loss``: per completion, the clipped surrogate (``epsilon`` 0.2, no KL
  since ``beta`` is 0), token mean, then mean over the micro-batch's completions.
  Step-1 completions and QA step-2 completions use the step-1 advantage, grounding
  step 2 its own.

Inputs are built by :func:`lover1_plugin.inputs.build_inputs` (the inference builder),
views by the shared :class:`~lover1_plugin.video.ViewRenderer`, prompts by
:mod:`train.samples` (``build_grpo_step1`` / ``2``) and replies are read by
:mod:`lover1_plugin.decisions` through :mod:`train.rewards`. Rollouts are sampled with
``model.generate`` (temperature 0.9, up to 512 tokens) with the explicit SPEC 1b
positions, as the HF backend decodes, and the vision tower run once per prompt.

Reference quirks, each off by default (``quirk_*`` arguments):
``quirk_step1_ratio_one`` (step 1 trained with the ratio fixed at 1, no stored old
log-probs), ``quirk_no_second_per_grid`` (loss forward with positions at 1 s per grid
step), ``quirk_no_temperature`` (log-probs from logits not divided by the temperature).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOTrainer

from lover1_plugin.config import ViewConfig
from lover1_plugin.errors import ConfigError, Lover1Error
from lover1_plugin.inputs import build_inputs
from lover1_plugin.positions import TOKENS_PER_SECOND, rope_position_ids
from lover1_plugin.video import ViewRenderer

from .collator import END_OF_TURN
from .rewards import Reward, grounding_reward, group_advantages, qa_reward, reply_kind, valid_zoom
from .samples import GRPO_VIEW_CONFIG, SampleSpec, build_grpo_step1, build_grpo_step2
from .schema import GRPORecord, load_grpo_records
from .sft import freeze_vision_tower, load_model, train_and_save

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


# --------------------------------------------------------------------------- arguments


@dataclass
class LoveR1GRPOArguments:
    """The LOVE-R1 part of a stage-3 config (the rest is ``trl.GRPOConfig``)."""

    model_name_or_path: str = field(
        default="tiny", metadata={"help": "Checkpoint to start from (SPEC 4: the stage-2 model), or 'tiny'."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "GRPO records, .json or .jsonl (see lover1_plugin.train.schema)."}
    )
    video_root: str | None = field(default=None, metadata={"help": "Directory relative video paths are joined to."})
    freeze_vision: bool = field(default=True, metadata={"help": "Freeze the vision tower (SPEC 4: frozen)."})
    num_fast: int = field(default=GRPO_VIEW_CONFIG.num_fast, metadata={"help": "Most fast-view frames."})
    fast_res: int = field(default=GRPO_VIEW_CONFIG.fast_res, metadata={"help": "Fast-view budget, in 28x28 patches."})
    slow_res: int = field(default=GRPO_VIEW_CONFIG.slow_res, metadata={"help": "Slow-view budget, in 28x28 patches."})
    short_video_s: float = field(
        default=GRPO_VIEW_CONFIG.short_video_s,
        metadata={"help": "Videos shorter than this get twice the fast-view budget (SPEC 4: 60 s for GRPO)."},
    )
    font_path: str | None = field(default=None, metadata={"help": "Timestamp font (default DejaVu Sans)."})
    torch_dtype: str = field(default="auto", metadata={"help": "'auto' (bf16 when training in bf16) or a dtype name."})
    attn_implementation: str | None = field(default=None, metadata={"help": "Attention kernel; default sdpa."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last checkpoint-* in output_dir."})
    quirk_step1_ratio_one: bool = field(
        default=False, metadata={"help": "Reference quirk: train step 1 with the ratio fixed at 1 (no old log-probs)."}
    )
    quirk_no_second_per_grid: bool = field(
        default=False, metadata={"help": "Reference quirk: loss forward with positions at 1 s per grid step."}
    )
    quirk_no_temperature: bool = field(
        default=False, metadata={"help": "Reference quirk: log-probs from logits not divided by the temperature."}
    )

    def view_config(self) -> ViewConfig:
        """SPEC 4's GRPO views with this config's sizes."""
        return dataclasses.replace(
            GRPO_VIEW_CONFIG,
            num_fast=self.num_fast,
            fast_res=self.fast_res,
            slow_res=self.slow_res,
            short_video_s=self.short_video_s,
            font_path=self.font_path,
        )


# --------------------------------------------------------------------------- rollouts


@dataclass
class Turn:
    """One decision of a rollout: the prompt inputs and the sampled completion.

    ``prompt`` is the :func:`build_inputs` output (batch size 1, shared by the rollouts of
    one context); ``completion_ids`` the sampled tokens up to and including the first
    end-of-turn token; ``text`` the whole reply as the rewards read it (a forced prefix
    included); ``old_logps`` the per-token log-probs at sampling time, when stored.
    """

    spec: SampleSpec
    prompt: Any
    completion_ids: torch.Tensor
    text: str
    old_logps: torch.Tensor | None = None


@dataclass
class Rollout:
    """One rollout: step 1, maybe step 2, their rewards and whether it is left out."""

    record: GRPORecord
    step1: Turn | None
    step2: Turn | None = None
    reward: Reward | None = None  # QA: the rollout's reward; grounding: step 1's
    reward2: Reward | None = None  # grounding step 2
    masked: bool = False
    error: str = ""


def grpo_record_to_row(record: GRPORecord) -> dict[str, Any]:
    """Row form of a GRPO record (for ``datasets.Dataset.from_list``)."""
    return {
        "source": record.source,
        "index": record.index,
        "video": record.video,
        "problem": record.problem,
        "options": list(record.options),
        "problem_type": record.problem_type,
        "answer": record.answer,
        "zoomin_intervals": [list(pair) for pair in record.zoomin_intervals],
        "tgt": None if record.tgt is None else [list(pair) for pair in record.tgt],
    }


def grpo_record_from_row(row: Any) -> GRPORecord:
    """Inverse of :func:`grpo_record_to_row` (also accepts a :class:`GRPORecord`)."""
    if isinstance(row, GRPORecord):
        return row
    tgt = row.get("tgt")
    return GRPORecord(
        source=str(row["source"]),
        index=int(row["index"]),
        video=str(row["video"]),
        problem=str(row["problem"]),
        options=tuple(row.get("options") or ()),
        problem_type=str(row["problem_type"]),
        answer=str(row.get("answer") or ""),
        zoomin_intervals=tuple(tuple(float(v) for v in pair) for pair in row.get("zoomin_intervals") or ()),
        tgt=None if tgt is None else tuple(tuple(float(v) for v in pair) for pair in tgt),
    )


class RolloutRunner:
    """Samples and scores decoupled rollouts (SPEC 4) with the inference input builder.

    Per rollout:

    - QA sample: step 1 on the sample's ``zoomin_intervals``. A reply opening with the zoom
      phrase gets a step 2: with the proposed interval added as given when it passes the
      format check, with no slow view when it does not. Reward :func:`train.rewards.qa_reward`;
      masked when step 2 zooms again.
    - grounding sample: step 1 without slow view after the forced ``ZOOM_PREFIX``, step 2 on
      the sample's own ``zoomin_intervals``; each scored by :func:`train.rewards.grounding_reward`.

    A video that cannot be read masks the rollout (``error`` says why).
    """

    def __init__(
        self,
        processor: Any,
        *,
        view_cfg: ViewConfig = GRPO_VIEW_CONFIG,
        temperature: float = 0.9,
        max_completion_length: int = 512,
        top_p: float = 1.0,
        top_k: int = 0,
        tokens_per_second: int = TOKENS_PER_SECOND,
        renderer: ViewRenderer | None = None,
    ) -> None:
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0 for sampled rollouts, got {temperature}")
        self.processor = processor
        self.view_cfg = view_cfg
        self.temperature = temperature
        self.max_completion_length = max_completion_length
        self.top_p, self.top_k = top_p, top_k
        self.tokens_per_second = tokens_per_second
        self.renderer = renderer or ViewRenderer(font_path=view_cfg.font_path)
        tokenizer = processor.tokenizer
        self.end_ids = [tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_ids[-1]

    # -- inputs
    def prompt_inputs(self, spec: SampleSpec):
        """Render ``spec``'s views and build its generation inputs (the forced prefix included)."""
        views = [self.renderer.render(plan) for plan in spec.views]
        return build_inputs(
            self.processor,
            spec.messages,
            views,
            assistant_prefix=spec.assistant_prefix,
            add_generation_prompt=True,
            tokens_per_second=self.tokens_per_second,
        )

    def generation_config(self):
        """Sampling settings, every field set so a checkpoint's ``generation_config.json`` cannot leak in."""
        from transformers import GenerationConfig

        return GenerationConfig(
            max_new_tokens=self.max_completion_length,
            do_sample=True,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=None,
            repetition_penalty=1.0,
            num_beams=1,
            num_return_sequences=1,
            eos_token_id=self.end_ids,
            pad_token_id=self.pad_id,
        )

    @torch.no_grad()
    def sample(self, model: Any, prompt: Any, num: int) -> list[torch.Tensor]:
        """``num`` sampled completions of one prompt, each cut after its first end token.

        The prompt is repeated ``num`` times with its SPEC 1b positions; the vision tower
        runs once and its output is shared.
        """
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        device = model.device
        prompt = {key: value.to(device) for key, value in prompt.items()}  # the stored prompt stays on the CPU
        input_ids = prompt["input_ids"]
        length = input_ids.shape[1]
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.repeat(num, 1),
            "attention_mask": prompt["attention_mask"].repeat(num, 1),
            "position_ids": prompt["position_ids"].expand(3, num, length).contiguous(),
        }
        if "mm_token_type_ids" in prompt:
            kwargs["mm_token_type_ids"] = prompt["mm_token_type_ids"].repeat(num, 1)
        if prompt.get("pixel_values_videos") is not None:
            features = model.get_video_features(
                prompt["pixel_values_videos"], prompt["video_grid_thw"], return_dict=True
            ).pooler_output
            kwargs["mm_encoder_outputs"] = {"video": BaseModelOutputWithPooling(pooler_output=tuple(features) * num)}
        output = model.generate(**kwargs, generation_config=self.generation_config())
        completions = []
        for row in output[:, length:].cpu():
            ends = torch.isin(row, torch.tensor(self.end_ids)).nonzero().flatten()
            completions.append(row[: int(ends[0]) + 1] if ends.numel() else row)
        return completions

    def decode(self, ids: torch.Tensor) -> str:
        """Completion text as the loop reads replies (special tokens kept)."""
        return self.processor.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # -- rollouts
    def run(self, model: Any, records: Sequence[GRPORecord]) -> list[Rollout]:
        """One rollout per entry of ``records``; consecutive equal records share one batched step 1."""
        rollouts: list[Rollout] = []
        start = 0
        while start < len(records):
            end = start
            while end < len(records) and records[end] == records[start]:
                end += 1
            rollouts.extend(self.run_group(model, records[start], end - start))
            start = end
        return rollouts

    def run_group(self, model: Any, record: GRPORecord, num: int) -> list[Rollout]:
        """``num`` rollouts of one sample."""
        try:
            info = self.renderer.probe(record.video)
            spec1 = build_grpo_step1(record, info, view_cfg=self.view_cfg)
            prompt1 = self.prompt_inputs(spec1)
        except Lover1Error as error:
            logger.warning("masking %d rollouts of %s: %s", num, record.where, error)
            return [Rollout(record, None, masked=True, error=str(error)) for _ in range(num)]
        prefix = spec1.assistant_prefix or ""
        turns = [Turn(spec1, prompt1, ids, prefix + self.decode(ids)) for ids in self.sample(model, prompt1, num)]
        if record.is_grounding:
            return self._grounding(model, record, info, turns)
        return [self._qa(model, record, info, turn) for turn in turns]

    def _qa(self, model: Any, record: GRPORecord, info: Any, turn: Turn) -> Rollout:
        duration = info.duration
        step2 = None
        if reply_kind(turn.text) == "zoom":
            interval = valid_zoom(turn.text, duration, record.zoomin_intervals)
            try:
                spec2 = build_grpo_step2(record, info, interval, view_cfg=self.view_cfg)
                prompt2 = self.prompt_inputs(spec2)
            except Lover1Error as error:
                return Rollout(record, turn, masked=True, error=str(error))
            ids = self.sample(model, prompt2, 1)[0]
            step2 = Turn(spec2, prompt2, ids, self.decode(ids))
        reward = qa_reward(
            turn.text,
            None if step2 is None else step2.text,
            answer=record.answer,
            duration=duration,
            zoomed=record.zoomin_intervals,
        )
        return Rollout(record, turn, step2, reward=reward, masked=reward.masked)

    def _grounding(self, model: Any, record: GRPORecord, info: Any, turns: list[Turn]) -> list[Rollout]:
        duration, tgt = info.duration, record.tgt or ()
        try:
            spec2 = build_grpo_step2(record, info, view_cfg=self.view_cfg)
            prompt2 = self.prompt_inputs(spec2)
        except Lover1Error as error:
            return [Rollout(record, turn, masked=True, error=str(error)) for turn in turns]
        seconds = [Turn(spec2, prompt2, ids, self.decode(ids)) for ids in self.sample(model, prompt2, len(turns))]
        rollouts = []
        for first, second in zip(turns, seconds, strict=True):
            reward1 = grounding_reward(first.text, tgt=tgt, duration=duration)
            reward2 = grounding_reward(second.text, tgt=tgt, duration=duration, zoomed=record.zoomin_intervals)
            rollouts.append(Rollout(record, first, second, reward=reward1, reward2=reward2))
        return rollouts


AdvantageRow = tuple[float | None, bool, float | None]  # (reward, masked, own step-2 reward or None)


def advantage_rows(rollouts: Sequence[Rollout]) -> list[AdvantageRow]:
    """What the advantages depend on, per rollout: step-1 (QA: rollout) reward, masked, grounding step-2 reward."""
    rows: list[AdvantageRow] = []
    for r in rollouts:
        masked = r.masked or r.reward is None
        reward = None if masked else r.reward.total
        rows.append((reward, masked, None if r.reward2 is None else r.reward2.total))
    return rows


def advantages_from_rows(rows: Sequence[AdvantageRow], num_generations: int) -> list[tuple[float, float]]:
    """``(step-1, step-2)`` advantages per rollout; consecutive groups of ``num_generations``.

    Step 1 (QA: the rollout) is normalised within its group by
    :func:`train.rewards.group_advantages` (masked rollouts left out); a step 2 with its
    own reward (grounding) is normalised on its own, otherwise it shares the step-1
    advantage. Masked rollouts get ``(0.0, 0.0)``.

    >>> [tuple(round(v, 3) for v in pair) for pair in advantages_from_rows([(2.0, False, None), (1.0, False, None)], 2)]
    [(0.707, 0.707), (-0.707, -0.707)]
    >>> [round(a, 3) for a in advantages_from_rows([(1.0, False, 2.0), (1.0, False, 0.0), (0.0, True, None)], 3)[1]]
    [0.0, -0.707]
    """
    if num_generations < 1 or len(rows) % num_generations:
        raise ValueError(f"{len(rows)} rollouts do not split into groups of {num_generations}")
    result: list[tuple[float, float]] = []
    for start in range(0, len(rows), num_generations):
        group = rows[start : start + num_generations]
        masked = [m for _, m, _ in group]
        first = group_advantages([r for r, _, _ in group], masked)
        second: list[float | None] = list(first)
        if any(own is not None for _, _, own in group):
            masked2 = [m or own is None for _, m, own in group]
            second = group_advantages([own for _, _, own in group], masked2)
        result.extend((a or 0.0, b or 0.0) for a, b in zip(first, second, strict=True))
    return result


def rollout_advantages(rollouts: Sequence[Rollout], num_generations: int) -> list[tuple[float, float]]:
    """:func:`advantages_from_rows` of ``rollouts``."""
    return advantages_from_rows(advantage_rows(rollouts), num_generations)


def summarize_rollouts(rollouts: Sequence[Rollout]) -> dict[str, float]:
    """Mean reward, format, accuracy (unmasked rollouts; grounding counts both steps) and rates."""
    kept = [r for r in rollouts if not r.masked and r.reward is not None]
    rewards = [r.reward for r in kept] + [r.reward2 for r in kept if r.reward2 is not None]
    n = max(1, len(rewards))
    zooms = [r for r in kept if r.step1 is not None and reply_kind(r.step1.text) == "zoom"]
    return {
        "reward": sum(x.total for x in rewards) / n,
        "format": sum(x.format for x in rewards) / n,
        "accuracy": sum(x.accuracy for x in rewards) / n,
        "masked_rate": (len(rollouts) - len(kept)) / max(1, len(rollouts)),
        "zoom_rate": len(zooms) / max(1, len(kept)),
    }


# --------------------------------------------------------------------------- log-probs


def turn_forward_inputs(turn: Turn, *, no_second_per_grid: bool = False, tokens_per_second: int = TOKENS_PER_SECOND):
    """Model inputs of prompt + completion (batch 1) and the completion's label mask.

    Positions follow SPEC 1b over the whole sequence (text after text: +1 per token), so
    the completion sits exactly where it was sampled; with ``no_second_per_grid`` the
    videos are placed at 1 s per grid step (the reference's loss forward).
    """
    prompt = turn.prompt
    ids = torch.cat([prompt["input_ids"][0].cpu(), turn.completion_ids.cpu()])
    grids = prompt.get("video_grid_thw")
    seconds = prompt.get("second_per_grid_ts")
    if seconds is not None and no_second_per_grid:
        seconds = torch.ones_like(seconds)
    positions = rope_position_ids(ids, grids, seconds, tokens_per_second=tokens_per_second)
    length, total = prompt["input_ids"].shape[1], ids.shape[0]
    inputs: dict[str, Any] = {
        "input_ids": ids[None],
        "attention_mask": torch.ones(1, total, dtype=torch.long),
        "position_ids": positions[:, None],
    }
    if "mm_token_type_ids" in prompt:
        tail = torch.zeros(1, total - length, dtype=prompt["mm_token_type_ids"].dtype)
        inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"].cpu(), tail], dim=1)
    for key in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts"):
        if prompt.get(key) is not None:
            inputs[key] = prompt[key]
    labels = torch.full((1, total), IGNORE_INDEX, dtype=torch.long)
    labels[0, length:] = ids[length:]
    return inputs, labels


def completion_logps(
    model: Any,
    turn: Turn,
    *,
    temperature: float = 1.0,
    no_second_per_grid: bool = False,
    tokens_per_second: int = TOKENS_PER_SECOND,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs ``(n,)`` of ``turn``'s completion under ``model`` (logits / ``temperature``),
    and the per-token entropies (no gradient).

    Only the completion positions are projected onto the vocabulary (``logits_to_keep``);
    the forward goes through ``model`` itself, so DDP / DeepSpeed wrappers see it.
    """
    inputs, _ = turn_forward_inputs(turn, no_second_per_grid=no_second_per_grid, tokens_per_second=tokens_per_second)
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    n = turn.completion_ids.shape[0]
    output = model(**inputs, use_cache=False, logits_to_keep=n + 1)
    logits = output.logits[0, :-1].float() / temperature  # (n, V): position i predicts completion token i
    log_probs = torch.log_softmax(logits, dim=-1)
    targets = turn.completion_ids.to(device)
    logps = log_probs.gather(-1, targets[:, None])[:, 0]
    with torch.no_grad():
        entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logps, entropy


def clipped_surrogate(
    logps: torch.Tensor, old_logps: torch.Tensor, advantage: float, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO/GRPO clipped objective of one completion, as a loss (token mean); also the clipped-token mask.

    >>> lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    >>> loss, clipped = clipped_surrogate(lp, lp.detach(), 1.0, 0.2, 0.2)
    >>> loss.item(), clipped.tolist()
    (-1.0, [False, False])
    """
    ratio = torch.exp(logps - old_logps)
    clipped_ratio = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    objective = torch.min(ratio * advantage, clipped_ratio * advantage)
    is_clipped = ((ratio < 1 - eps_low) & (advantage < 0)) | ((ratio > 1 + eps_high) & (advantage > 0))
    return -objective.mean(), is_clipped


# --------------------------------------------------------------------------- trainer


class DecoupledGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with LOVE-R1's two-step video rollouts (see the module docstring).

    Args (besides ``GRPOTrainer``'s): ``lover1_args`` (:class:`LoveR1GRPOArguments`) and
    ``renderer`` (a shared :class:`ViewRenderer`; default: a new one).
    ``reward_funcs`` is not used for scoring (rewards come from :mod:`train.rewards` per
    rollout); it defaults to the format reward so the parent's bookkeeping has a name.
    """

    def __init__(
        self,
        *args: Any,
        lover1_args: LoveR1GRPOArguments | None = None,
        renderer: ViewRenderer | None = None,
        **kwargs: Any,
    ) -> None:
        from .rewards import format_reward

        kwargs.setdefault("reward_funcs", [format_reward])
        super().__init__(*args, **kwargs)
        self.lover1_args = lover1_args or LoveR1GRPOArguments()
        self.tokens_per_second = int(self.model.config.vision_config.tokens_per_second)
        self.runner = RolloutRunner(
            self.processing_class,
            view_cfg=self.lover1_args.view_config(),
            temperature=self.temperature,
            max_completion_length=self.max_completion_length,
            top_p=self.top_p,
            top_k=self.top_k or 0,
            tokens_per_second=self.tokens_per_second,
            renderer=renderer,
        )

    # -- generation + scoring ------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        from trl.models import unwrap_model_for_generation

        mode = "train" if self.model.training else "eval"
        records = [grpo_record_from_row(row) for row in inputs]
        with unwrap_model_for_generation(
            self.model_wrapped,
            self.accelerator,
            gather_deepspeed3_params=self.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
        ) as unwrapped:
            was_training = unwrapped.training
            unwrapped.eval()
            rollouts = self.runner.run(unwrapped, records)
            if self._needs_old_logps():
                # here, with the weights gathered: processes may hold different numbers of completions
                self._store_old_logps(unwrapped, rollouts)
            unwrapped.train(was_training)
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        advantages = self._global_advantages(rollouts, num_generations)
        self._log_rollouts(rollouts, mode)
        return {"advantages": torch.tensor(advantages, dtype=torch.float32), "rollouts": rollouts}

    @torch.no_grad()
    def _store_old_logps(self, model: Any, rollouts: list[Rollout]) -> None:
        """Log-probs at sampling time, for batches that feed several optimizer steps."""
        for rollout in rollouts:
            if rollout.masked:
                continue
            for step, turn in ((1, rollout.step1), (2, rollout.step2)):
                if turn is None or (step == 1 and self.lover1_args.quirk_step1_ratio_one):
                    continue
                turn.old_logps = self._logps(model, turn)[0].detach().cpu()

    def _needs_old_logps(self) -> bool:
        """Old log-probs are needed only when a generation batch feeds more than one optimizer step."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        return self.args.gradient_accumulation_steps % generate_every != 0 or self.num_iterations > 1

    def _global_advantages(self, rollouts: list[Rollout], num_generations: int) -> list[tuple[float, float]]:
        """Advantages over the groups of all processes (a group may span processes); this process's slice."""
        encoded = [
            [0.0 if r is None else r, float(m), 0.0 if own is None else own, float(own is None)]
            for r, m, own in advantage_rows(rollouts)
        ]
        local = torch.tensor(encoded, dtype=torch.float32, device=self.accelerator.device).reshape(-1, 4)
        rows = [
            (None if m else r, bool(m), None if no_own else own)
            for r, m, own, no_own in self.accelerator.gather(local).cpu().tolist()
        ]
        advantages = advantages_from_rows(rows, num_generations)
        start = self.accelerator.process_index * len(rollouts)
        return advantages[start : start + len(rollouts)]

    def _log_rollouts(self, rollouts: list[Rollout], mode: str) -> None:
        summary = summarize_rollouts(rollouts)
        lengths = [float(t.completion_ids.numel()) for r in rollouts for t in (r.step1, r.step2) if t is not None]
        stats = torch.tensor(
            [*summary.values(), sum(lengths) / max(1, len(lengths))],
            dtype=torch.float32,
            device=self.accelerator.device,
        )
        stats = self.accelerator.gather(stats[None]).mean(dim=0).tolist()
        for key, value in zip([*summary, "completion_length"], stats, strict=True):
            self._metrics[mode][key].append(value)

    # -- loss ------------------------------------------------------------------
    def _logps(self, model: Any, turn: Turn):
        return completion_logps(
            model,
            turn,
            temperature=1.0 if self.lover1_args.quirk_no_temperature else self.temperature,
            no_second_per_grid=self.lover1_args.quirk_no_second_per_grid,
            tokens_per_second=self.tokens_per_second,
        )

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        mode = "train" if self.model.training else "eval"
        jobs = []  # (turn, advantage, use_old)
        for rollout, (adv1, adv2) in zip(inputs["rollouts"], inputs["advantages"].tolist(), strict=True):
            if rollout.masked or rollout.step1 is None:
                continue
            jobs.append((rollout.step1, adv1, not self.lover1_args.quirk_step1_ratio_one))
            if rollout.step2 is not None:
                jobs.append((rollout.step2, adv2 if rollout.record.is_grounding else adv1, True))
        weight = 1.0 / max(1, len(jobs))
        # every process runs as many forwards as the busiest one (ZeRO-3 gathers weights collectively)
        padded = list(jobs)
        most = int(self.accelerator.gather(torch.tensor([len(jobs)], device=self.accelerator.device)).max())
        filler = jobs[0] if jobs else self._filler_job(inputs)
        while len(padded) < most and filler is not None:
            padded.append((filler[0], 0.0, True))
        total = None
        clipped, tokens, entropies = 0.0, 0.0, 0.0
        for index, (turn, advantage, use_old) in enumerate(padded):
            logps, entropy = self._logps(model, turn)
            old = turn.old_logps.to(logps.device) if (use_old and turn.old_logps is not None) else logps.detach()
            loss, is_clipped = clipped_surrogate(logps, old, advantage, self.epsilon_low, self.epsilon_high)
            scale = weight if index < len(jobs) else 0.0
            total = loss * scale if total is None else total + loss * scale
            if index < len(jobs):
                clipped += float(is_clipped.float().sum())
                tokens += float(logps.numel())
                entropies += float(entropy.sum())
        if total is None:  # nothing to train on and no input to run: a zero that still has a graph
            total = sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)
        # set by the training loop; a direct call (tests, evaluation) counts as one micro-step
        normaliser = getattr(self, "current_gradient_accumulation_steps", 1) if mode == "train" else 1.0
        stats = torch.tensor([clipped, entropies, tokens], device=self.accelerator.device)
        clipped, entropies, tokens = self.accelerator.gather(stats[None]).sum(dim=0).tolist()
        self._metrics[mode]["clip_ratio/region_mean"].append(clipped / max(1.0, tokens))
        self._metrics[mode]["entropy"].append(entropies / max(1.0, tokens))
        return total / normaliser

    def _filler_job(self, inputs: dict[str, Any]):
        """A completion to run with weight 0 when this process has none (all masked): any step-1 turn."""
        for rollout in inputs["rollouts"]:
            if rollout.step1 is not None:
                return (rollout.step1, 0.0, True)
        return None


# --------------------------------------------------------------------------- entry point


def video_grpo_config(training_args: Any) -> Any:
    """Force what the video trainer needs onto a ``GRPOConfig``; check SPEC 4's essentials."""
    if training_args.remove_unused_columns:
        logger.info("remove_unused_columns -> False (the rollouts read the record columns)")
        training_args.remove_unused_columns = False
    if training_args.beta != 0.0:
        raise ConfigError(f"beta must be 0 (SPEC 4: no reference model), got {training_args.beta}")
    if training_args.use_vllm:
        raise ConfigError("use_vllm is not supported by the video rollouts; set use_vllm: false")
    if not math.isfinite(training_args.temperature) or training_args.temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {training_args.temperature}")
    return training_args


def records_dataset(records: Sequence[GRPORecord]):
    """A ``datasets.Dataset`` of GRPO record rows."""
    from datasets import Dataset

    if not records:
        raise ConfigError("no GRPO records to train on")
    return Dataset.from_list([grpo_record_to_row(record) for record in records])


def build_grpo_trainer(
    args: LoveR1GRPOArguments,
    training_args: Any,
    *,
    train_dataset: Any = None,
    model: Any = None,
    processor: Any = None,
    callbacks: Sequence[Any] | None = None,
    renderer: ViewRenderer | None = None,
) -> DecoupledGRPOTrainer:
    """A :class:`DecoupledGRPOTrainer` for ``args`` (records from ``args.train_file`` unless given)."""
    training_args = video_grpo_config(training_args)
    if model is None or processor is None:
        model, processor = load_model(
            args.model_name_or_path,
            dtype=args.torch_dtype,
            bf16=bool(training_args.bf16),
            attn_implementation=args.attn_implementation,
        )
    if args.freeze_vision:
        freeze_vision_tower(model)
    if train_dataset is None:
        if not args.train_file:
            raise ConfigError("set train_file (GRPO records, .json or .jsonl) in the config or with --train_file")
        train_dataset = records_dataset(load_grpo_records(args.train_file, video_root=args.video_root))
    return DecoupledGRPOTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processor,
        callbacks=list(callbacks or []),
        lover1_args=args,
        renderer=renderer,
    )


def parse_grpo_args(argv: Sequence[str] | None = None) -> tuple[LoveR1GRPOArguments, Any]:
    """``--config X.yaml`` plus flags -> ``(LoveR1GRPOArguments, GRPOConfig)``."""
    from trl import GRPOConfig, TrlParser

    parser = TrlParser((LoveR1GRPOArguments, GRPOConfig))
    return parser.parse_args_and_config(list(argv) if argv is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    """``lover1 train grpo --config X.yaml [--key value ...]``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args, training_args = parse_grpo_args(argv)
    trainer = build_grpo_trainer(args, training_args)
    metrics = train_and_save(trainer, resume=args.resume, stage="grpo")
    logger.info("GRPO done: %s -> %s", metrics, training_args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "DecoupledGRPOTrainer",
    "LoveR1GRPOArguments",
    "Rollout",
    "RolloutRunner",
    "Turn",
    "advantage_rows",
    "advantages_from_rows",
    "build_grpo_trainer",
    "clipped_surrogate",
    "completion_logps",
    "grpo_record_from_row",
    "grpo_record_to_row",
    "main",
    "parse_grpo_args",
    "records_dataset",
    "rollout_advantages",
    "summarize_rollouts",
    "turn_forward_inputs",
    "video_grpo_config",
]
