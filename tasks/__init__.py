"""lmms-eval tasks for LOVE-R1 (installed as ``lover1_plugin.tasks``).

lmms-eval finds external tasks through ``--include_path`` (there is no task entry point)::

    lmms-eval --model love_r1 --tasks love_r1_videomme \\
        --include_path "$(python -c 'import lover1_plugin.tasks as t; print(t.TASKS_DIR)')"

or ``TaskManager(include_path=str(TASKS_DIR))``. The benchmark tasks read the same datasets
and video folders as lmms-eval's built-in ones; ``love_r1_needle`` is generated offline.
See ``utils.py`` for the contract with the model and the metrics.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent

# Top-level names to pass to ``--tasks`` (``love_r1_mvbench`` is a group of 20 sub-tasks).
TASK_NAMES: tuple[str, ...] = (
    "love_r1_videomme",
    "love_r1_mlvu",
    "love_r1_longvideobench",
    "love_r1_lvbench",
    "love_r1_mvbench",
    "love_r1_needle",
)

__all__ = ["TASKS_DIR", "TASK_NAMES"]
