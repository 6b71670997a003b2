"""Training batches: SFT samples -> the model inputs inference builds, plus labels.

The collator renders each sample's views with the shared video code
(:class:`~lover1_plugin.video.ViewRenderer`) and tokenises with
:func:`lover1_plugin.inputs.build_inputs`, the function the HF backend generates with,
so a training sequence is token for token the inference prompt followed by the reply:

    <|im_start|>system ... <|im_end|>\\n<|im_start|>user\\nFull video [0, 120]:<|vision_start|>
    <|video_pad|> x 840 <|vision_end|>...<|im_end|>\\n<|im_start|>assistant\\n{reply}<|im_end|>\\n

``build_inputs(..., completion=reply + "<|im_end|>\\n", add_generation_prompt=True)``
renders exactly what the chat template renders for the whole conversation; the 3-D
SPEC 1b ``position_ids`` come with it.

Labels (``-100`` = not trained):

- ``loss_on="assistant"`` (default): the reply tokens and its closing ``<|im_end|>``;
  the system and user text, the video tokens, the forced prefix and the trailing
  newline are not trained.
- ``loss_on="all_text"`` (the reference's SFT): every token except padding and the
  vision placeholders (``<|video_pad|>`` / ``<|image_pad|>``), system and user text included.

Batching: videos make sequences of thousands of tokens, so one sample per device is the
normal setting (``per_device_train_batch_size: 1``; grow the batch with gradient
accumulation). Larger batches are right-padded: ``input_ids`` with the pad token,
``attention_mask`` / ``mm_token_type_ids`` with 0, ``labels`` with -100; the vision
tensors (``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts``) are
concatenated in sample order, which is how Qwen2.5-VL matches them to its video tokens.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from lover1_plugin.config import ViewConfig
from lover1_plugin.inputs import build_inputs, render_text
from lover1_plugin.positions import TOKENS_PER_SECOND
from lover1_plugin.video import ViewRenderer
from lover1_plugin.views import ViewPlan

from .samples import SFT_VIEW_CONFIG, SampleSpec, build_sft_sample
from .schema import SFTRecord

logger = logging.getLogger(__name__)

LossOn = Literal["assistant", "all_text"]
LOSS_ON: tuple[str, ...] = ("assistant", "all_text")
IGNORE_INDEX = -100  # label of tokens left out of the loss (PyTorch's cross-entropy default)
END_OF_TURN = "<|im_end|>"  # closes the assistant reply; trained, so the model learns to stop
TURN_SEPARATOR = "\n"  # the chat template's newline after <|im_end|>; never trained in "assistant" mode

SAMPLE_COLUMN = "sample"  # row column holding a finished sample as JSON (see sample_to_row)
# Keys concatenated along dim 0 across samples (one row per vision patch / per video).
_VISION_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


def reply_span(tokenizer: Any, text: str, reply_start: int, reply_end: int) -> tuple[int, int]:
    """Token span of ``text[reply_start:reply_end]``, counted back from the end of ``text``.

    Returns ``(from_end, trailing)``: the reply's first token is ``from_end`` tokens before
    the end, and ``trailing`` tokens follow its last one. Counting from the end makes the
    span valid in the processor's output too, where each ``<|video_pad|>`` before it has
    been expanded to many. A token straddling ``reply_start`` counts as part of the reply.

    >>> from lover1_plugin.tiny import build_tiny_tokenizer      # doctest: +SKIP
    >>> reply_span(build_tiny_tokenizer(), "<|im_start|>assistant\\nHi<|im_end|>\\n", 22, 34)  # doctest: +SKIP
    (3, 1)
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    first = next((i for i, (_, end) in enumerate(offsets) if end > reply_start), None)
    last = max((i for i, (start, _) in enumerate(offsets) if start < reply_end), default=None)
    if first is None or last is None or last < first:
        raise ValueError(f"the reply {text[reply_start:reply_end]!r} produced no tokens")
    return len(offsets) - first, len(offsets) - 1 - last


def make_labels(
    input_ids: torch.Tensor,
    *,
    loss_on: LossOn,
    reply: tuple[int, int],
    ignore_ids: Sequence[int],
) -> torch.Tensor:
    """Labels for one unpadded sequence ``(1, L)``.

    ``reply`` is :func:`reply_span`'s ``(from_end, trailing)``; ``ignore_ids`` are the vision
    placeholder ids (never trained).
    """
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {loss_on!r}")
    length = input_ids.shape[-1]
    if loss_on == "all_text":
        labels = input_ids.clone()
        labels[torch.isin(input_ids, torch.tensor(list(ignore_ids), dtype=input_ids.dtype))] = IGNORE_INDEX
        return labels
    from_end, trailing = reply
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[..., length - from_end : length - trailing] = input_ids[..., length - from_end : length - trailing]
    return labels


