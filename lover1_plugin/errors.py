"""Typed errors of lover1-plugin.

Every error says what was wrong and what to do about it, and carries the offending
path or setting where there is one. Bad arguments raise ``ValueError`` subclasses so
callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class Lover1Error(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(Lover1Error, ValueError):
    """A setting is invalid (unknown preset, unknown key, non-positive frame count...)."""


class VideoDecodeError(Lover1Error):
    """A video cannot be read: missing file, no video stream, corrupt data, zero frames."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot read {self.path!r} ({cause})")


class ViewError(Lover1Error, ValueError):
    """A view cannot be planned or rendered (extreme aspect ratio, empty interval...)."""


class CheckpointError(Lover1Error):
    """A model directory or hub id does not hold a usable Qwen2.5-VL checkpoint."""


class BackendError(Lover1Error):
    """The model backend failed while generating."""


class GenerationOOMError(BackendError):
    """The accelerator ran out of memory during a round."""

    def __init__(self, visual_tokens: int, total_tokens: int, hint: str) -> None:
        self.visual_tokens = visual_tokens
        self.total_tokens = total_tokens
        super().__init__(f"out of memory with {visual_tokens} visual tokens ({total_tokens} tokens in all); {hint}")


__all__ = [
    "BackendError",
    "CheckpointError",
    "ConfigError",
    "GenerationOOMError",
    "Lover1Error",
    "VideoDecodeError",
    "ViewError",
]
