"""Model backends: the :class:`Backend` protocol and its implementations.

>>> backend = load_backend("hf", model="tiny")        # doctest: +SKIP
>>> backend.generate(conversation, views)             # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import DEFAULT_MAX_NEW_TOKENS, Backend
from .scripted import ScriptedBackend, ScriptedCall

BACKEND_NAMES = ("hf", "vllm")


def load_backend(name: str = "hf", model: str = "tiny", **kwargs: Any) -> Backend:
    """Build a backend by name: ``"hf"`` (transformers, :class:`HFBackend`) or ``"vllm"``.

    Args:
        name: the backend.
        model: a hub id, a local checkpoint directory or ``"tiny"``.
        **kwargs: passed to the backend's ``from_pretrained`` (device, dtype,
            attn_implementation, reuse, ...).

    Raises:
        ConfigError: unknown or unavailable backend name.
    """
    if name == "hf":
        from .hf import HFBackend

        return HFBackend.from_pretrained(model, **kwargs)
    if name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend.from_pretrained(model, **kwargs)
    if name == "scripted":
        raise ConfigError("build a ScriptedBackend directly: ScriptedBackend(replies)")
    raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def __getattr__(name: str) -> Any:
    # HFBackend imports transformers: load it on first use only
    if name in ("HFBackend", "BackendStats"):
        from . import hf

        return getattr(hf, name)
    if name == "VLLMBackend":  # vLLM is an optional, GPU-only extra
        from .vllm import VLLMBackend

        return VLLMBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_MAX_NEW_TOKENS",
    "Backend",
    "BackendStats",
    "HFBackend",
    "ScriptedBackend",
    "ScriptedCall",
    "VLLMBackend",
    "load_backend",
]