def pad_batch(features: Sequence[Mapping[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad per-sample features ``(1, L_i)`` (positions ``(3, 1, L_i)``) into one batch.

    Padded positions get position ``max + 1`` of their row (they are masked out anyway).
    """
    if not features:
        raise ValueError("cannot collate an empty batch")
    length = max(f["input_ids"].shape[-1] for f in features)
    pads = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX, "mm_token_type_ids": 0}
    batch: dict[str, torch.Tensor] = {}
    for key, value in pads.items():
        if key not in features[0]:
            continue
        rows = [torch.nn.functional.pad(f[key], (0, length - f[key].shape[-1]), value=value) for f in features]
        batch[key] = torch.cat(rows, dim=0)
    positions = []
    for f in features:
        pos = f["position_ids"]  # (3, 1, L_i)
        fill = int(pos.max()) + 1 if pos.numel() else 0
        positions.append(torch.nn.functional.pad(pos, (0, length - pos.shape[-1]), value=fill))
    batch["position_ids"] = torch.cat(positions, dim=1)  # (3, B, L)
    for key in _VISION_KEYS:
        parts = [f[key] for f in features if key in f]
        if parts:
            batch[key] = torch.cat(parts, dim=0)
    return batch


@dataclass
class VideoSFTCollator:
    """Collate SFT samples (:class:`~train.samples.SampleSpec`, :class:`~train.schema.SFTRecord`,
    an SFT record row, or a sample row from :func:`sample_to_row`) into a training batch.

    Records are turned into samples with :func:`~train.samples.build_sft_sample` (SPEC 4
    rules) on the fly, drawing the stage-1 random choices from ``random.Random`` seeded
    by ``(seed, record, how often this record was drawn)``: reproducible, and a new draw
    each epoch as in the reference.

    Args:
        processor: the model's Qwen2.5-VL processor.
        loss_on: ``"assistant"`` (default) or ``"all_text"`` (the reference), see the module doc.
        view_cfg: view settings of the samples built from records (SPEC 4: ``SFT_VIEW_CONFIG``).
        tokens_per_second: the model's ``vision_config.tokens_per_second``.
        seed: seed of the stage-1 random choices.
        font_path: timestamp font (``None``: the default DejaVu Sans).
        max_tokens: samples longer than this raise ``ValueError`` (drop them beforehand with
            :func:`~train.samples.drop_overlong`); ``None``: no limit.
        renderer: a shared :class:`ViewRenderer` (e.g. with a large cache for small data sets);
            default: one per process, created on first use.
    """

    processor: Any
    loss_on: LossOn = "assistant"
    view_cfg: ViewConfig = SFT_VIEW_CONFIG
    tokens_per_second: int = TOKENS_PER_SECOND
    seed: int = 0
    font_path: str | None = None
    max_tokens: int | None = None
    renderer: ViewRenderer | None = field(default=None, repr=False)
    _own_renderer: ViewRenderer | None = field(default=None, init=False, repr=False)
    _renderer_pid: int | None = field(default=None, init=False, repr=False)
    _draws: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {self.loss_on!r}")

    def get_renderer(self) -> ViewRenderer:
        """The given renderer, else one per process (dataloader workers must not share open video readers)."""
        if self.renderer is not None:
            return self.renderer
        if self._own_renderer is None or self._renderer_pid != os.getpid():
            self._own_renderer = ViewRenderer(font_path=self.font_path, max_cached_views=4)
            self._renderer_pid = os.getpid()
        return self._own_renderer

    def __call__(self, examples: Sequence[SampleSpec | SFTRecord | Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        features = [self.encode(self.to_sample(example)) for example in examples]
        return pad_batch(features, self.processor.tokenizer.pad_token_id)

    def to_sample(self, example: SampleSpec | SFTRecord | Mapping[str, Any]) -> SampleSpec:
        """A :class:`SampleSpec` from a sample, a record, or a record row (``dataclasses.asdict`` of one)."""
        if isinstance(example, SampleSpec):
            return example
        if isinstance(example, Mapping) and SAMPLE_COLUMN in example:
            return sample_from_row(example)
        record = example if isinstance(example, SFTRecord) else record_from_row(example)
        draws = self._draws.get(record.where, 0)
        self._draws[record.where] = draws + 1
        rng = random.Random(f"{self.seed}:{record.where}:{draws}")
        info = self.get_renderer().probe(record.video)
        return build_sft_sample(record, info, rng, view_cfg=self.view_cfg)

    def encode(self, spec: SampleSpec) -> dict[str, torch.Tensor]:
        """Inputs and labels of one sample, batch size 1."""
        if spec.target is None:
            raise ValueError(f"sample {spec.where or spec.video} has no target text to train on")
        renderer = self.get_renderer()
        views = [renderer.render(plan) for plan in spec.views]
        completion = spec.target + END_OF_TURN + TURN_SEPARATOR
        batch = build_inputs(
            self.processor,
            spec.messages,
            views,
            assistant_prefix=spec.assistant_prefix,
            completion=completion,
            add_generation_prompt=True,
            tokens_per_second=self.tokens_per_second,
        )
        input_ids = batch["input_ids"]
        if self.max_tokens is not None and input_ids.shape[-1] > self.max_tokens:
            raise ValueError(
                f"sample {spec.where or spec.video} has {input_ids.shape[-1]} tokens > max_tokens={self.max_tokens}; "
                "drop over-long samples first (train.samples.drop_overlong)"
            )
        text = render_text(self.processor, spec.messages, assistant_prefix=spec.assistant_prefix, completion=completion)
        reply_start = len(text) - len(completion)
        reply = reply_span(
            self.processor.tokenizer, text, reply_start, reply_start + len(spec.target) + len(END_OF_TURN)
        )
        tail = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"][-reply[0] :]
        if input_ids[0, -reply[0] :].tolist() != tail:
            raise ValueError(f"sample {spec.where or spec.video}: the processor tokenised the reply differently")
        ignore = [self.processor.video_token_id, getattr(self.processor, "image_token_id", None)]
        labels = make_labels(
            input_ids, loss_on=self.loss_on, reply=reply, ignore_ids=[i for i in ignore if i is not None]
        )
        feature = {key: batch[key] for key in batch.keys()}
        feature["labels"] = labels
        return feature


def sample_to_row(spec: SampleSpec) -> dict[str, str]:
    """A finished sample as a one-column row (JSON text), for a ``datasets.Dataset`` of samples.

    >>> from lover1_plugin.views import ViewPlan
    >>> plan = ViewPlan("a.mp4", "fast", (0, 5), 1.0, 28, 56, (0, 6), 1.0)
    >>> spec = SampleSpec("a.mp4", [{"role": "user", "content": "hi"}], (plan,), target="ok")
    >>> sample_from_row(sample_to_row(spec)) == spec
    True
    """
    data = dataclasses.asdict(spec)
    return {SAMPLE_COLUMN: json.dumps(data)}


def sample_from_row(row: Mapping[str, Any]) -> SampleSpec:
    """Inverse of :func:`sample_to_row`."""
    data = json.loads(row[SAMPLE_COLUMN])
    views = tuple(
        ViewPlan(**{**plan, "frame_ids": tuple(plan["frame_ids"]), "label": tuple(plan["label"])})
        for plan in data.pop("views")
    )
    return SampleSpec(views=views, **data)


def record_from_row(row: Mapping[str, Any]) -> SFTRecord:
    """Rebuild an :class:`SFTRecord` from its row form (lists instead of tuples, as a ``datasets`` row)."""
    return SFTRecord(
        source=str(row["source"]),
        index=int(row["index"]),
        video=str(row["video"]),
        question=str(row["question"]),
        target=str(row["target"]),
        zoomin_intervals=tuple(tuple(float(v) for v in pair) for pair in row.get("zoomin_intervals") or ()),
        cot=bool(row.get("cot", False)),
        tgt=tuple(tuple(float(v) for v in pair) for pair in row.get("tgt") or ()),
    )


def record_to_row(record: SFTRecord) -> dict[str, Any]:
    """The row form of a record (for ``datasets.Dataset.from_list``)."""
    return {
        "source": record.source,
        "index": record.index,
        "video": record.video,
        "question": record.question,
        "target": record.target,
        "zoomin_intervals": [list(pair) for pair in record.zoomin_intervals],
        "cot": record.cot,
        "tgt": [list(pair) for pair in record.tgt],
    }


__all__ = [
    "END_OF_TURN",
    "IGNORE_INDEX",
    "LOSS_ON",
    "LossOn",
    "VideoSFTCollator",
    "make_labels",
    "pad_batch",
    "record_from_row",
    "record_to_row",
    "reply_span",
    "sample_from_row",
    "sample_to_row",
]
