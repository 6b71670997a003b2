"""Stages 1 and 2 (SPEC 4): supervised fine-tuning on video samples with TRL's ``SFTTrainer``.

One script for both stages, as in the paper; the stage is in the YAML config
(``train/configs/stage1.yaml``, ``stage2.yaml``). Run it as::

    lover1 train sft --config train/configs/stage2.yaml
    python -m lover1_plugin.train.sft --config train/configs/stage2.yaml --learning_rate 2e-5
    accelerate launch --config_file train/configs/accelerate/zero3_8gpu.yaml \\
        -m lover1_plugin.train.sft --config train/configs/stage2.yaml

The config is one flat YAML mapping read by TRL's ``TrlParser``: the LOVE-R1 keys of
:class:`LoveR1SFTArguments` next to any ``trl.SFTConfig`` / ``transformers.TrainingArguments``
key; command-line flags override it.

How TRL is used (trl 1.16): ``SFTTrainer`` with our :class:`~train.collator.VideoSFTCollator`,
``dataset_kwargs={"skip_prepare_dataset": True}`` (the collator tokenises) and
``remove_unused_columns=False`` (the collator needs the record columns), and one override,
:meth:`LoveR1SFTTrainer.compute_loss`, that forwards every collator key to the model (the
SPEC 1b 3-D ``position_ids`` reach its forward unchanged) and projects only the trained
positions onto the vocabulary. The vision tower is frozen. When
``output_dir`` already holds ``checkpoint-*`` folders, training resumes from the last one.
Checkpoints hold the processor and its chat template, so ``HFBackend.from_pretrained(dir)``,
the LangGraph graph and lmms-eval load them unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from trl import SFTTrainer

from lover1_plugin.config import ViewConfig
from lover1_plugin.errors import ConfigError, Lover1Error

from .collator import LOSS_ON, VideoSFTCollator, record_to_row
from .samples import MAX_SFT_TOKENS, SFT_VIEW_CONFIG, SampleSpec, build_sft_sample, sample_tokens
from .schema import SFTRecord, load_sft_records

logger = logging.getLogger(__name__)


@dataclass
class LoveR1SFTArguments:
    """The LOVE-R1 part of an SFT config (the rest is ``trl.SFTConfig``)."""

    model_name_or_path: str = field(
        default="tiny",
        metadata={
            "help": "Checkpoint to start from: a local directory, a hub id, or 'tiny' (the built-in tiny model)."
        },
    )
    train_file: str | None = field(
        default=None, metadata={"help": "SFT records, .json (a list) or .jsonl (see lover1_plugin.train.schema)."}
    )
    video_root: str | None = field(default=None, metadata={"help": "Directory relative video paths are joined to."})
    loss_on: str = field(
        default="assistant",
        metadata={
            "help": "'assistant': train on the reply and its <|im_end|> only (default); 'all_text': every token but "
            "padding and vision tokens, system and user text included (the reference)."
        },
    )
    freeze_vision: bool = field(default=True, metadata={"help": "Freeze the vision tower (SPEC 4: frozen)."})
    max_tokens: int = field(
        default=MAX_SFT_TOKENS,
        metadata={"help": "Drop samples longer than this many tokens before training (SPEC 4: 20500); 0 = keep all."},
    )
    num_fast: int = field(default=SFT_VIEW_CONFIG.num_fast, metadata={"help": "Most fast-view frames."})
    fast_res: int = field(default=SFT_VIEW_CONFIG.fast_res, metadata={"help": "Fast-view budget, in 28x28 patches."})
    slow_res: int = field(default=SFT_VIEW_CONFIG.slow_res, metadata={"help": "Slow-view budget, in 28x28 patches."})
    short_video_s: float = field(
        default=SFT_VIEW_CONFIG.short_video_s,
        metadata={"help": "Videos shorter than this get twice the fast-view budget (SPEC 4: 120 s for SFT)."},
    )
    font_path: str | None = field(
        default=None, metadata={"help": "Timestamp font; Arial.Unicode.ttf gives exact parity with the checkpoints."}
    )
    torch_dtype: str = field(
        default="auto", metadata={"help": "Weights dtype: 'auto' (bf16 when training in bf16, else fp32) or a name."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "'flash_attention_2', 'sdpa' or 'eager'; default: sdpa."}
    )
    resume: bool = field(
        default=True, metadata={"help": "Resume from the last checkpoint-* in output_dir when there is one."}
    )
    seed_samples: int = field(default=0, metadata={"help": "Seed of the stage-1 random view choices."})

    def __post_init__(self) -> None:
        if self.loss_on not in LOSS_ON:
            raise ConfigError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {self.loss_on!r}")
        if self.max_tokens < 0:
            raise ConfigError(f"max_tokens must be >= 0 (0 = no limit), got {self.max_tokens}")

    def view_config(self) -> ViewConfig:
        """SPEC 4's SFT views with this config's sizes (fast-view factor only, slow views at ``slow_res``)."""
        return dataclasses.replace(
            SFT_VIEW_CONFIG,
            num_fast=self.num_fast,
            fast_res=self.fast_res,
            slow_res=self.slow_res,
            short_video_s=self.short_video_s,
            font_path=self.font_path,
        )


# --------------------------------------------------------------------------- model


def vision_tower(model: Any) -> Any:
    """The vision tower of a Qwen2.5-VL model (``model.model.visual`` in transformers 5, ``model.visual`` before)."""
    for owner in (getattr(model, "model", None), model):
        visual = getattr(owner, "visual", None) if owner is not None else None
        if visual is not None:
            return visual
    raise ConfigError(f"{type(model).__name__} has no vision tower (model.visual / model.model.visual)")


def freeze_vision_tower(model: Any) -> int:
    """Set ``requires_grad=False`` on every vision-tower parameter; return how many tensors were frozen."""
    params = list(vision_tower(model).parameters())
    for param in params:
        param.requires_grad_(False)
    logger.info("froze the vision tower: %d tensors, %d parameters", len(params), sum(p.numel() for p in params))
    return len(params)


def load_model(name_or_path: str, *, dtype: str = "auto", bf16: bool = False, attn_implementation: str | None = None):
    """Load a Qwen2.5-VL model and its processor for training (``"tiny"`` = the built-in tiny model)."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from lover1_plugin.tiny import resolve_model_path

    path = resolve_model_path(name_or_path)
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if bf16 else torch.float32
    else:
        torch_dtype = getattr(torch, dtype, None)
        if not isinstance(torch_dtype, torch.dtype):
            raise ConfigError(f"unknown torch_dtype {dtype!r}; use 'auto', 'bfloat16', 'float16' or 'float32'")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        path, dtype=torch_dtype, attn_implementation=attn_implementation or "sdpa"
    )
    processor = AutoProcessor.from_pretrained(path)
    return model, processor


