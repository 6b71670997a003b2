"""Run-time context of the LOVE-R1 graph (LangGraph ``context_schema``).

The backend and the view cache live here, never in state: they hold tensors and models,
which the checkpoint serializer cannot store. When a run gives no backend (``langgraph
dev``, a bare ``graph.invoke``), the model named by ``model`` (default: the
``LOVER1_MODEL`` environment variable, else the built-in tiny model) is loaded lazily,
once per process.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

from lover1_plugin.backends import Backend, load_backend
from lover1_plugin.video import ViewRenderer

MODEL_ENV = "LOVER1_MODEL"
BACKEND_ENV = "LOVER1_BACKEND"


@dataclass
class LoveR1Context:
    """Settings that reach every node as ``runtime.context``.

    Attributes:
        backend: a ready :class:`~lover1_plugin.backends.Backend`; when None, ``model`` is loaded.
        model: checkpoint path or hub id (``"tiny"`` = the built-in tiny random model).
        backend_name: ``"hf"`` (transformers) or ``"vllm"``.
        backend_kwargs: extra keyword arguments for the backend loader (device, dtype, ...).
        preset: a resolved preset that wins over the state's ``preset`` / ``overrides``.
        renderer: the view cache; one per process is shared when None.
    """

    backend: Any = None  # a Backend; typed Any so LangGraph can publish the context's JSON schema
    model: str = field(default_factory=lambda: os.environ.get(MODEL_ENV, "tiny"))
    backend_name: str = field(default_factory=lambda: os.environ.get(BACKEND_ENV, "hf"))
    backend_kwargs: dict[str, Any] = field(default_factory=dict)
    preset: Any = None  # a Preset
    renderer: Any = None  # a ViewRenderer

    def get_backend(self) -> Backend:
        if self.backend is None:
            self.backend = _shared_backend(self.backend_name, self.model, tuple(sorted(self.backend_kwargs.items())))
        return self.backend

    def check_model(self) -> None:
        """Check, without loading it, that ``model`` is a usable checkpoint (when no backend is given)."""
        if self.backend is None and self.backend_name in ("hf", "vllm"):
            from lover1_plugin.backends.hf import check_checkpoint

            check_checkpoint(self.model)

    def get_renderer(self, font_path: str | None = None) -> ViewRenderer:
        if self.renderer is None:
            self.renderer = _shared_renderer(font_path)
        return self.renderer


@functools.lru_cache(maxsize=2)
def _shared_backend(name: str, model: str, kwargs: tuple[tuple[str, Any], ...]) -> Backend:
    """Load a model once per process (the server and repeated ``invoke`` calls share it)."""
    return load_backend(name, model=model, **dict(kwargs))


@functools.lru_cache(maxsize=4)
def _shared_renderer(font_path: str | None) -> ViewRenderer:
    return ViewRenderer(font_path=font_path)


__all__ = ["BACKEND_ENV", "MODEL_ENV", "LoveR1Context"]
