"""Draw where the model looked: the video's duration, the fast-view sampling, each round's zoom and the answer.

>>> draw_timeline(state, "timeline.png")  # state: the graph's output (or ``lover1 answer --json``)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def fast_view_times(fast_view: Mapping[str, Any]) -> np.ndarray:
    """Seconds of the fast-view frames (SPEC 1 frame ids over the video's frames, divided by its fps)."""
    from .video import linspace_ids

    n, total, fps = int(fast_view["frames"]), int(fast_view["video_frames"]), float(fast_view["video_fps"])
    return np.asarray(linspace_ids(0, max(total - 1, 0), n), dtype=np.float64) / fps


def draw_timeline(state: Mapping[str, Any], path: str | Path, *, title: str | None = None, legend: bool = True) -> Path:
    """Write a PNG timeline of one LOVE-R1 run and return its path (``legend=False`` leaves out the key)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    duration = float(state.get("duration") or 0.0)
    rounds = list(state.get("rounds", []))
    final = state.get("final")
    rows = 1 + len(rounds) + (1 if final else 0)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.6 * rows))
    labels = []

    y = rows - 1
    fast = state.get("fast_view")
    if fast:
        ax.vlines(fast_view_times(fast), y - 0.3, y + 0.3, color="tab:blue", linewidth=0.5)
        labels.append((y, f"fast view\n{fast['frames']} fr"))
    else:
        labels.append((y, "fast view"))

    for record in rounds:
        y -= 1
        proposal = record.get("edited_proposal") or record.get("proposal")
        interval = record.get("interval")
        if proposal:
            ax.barh(
                y,
                max(proposal[1] - proposal[0], 0.5),
                left=proposal[0],
                height=0.5,
                color="none",
                edgecolor="grey",
                hatch="//",
                label="proposed by the model",
            )
        if interval:
            ax.barh(
                y,
                interval[1] - interval[0],
                left=interval[0],
                height=0.5,
                color="tab:orange",
                alpha=0.8,
                label="zoomed (slow view)",
            )
            ax.annotate(f"[{interval[0]}, {interval[1]}]", (interval[0], y + 0.3), fontsize=8, va="bottom")
        else:
            x = proposal[1] if proposal and proposal[1] < duration * 0.7 else 0
            ax.annotate(f" {record.get('outcome', '')}", (x, y), fontsize=8, va="center", color="firebrick")
        labels.append((y, f"round {record['round']}\n{record.get('decision', '')}"))

    if final:
        y -= 1
        for start, end in final.get("intervals", []):
            ax.barh(y, end - start, left=start, height=0.5, color="tab:green", alpha=0.6, label="answer context")
        ax.annotate(f" {final.get('reason', '')}", (0, y - 0.45), fontsize=7, va="center", color="dimgrey")
        labels.append((y, "forced answer" if final.get("forced") else "single pass"))

    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    if legend and unique:
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper right", framealpha=0.8)
    ax.set_yticks([pos for pos, _ in labels], [text for _, text in labels], fontsize=8)
    margin = max(duration, 1.0) * 0.02  # keep the frame at t=0 and labels near the end visible
    ax.set_xlim(-margin, max(duration, 1.0) + margin)
    ax.set_ylim(-0.7, rows - 0.3)
    ax.set_xlabel("seconds")
    heading = title or "LOVE-R1"
    ax.set_title(f"{heading}  ->  answer: {state.get('answer', '')!r}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["draw_timeline", "fast_view_times"]