# --------------------------------------------------------------------------- data


def text_token_counter(processor: Any):
    """``count(messages) -> tokens`` of the chat-template text (one pad token per video part)."""

    def count(messages: list[dict[str, Any]]) -> int:
        text = processor.apply_chat_template(messages, tokenize=False)
        return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def filter_overlong(
    records: Sequence[SFTRecord], processor: Any, view_cfg: ViewConfig, max_tokens: int, seed: int = 0
) -> list[SFTRecord]:
    """Drop the records whose sample exceeds ``max_tokens`` (SPEC 4; stage-2 samples are deterministic,
    stage-1 ones are measured on their first draw) and those whose video cannot be read (the
    reference replaced both with random other samples; we leave them out). Reads each video's
    header once.
    """
    from lover1_plugin.video import probe_video

    count = text_token_counter(processor)
    infos: dict[str, Any] = {}
    kept = []
    for record in records:
        if record.video not in infos:
            try:
                infos[record.video] = probe_video(record.video)
            except Lover1Error as error:
                infos[record.video] = error
        if isinstance(infos[record.video], Lover1Error):
            logger.warning("dropping %s: %s", record.where, infos[record.video])
            continue
        rng = random.Random(f"{seed}:{record.where}:0")
        spec: SampleSpec = build_sft_sample(record, infos[record.video], rng, view_cfg=view_cfg)
        tokens = sample_tokens(spec, count)
        if tokens > max_tokens:
            logger.warning("dropping %s: %d tokens > %d", record.where, tokens, max_tokens)
        else:
            kept.append(record)
    logger.info("kept %d of %d SFT records (max_tokens=%d)", len(kept), len(records), max_tokens)
    return kept


def records_dataset(records: Sequence[SFTRecord]):
    """A ``datasets.Dataset`` of record rows (what ``SFTTrainer`` iterates; the collator builds the samples)."""
    from datasets import Dataset

    if not records:
        raise ConfigError("no SFT records to train on")
    return Dataset.from_list([record_to_row(record) for record in records])


# --------------------------------------------------------------------------- trainer


class LoveR1SFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose loss projects only the trained positions onto the vocabulary.

    A video sample has thousands of vision and prompt tokens and a short reply. TRL's
    fused LM head scores only labelled positions on Triton devices but every position
    elsewhere (CPU, the toy run); here the model is asked for the logits of the
    positions whose next token is trained (``logits_to_keep``), on every device, and the
    cross-entropy is taken there. Everything else (metrics, accumulation scaling,
    logging) is TRL's. The forward gets every collator key (``position_ids`` (3, B, L),
    ``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts``, ``mm_token_type_ids``).
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        keep = torch.zeros_like(labels, dtype=torch.bool)  # (B, L): positions whose next token is trained
        keep[:, :-1] = labels[:, 1:] != -100
        targets = labels[:, 1:][keep[:, :-1]]  # (N,) in the same row-major order as the kept logits
        model_inputs = {key: value for key, value in inputs.items() if key != "labels"}
        outputs = model(**model_inputs, use_cache=False, logits_to_keep=keep)
        log_probs = torch.log_softmax(outputs.logits.reshape(-1, outputs.logits.shape[-1]).float(), dim=-1)  # (N, V)
        loss_sum = -log_probs.gather(-1, targets[:, None]).sum()
        count = targets.numel() if num_items_in_batch is None else num_items_in_batch
        loss = loss_sum / torch.as_tensor(count, device=loss_sum.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        with torch.no_grad():
            detached = log_probs.detach()
            entropy = self.accelerator.gather_for_metrics(-(detached.exp() * detached).sum()).sum()
            correct = self.accelerator.gather_for_metrics((detached.argmax(-1) == targets).sum()).sum()
            valid = self.accelerator.gather_for_metrics(torch.tensor(targets.numel(), device=targets.device)).sum()
        self._metrics[mode]["entropy"].append((entropy / valid).item() if valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / valid).item() if valid > 0 else 0.0)
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss


