"""The one interface the loop, the CLI, lmms-eval and training use to talk to a model.

A backend turns one round's conversation and views into the model's new text. It owns
everything model-specific: the processor call, the SPEC 1b positions, greedy decoding
(SPEC 3), caches. Callers never see tensors other than the views they pass in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..views import View

DEFAULT_MAX_NEW_TOKENS = 2048  # SPEC 3: up to 2048 new tokens a turn


@runtime_checkable
class Backend(Protocol):
    """Something that answers one LOVE-R1 round.

    ``conversation`` is a list of HF chat messages (``prompts.build_conversation``) whose
    ``{"type": "video"}`` parts are filled with ``views`` in order (fast view first,
    then the slow views sorted by start). ``assistant_prefix`` is appended after the
    generation prompt and is not part of the returned text.
    """

    def generate(
        self,
        conversation: list[dict],
        views: Sequence[View],
        *,
        assistant_prefix: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        skip_special_tokens: bool = False,
    ) -> str:
        """Return only the newly generated text (special tokens kept unless ``skip_special_tokens``)."""
        ...


__all__ = ["DEFAULT_MAX_NEW_TOKENS", "Backend"]
