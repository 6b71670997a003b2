"""The two data types every part of the package passes around: a view's plan and the view.

A :class:`ViewPlan` is pure data (which frames, what size, what rate): it is computed
without decoding anything and is hashable, so it doubles as a cache key. A
:class:`View` is a plan plus its rendered pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

TEMPORAL_PATCH = 2  # Qwen2.5-VL encodes frames in pairs
SPATIAL_PATCH = 14  # vision patch side in pixels
MERGE = 2  # 2x2 patches are merged into one token


@dataclass(frozen=True)
class ViewPlan:
    """What one view will show the model (SPEC 1), computed without decoding.

    Attributes:
        source: path of the video file.
        kind: ``"fast"`` (whole video, dense, small) or ``"slow"`` (a zoom clip).
        frame_ids: decoded frame indices, in order.
        sample_fps: the view's frame rate as the model is told it (SPEC 1).
        height, width: the resized frame size (multiples of 28).
        label: the ``[start, end]`` seconds written before the view in the prompt.
        video_fps: the source's average fps, used for the timestamps drawn on frames.
    """

    source: str
    kind: Literal["fast", "slow"]
    frame_ids: tuple[int, ...]
    sample_fps: float
    height: int
    width: int
    label: tuple[int, int]
    video_fps: float

    @property
    def num_frames(self) -> int:
        return len(self.frame_ids)

    @property
    def grid_thw(self) -> tuple[int, int, int]:
        """``video_grid_thw`` the processor reports: an odd frame count is padded to even."""
        t = math.ceil(self.num_frames / TEMPORAL_PATCH)
        return (t, self.height // SPATIAL_PATCH, self.width // SPATIAL_PATCH)

    @property
    def second_per_grid_t(self) -> float:
        """Seconds covered by one temporal grid step: ``2 / sample_fps``."""
        return TEMPORAL_PATCH / self.sample_fps

    @property
    def visual_tokens(self) -> int:
        """Tokens after the 2x2 merge: ``ceil(T / 2) * (h / 28) * (w / 28)``."""
        t, h, w = self.grid_thw
        return t * (h // MERGE) * (w // MERGE)


@dataclass(frozen=True, eq=False)
class View:
    """A rendered view: ``pixels`` is a float32 ``(T, 3, height, width)`` tensor in [0, 255]."""

    plan: ViewPlan
    pixels: torch.Tensor

    def __post_init__(self) -> None:
        expected = (self.plan.num_frames, 3, self.plan.height, self.plan.width)
        if tuple(self.pixels.shape) != expected:
            raise ValueError(f"view pixels have shape {tuple(self.pixels.shape)}, plan says {expected}")


__all__ = ["MERGE", "SPATIAL_PATCH", "TEMPORAL_PATCH", "View", "ViewPlan"]