def video_sft_config(training_args: Any) -> Any:
    """Force the settings a video collator needs onto an ``SFTConfig`` (logging what changed)."""
    if training_args.remove_unused_columns:
        logger.info("remove_unused_columns -> False (the video collator reads the record columns)")
        training_args.remove_unused_columns = False
    kwargs = dict(training_args.dataset_kwargs or {})
    kwargs["skip_prepare_dataset"] = True
    training_args.dataset_kwargs = kwargs
    if training_args.packing or training_args.padding_free:
        raise ConfigError("packing / padding_free are not supported for video samples; set them to false")
    return training_args


def build_sft_trainer(
    args: LoveR1SFTArguments,
    training_args: Any,
    *,
    train_dataset: Any = None,
    collator: VideoSFTCollator | None = None,
    model: Any = None,
    processor: Any = None,
    callbacks: Sequence[Any] | None = None,
):
    """A :class:`LoveR1SFTTrainer` (TRL ``SFTTrainer``) on video samples.

    ``train_dataset`` defaults to the records of ``args.train_file``; pass a dataset of
    sample rows (``train.toy``) or record rows together with a matching ``collator``.
    ``model`` / ``processor`` default to ``args.model_name_or_path``.
    """
    training_args = video_sft_config(training_args)
    if model is None or processor is None:
        model, processor = load_model(
            args.model_name_or_path,
            dtype=args.torch_dtype,
            bf16=bool(training_args.bf16),
            attn_implementation=args.attn_implementation,
        )
    if args.freeze_vision:
        freeze_vision_tower(model)
    view_cfg = args.view_config()
    if train_dataset is None:
        if not args.train_file:
            raise ConfigError("set train_file (SFT records, .json or .jsonl) in the config or with --train_file")
        records = load_sft_records(args.train_file, video_root=args.video_root)
        if args.max_tokens:
            records = filter_overlong(records, processor, view_cfg, args.max_tokens, seed=args.seed_samples)
        train_dataset = records_dataset(records)
    if collator is None:
        collator = VideoSFTCollator(
            processor,
            loss_on=args.loss_on,  # type: ignore[arg-type]
            view_cfg=view_cfg,
            tokens_per_second=int(model.config.vision_config.tokens_per_second),
            seed=args.seed_samples,
            font_path=args.font_path,
        )
    return LoveR1SFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train_dataset,
        processing_class=processor,
        callbacks=list(callbacks or []),
    )


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-*`` folder of ``output_dir``, or ``None``."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def train_and_save(trainer: Any, *, resume: bool = True, stage: str = "sft") -> dict[str, Any]:
    """Train (resuming from the last checkpoint when asked and one exists), save model + processor, return metrics."""
    output_dir = trainer.args.output_dir
    checkpoint = last_checkpoint(output_dir) if resume else None
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(output_dir)  # model, generation config, processor + chat template
    trainer.save_state()
    metrics = dict(result.metrics)
    if trainer.is_world_process_zero():
        Path(output_dir, "lover1_train.json").write_text(json.dumps({"stage": stage, **metrics}, indent=2) + "\n")
    return metrics


def parse_sft_args(argv: Sequence[str] | None = None) -> tuple[LoveR1SFTArguments, Any]:
    """``--config X.yaml`` plus flags -> ``(LoveR1SFTArguments, SFTConfig)``."""
    from trl import SFTConfig, TrlParser

    parser = TrlParser((LoveR1SFTArguments, SFTConfig))
    return parser.parse_args_and_config(list(argv) if argv is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    """``lover1 train sft --config X.yaml [--key value ...]``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args, training_args = parse_sft_args(argv)
    trainer = build_sft_trainer(args, training_args)
    metrics = train_and_save(trainer, resume=args.resume)
    logger.info("SFT done: %s -> %s", metrics, training_args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "LoveR1SFTArguments",
    "LoveR1SFTTrainer",
    "build_sft_trainer",
    "filter_overlong",
    "freeze_vision_tower",
    "last_checkpoint",
    "load_model",
    "main",
    "parse_sft_args",
    "records_dataset",
    "text_token_counter",
    "train_and_save",
    "video_sft_config",
    "vision_tower",
]
