"""Model inputs for one conversation and its views: the one place the processor is called.

Inference (the HF backend) and training (the SFT/GRPO collators) both build their
inputs with :func:`build_inputs`, so what the model sees in training is what it sees
at inference. The call follows SPEC 1 for transformers 5.x:

- the chat template renders the conversation (``tokenize=False``), then the assistant
  prefix and, for training, the completion are appended verbatim;
- the video processor gets the rendered view tensors with frame sampling off, resizing
  off, ``size`` bracketing the view sizes (its class default minimum, ``128 * 28 * 28``,
  would silently enlarge the fast view 4x if resizing were ever on), the per-frame pixel
  cap set explicitly, and each view's real rate as ``video_metadata``;
- the result is checked against the plans (grid, seconds per grid step, token count),
  and the SPEC 1b position ids (:func:`lover1_plugin.positions.rope_position_ids`) are
  added as ``position_ids`` of shape ``(3, 1, L)``.

:func:`build_text_inputs` gives the same inputs without touching any pixel (the
placeholder runs, grids and rates come from the plans) and :func:`process_views` the
pixels of chosen views: the HF backend uses them to skip views whose vision-tower
outputs it already holds. Both are tested field by field against :func:`build_inputs`.

Example: a 40 s 720p video's fast view (80 frames of 168x280 at 2 fps) gives
``video_grid_thw == [[40, 12, 20]]``, ``second_per_grid_ts == [1.0]`` and 2,400
``<|video_pad|>`` tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from .errors import ViewError
from .positions import TOKENS_PER_SECOND, rope_position_ids
from .views import View

logger = logging.getLogger(__name__)


def build_inputs(
    processor: Any,
    conversation: list[dict],
    views: Sequence[View],
    *,
    assistant_prefix: str | None = None,
    completion: str | None = None,
    add_generation_prompt: bool = True,
    tokens_per_second: int = TOKENS_PER_SECOND,
):
    """Tokenise ``conversation`` with ``views`` into a ``BatchFeature`` of batch size 1.

    Args:
        processor: a Qwen2.5-VL processor (``AutoProcessor.from_pretrained(...)``).
        conversation: HF chat messages; its ``{"type": "video"}`` parts are filled with
            ``views`` in order (fast view first, then the slow views sorted by start).
        views: the rendered views.
        assistant_prefix: text appended after the generation prompt (e.g. the forced
            answer's ``"I get the answer.\\n\\n"``).
        completion: text appended after the prefix (training targets), verbatim.
        add_generation_prompt: end with ``<|im_start|>assistant\\n``.
        tokens_per_second: the model's ``vision_config.tokens_per_second``.

    Returns:
        ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` (when the processor
        returns it), ``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts``
        (when there are views) and ``position_ids`` ``(3, 1, L)``.

    Raises:
        ViewError: the number of video entries differs from the number of views, or the
            processor output disagrees with the views' plans.
    """
    text = render_text(
        processor,
        conversation,
        assistant_prefix=assistant_prefix,
        completion=completion,
        add_generation_prompt=add_generation_prompt,
    )
    _check_view_count(conversation, views)
    batch = processor(text=[text], return_tensors="pt", **video_kwargs(views))
    check_against_plans(batch, views, video_token_id=processor.video_token_id)
    return _add_positions(processor, batch, tokens_per_second)


def build_text_inputs(
    processor: Any,
    conversation: list[dict],
    views: Sequence[View],
    *,
    assistant_prefix: str | None = None,
    completion: str | None = None,
    add_generation_prompt: bool = True,
    tokens_per_second: int = TOKENS_PER_SECOND,
):
    """:func:`build_inputs` without ``pixel_values_videos``, computed from the plans alone.

    The chat text is tokenised with one ``<|video_pad|>`` per view, and each is then
    repeated ``plan.visual_tokens`` times (it is a special token, so tokenising the
    expanded text gives the same ids); ``video_grid_thw`` and ``second_per_grid_ts`` are
    the plans'. For callers that hold the views' vision-tower outputs already.
    """
    from transformers import BatchFeature

    text = render_text(
        processor,
        conversation,
        assistant_prefix=assistant_prefix,
        completion=completion,
        add_generation_prompt=add_generation_prompt,
    )
    _check_view_count(conversation, views)
    ids = torch.tensor(processor.tokenizer(text)["input_ids"], dtype=torch.long)
    slots = (ids == processor.video_token_id).nonzero().flatten()
    if slots.numel() != len(views):
        raise ViewError(f"the chat text holds {slots.numel()} <|video_pad|> tokens for {len(views)} views")
    repeats = torch.ones_like(ids)
    repeats[slots] = torch.tensor([view.plan.visual_tokens for view in views], dtype=torch.long)
    input_ids = ids.repeat_interleave(repeats).unsqueeze(0)  # (1, L)
    batch = BatchFeature({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)})
    if getattr(processor, "return_mm_token_type_ids", False):
        batch["mm_token_type_ids"] = torch.tensor(processor.create_mm_token_type_ids(input_ids.tolist()))
    if views:
        batch["video_grid_thw"] = torch.tensor([view.plan.grid_thw for view in views], dtype=torch.long)
        batch["second_per_grid_ts"] = torch.tensor([view.plan.second_per_grid_t for view in views])  # float32
    return _add_positions(processor, batch, tokens_per_second)


def process_views(processor: Any, views: Sequence[View]):
    """``pixel_values_videos`` and ``video_grid_thw`` of ``views`` (the processor's video half, SPEC 1 settings)."""
    kwargs = video_kwargs(views)
    kwargs.pop("video_metadata")  # only the processor's text half uses the rate
    videos = kwargs.pop("videos")
    batch = processor.video_processor(videos=videos, return_tensors="pt", **kwargs)
    _check_grids(batch["video_grid_thw"].tolist(), views)
    return batch


def _check_grids(grids: list[list[int]], views: Sequence[View]) -> None:
    if len(grids) != len(views):
        raise ViewError(f"the processor returned {len(grids)} videos for {len(views)} views")
    for index, (view, grid) in enumerate(zip(views, grids, strict=True)):
        if tuple(grid) != view.plan.grid_thw:
            raise ViewError(
                f"view {index} ({view.plan.kind}): the processor's grid {tuple(grid)} differs from the planned "
                f"{view.plan.grid_thw}; the processor resized or resampled the frames"
            )


def _check_view_count(conversation: list[dict], views: Sequence[View]) -> None:
    if count_video_entries(conversation, kind="image"):
        raise ViewError("the conversation has image entries; LOVE-R1 conversations hold videos only")
    expected_videos = count_video_entries(conversation)
    if expected_videos != len(views):
        raise ViewError(f"the conversation has {expected_videos} video entries but {len(views)} views were given")


def _add_positions(processor: Any, batch: Any, tokens_per_second: int):
    """Add the SPEC 1b ``position_ids``, shape ``(3, 1, L)``."""
    positions = rope_position_ids(
        batch["input_ids"][0],
        batch.get("video_grid_thw"),
        batch.get("second_per_grid_ts"),
        video_token_id=processor.video_token_id,
        spatial_merge_size=processor.video_processor.merge_size,
        tokens_per_second=tokens_per_second,
    )
    batch["position_ids"] = positions.unsqueeze(1)
    return batch


def render_text(
    processor: Any,
    conversation: list[dict],
    *,
    assistant_prefix: str | None = None,
    completion: str | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The chat-template text (one ``<|video_pad|>`` per view) with prefix and completion appended."""
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=add_generation_prompt)
    return text + (assistant_prefix or "") + (completion or "")


def count_video_entries(conversation: list[dict], kind: str = "video") -> int:
    """Number of ``{"type": "video"}`` (or ``kind``) content parts in the conversation."""
    count = 0
    for message in conversation:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == kind)
    return count


def video_kwargs(views: Sequence[View]) -> dict[str, Any]:
    """The processor's video arguments that keep each view exactly as planned (SPEC 1)."""
    if not views:
        return {}
    areas = [view.plan.height * view.plan.width for view in views]
    return {
        "videos": [view.pixels for view in views],
        "video_metadata": [{"fps": view.plan.sample_fps, "total_num_frames": view.plan.num_frames} for view in views],
        "do_sample_frames": False,  # the views are already the sampled frames
        "do_resize": False,  # the views are already smart-resized to multiples of 28
        # min/max pixels bracket the views, so even a resizing processor keeps their size
        "size": {"shortest_edge": min(areas), "longest_edge": max(areas)},
        "cap_pixels_per_frame": False,  # explicit: a future default must not shrink our frames
    }


def check_against_plans(batch: Any, views: Sequence[View], *, video_token_id: int) -> None:
    """Raise :class:`ViewError` unless the processor output is exactly what the plans say."""
    if views:
        _check_grids(batch["video_grid_thw"].tolist(), views)
        seconds = batch["second_per_grid_ts"]
        for index, view in enumerate(views):
            planned = torch.tensor(view.plan.second_per_grid_t, dtype=seconds.dtype)
            if not torch.isclose(seconds[index], planned, rtol=1e-6, atol=0.0):
                raise ViewError(
                    f"view {index} ({view.plan.kind}): second_per_grid_ts {float(seconds[index]):.6g} differs from "
                    f"2 / sample_fps = {view.plan.second_per_grid_t:.6g}"
                )
    num_video_tokens = int((batch["input_ids"] == video_token_id).sum())
    planned_tokens = sum(view.plan.visual_tokens for view in views)
    if num_video_tokens != planned_tokens:
        raise ViewError(f"the processor produced {num_video_tokens} video tokens, the view plans need {planned_tokens}")


__all__ = [
    "build_inputs",
    "build_text_inputs",
    "check_against_plans",
    "count_video_entries",
    "process_views",
    "render_text",
    "video_kwargs",
]
