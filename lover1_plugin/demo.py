"""``lover1 demo``: one question about a generated long "needle" video, end to end, offline.

The video is 10 minutes at 1 fps; a small card with a letter (the needle) shows for a few
seconds only, readable at slow-view resolution but not in the fast view. The model is the
toy checkpoint trained by ``lover1 train toy`` when one exists (it zooms for real), else
the tiny random model (it never boxes, so every run ends in the forced answer).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .paths import cache_dir, toy_checkpoint_dir
from .synthetic import make_needle_dataset

logger = logging.getLogger(__name__)

DEMO_DURATION_S = 600  # "at least 10 minutes of frames at low fps"
DEMO_FPS = 1.0


def demo_question(seed: int = 0) -> dict[str, Any]:
    """Generate (once, cached) the demo video and return its question record."""
    out_dir = cache_dir("demo", f"needle-{seed}")
    index = out_dir / "needle.json"
    if index.exists():
        records = json.loads(index.read_text())
    else:
        records = make_needle_dataset(out_dir, num_questions=1, duration_s=DEMO_DURATION_S, fps=DEMO_FPS, seed=seed)
    record = dict(records[0])
    record["video"] = str(out_dir / record["video"])
    return record


def default_demo_model() -> str:
    toy = toy_checkpoint_dir()
    if (toy / "config.json").exists():
        return str(toy)
    logger.warning(
        "no toy checkpoint at %s: using the tiny random model, which never zooms "
        "(run `lover1 train toy` once to train one that does)",
        toy,
    )
    return "tiny"


def trained_view_overrides(model: str) -> dict[str, Any]:
    """View settings a checkpoint was trained with, when ``lover1 train toy`` wrote them beside it."""
    marker = Path(model) / "lover1_toy.json"
    if not marker.is_file():
        return {}
    return dict(json.loads(marker.read_text()).get("preset_overrides", {}))


def run_demo(model: str | None = None, *, max_new_tokens: int = 256, timeline: str | Path | None = None) -> dict:
    """Answer the demo question and return the graph's output state (with the question record)."""
    from .cli import run_with_progress
    from .graphs.context import LoveR1Context

    record = demo_question()
    model = model or default_demo_model()
    logger.info("demo: %s / %s / %s / model %s", record["video"], record["question"], record["options"], model)
    inputs = {
        "video": record["video"],
        "question": record["question"],
        "options": record["options"],
        "overrides": {**trained_view_overrides(model), "max_new_tokens": max_new_tokens},
    }
    state = run_with_progress(inputs, LoveR1Context(model=model), quiet=False)
    state["expected_answer"] = record["answer"]
    state["question"] = record["question"]
    state["options"] = record["options"]
    state["video"] = record["video"]
    state["model"] = model
    if timeline:
        from .timeline import draw_timeline

        draw_timeline(state, timeline, title=record["question"])
    return state


__all__ = ["DEMO_DURATION_S", "default_demo_model", "demo_question", "run_demo"]
