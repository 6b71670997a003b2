"""Where the package caches what it builds: the tiny model, the toy checkpoint, demo and needle videos.

``$LOVER1_CACHE`` when set, else ``~/.cache/lover1_plugin``.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LOVER1_CACHE"


def cache_dir(*parts: str) -> Path:
    """``$LOVER1_CACHE/<parts...>`` (or ``~/.cache/lover1_plugin/<parts...>``); not created."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "lover1_plugin"
    return base.joinpath(*parts)


def toy_checkpoint_dir() -> Path:
    """Where ``lover1 train toy`` saves the toy LOVE-R1 checkpoint that ``lover1 demo`` prefers."""
    return cache_dir("toy-love-r1")


__all__ = ["CACHE_ENV", "cache_dir", "toy_checkpoint_dir"]
