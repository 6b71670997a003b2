"""Typed configuration: how views are built, how the zoom loop runs, per-benchmark presets.

Defaults are stated once, here, and follow ``SPEC.md`` (the input contract of the
released LOVE-R1 checkpoints). Presets only change what the paper changed per benchmark.

>>> preset = get_preset("mlvu")
>>> preset.view.num_fast, preset.view.fast_res
(384, 64)
>>> get_preset("videomme", num_fast=256).view.num_fast
256
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .errors import ConfigError

PATCH = 28  # a merged 2x2 patch of 14 px: the unit of Qwen2.5-VL's pixel budgets

Mode = Literal["zoom", "single"]
QuestionFormat = Literal["videomme", "mlvu", "mvbench", "lvbench", "longvideobench"]
QUESTION_FORMATS: tuple[str, ...] = ("videomme", "mlvu", "mvbench", "lvbench", "longvideobench")


@dataclass(frozen=True)
class ViewConfig:
    """How the fast view (whole video) and slow views (zoom clips) are sampled and sized."""

    num_fast: int = field(default=768, metadata={"help": "Most frames in the fast view (2 per second below that)."})
    fast_res: int = field(default=32, metadata={"help": "Fast-view pixel budget per frame, in 28x28 patches."})
    num_slow: int = field(default=32, metadata={"help": "Most frames in one slow view (zoom clip)."})
    slow_res: int = field(default=256, metadata={"help": "Slow-view pixel budget per frame, in 28x28 patches."})
    short_video_s: float = field(
        default=60.0, metadata={"help": "Videos shorter than this get `short_factor` times the budget."}
    )
    short_factor: int = field(default=2, metadata={"help": "Budget multiplier for short videos."})
    factor_on_slow: bool = field(
        default=True, metadata={"help": "Apply the short-video factor to slow views too (evaluation: yes; SFT: no)."}
    )
    font_path: str | None = field(
        default=None,
        metadata={"help": "TrueType font for the timestamps; Arial.Unicode.ttf gives exact parity with training."},
    )

    def __post_init__(self) -> None:
        for name in ("num_fast", "fast_res", "num_slow", "slow_res", "short_factor"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.short_video_s < 0:
            raise ConfigError(f"short_video_s must be >= 0, got {self.short_video_s!r}")

    def factor(self, duration: float) -> int:
        """SPEC 1: ``factor = 2 if D < 60 else 1``."""
        return self.short_factor if duration < self.short_video_s else 1

    def fast_budget(self, duration: float) -> int:
        """Pixel budget of one fast-view frame: ``fast_res * 28 * 28 * factor``."""
        return self.fast_res * PATCH * PATCH * self.factor(duration)

    def slow_budget(self, duration: float) -> int:
        """Pixel budget of one slow-view frame: ``slow_res * 28 * 28 * factor``."""
        factor = self.factor(duration) if self.factor_on_slow else 1
        return self.slow_res * PATCH * PATCH * factor


@dataclass(frozen=True)
class LoopConfig:
    """The zoom loop of SPEC 3 (and the single-pass mode of SPEC 3b)."""

    mode: Mode = field(default="zoom", metadata={"help": "'zoom' (the loop) or 'single' (stage-1, one pass)."})
    max_rounds: int = field(default=2, metadata={"help": "Reasoning rounds before the forced answer."})
    pad_s: int = field(default=5, metadata={"help": "Seconds added on each side of a proposed interval."})
    min_width_s: float = field(default=3.0, metadata={"help": "Intervals narrower than this end the loop."})
    widen: bool = field(default=True, metadata={"help": "Re-centre narrow intervals to min(30, D/8) s."})
    widen_max_s: float = field(default=30.0, metadata={"help": "Upper bound of the widened width."})
    widen_fraction: float = field(default=1 / 8, metadata={"help": "Widened width as a fraction of D."})
    iou_stop: float = field(default=0.3, metadata={"help": "Stop when a new interval overlaps a zoomed one more."})
    lenient: bool = field(default=False, metadata={"help": "Also accept decimals / text in zoom boxes."})
    max_new_tokens: int = field(default=2048, metadata={"help": "New tokens per model turn."})

    def __post_init__(self) -> None:
        if self.mode not in ("zoom", "single"):
            raise ConfigError(f"mode must be 'zoom' or 'single', got {self.mode!r}")
        if not isinstance(self.max_rounds, int) or self.max_rounds < 0:
            raise ConfigError(f"max_rounds must be an integer >= 0, got {self.max_rounds!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens <= 0:
            raise ConfigError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if self.min_width_s < 0 or self.pad_s < 0:
            raise ConfigError("pad_s and min_width_s must be >= 0")


@dataclass(frozen=True)
class Preset:
    """Everything benchmark-specific: view sizes, loop rules and the question format."""

    name: str
    view: ViewConfig = ViewConfig()
    loop: LoopConfig = LoopConfig()
    question_format: QuestionFormat = "mlvu"

    def __post_init__(self) -> None:
        if self.question_format not in QUESTION_FORMATS:
            raise ConfigError(
                f"question_format must be one of {', '.join(QUESTION_FORMATS)}, got {self.question_format!r}"
            )


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "default": Preset("default"),
        "videomme": Preset("videomme", question_format="videomme"),
        "mlvu": Preset("mlvu", view=ViewConfig(num_fast=384, fast_res=64)),
        "longvideobench": Preset(
            "longvideobench",
            view=ViewConfig(num_slow=16),
            loop=LoopConfig(widen=False),
            question_format="longvideobench",
        ),
        "lvbench": Preset("lvbench", question_format="lvbench"),
        "mvbench": Preset("mvbench", question_format="mvbench"),
    }
)

VIEW_KEYS = tuple(f.name for f in dataclasses.fields(ViewConfig))
LOOP_KEYS = tuple(f.name for f in dataclasses.fields(LoopConfig))
OVERRIDE_KEYS = VIEW_KEYS + LOOP_KEYS + ("question_format",)


def get_preset(name: str = "default", **overrides: Any) -> Preset:
    """Return the preset ``name`` with ``overrides`` (ViewConfig / LoopConfig field names) applied.

    In single-pass mode (``mode="single"``, SPEC 3b) the per-benchmark view overrides do not
    apply: every benchmark uses the default views, plus explicit overrides.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(OVERRIDE_KEYS)}")
    base = PRESETS[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    loop = dataclasses.replace(base.loop, **{k: v for k, v in overrides.items() if k in LOOP_KEYS})
    view_base = ViewConfig() if loop.mode == "single" else base.view
    view = dataclasses.replace(view_base, **{k: v for k, v in overrides.items() if k in VIEW_KEYS})
    question_format = overrides.get("question_format", base.question_format)
    return Preset(name=name, view=view, loop=loop, question_format=question_format)


__all__ = [
    "LOOP_KEYS",
    "OVERRIDE_KEYS",
    "PATCH",
    "PRESETS",
    "QUESTION_FORMATS",
    "VIEW_KEYS",
    "LoopConfig",
    "Preset",
    "ViewConfig",
    "get_preset",
]
