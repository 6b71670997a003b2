"""A backend that replays scripted replies: for tests, demos and dry runs of the loop.

>>> backend = ScriptedBackend(["I need to zoom in on the video.\\n\\n\\\\boxed{[10, 20]}", "\\\\boxed{B}"])
>>> backend.generate([{"role": "user", "content": "q"}], [])
'I need to zoom in on the video.\\n\\n\\\\boxed{[10, 20]}'
>>> backend.generate([{"role": "user", "content": "q"}], [], assistant_prefix="I get the answer.\\n\\n")
'\\\\boxed{B}'
>>> [call.assistant_prefix for call in backend.calls]
[None, 'I get the answer.\\n\\n']
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import BackendError
from ..views import View, ViewPlan
from .base import DEFAULT_MAX_NEW_TOKENS

ReplyFunction = Callable[[list[dict], Sequence[View], "str | None"], str]


@dataclass(frozen=True)
class ScriptedCall:
    """One recorded :meth:`ScriptedBackend.generate` call."""

    conversation: list[dict]
    plans: tuple[ViewPlan, ...]
    assistant_prefix: str | None
    max_new_tokens: int
    skip_special_tokens: bool
    reply: str


class ScriptedBackend:
    """Replays ``replies`` in order (or asks a function for each one) and records every call.

    Args:
        replies: the texts to return, one per call, in order; or a function
            ``(conversation, views, assistant_prefix) -> str`` called for every call.

    Raises (from :meth:`generate`):
        BackendError: every scripted reply has been used.
    """

    def __init__(self, replies: Sequence[str] | ReplyFunction) -> None:
        if callable(replies):
            self._function: ReplyFunction | None = replies
            self._replies: list[str] = []
        else:
            if isinstance(replies, str):
                raise TypeError("replies must be a sequence of strings (or a function), not one string")
            self._function = None
            self._replies = list(replies)
        self.calls: list[ScriptedCall] = []

    @property
    def remaining(self) -> int | None:
        """Replies not used yet (``None`` for a reply function)."""
        return None if self._function is not None else len(self._replies) - len(self.calls)

    def generate(
        self,
        conversation: list[dict],
        views: Sequence[View],
        *,
        assistant_prefix: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        skip_special_tokens: bool = False,
    ) -> str:
        """Return the next scripted reply and record the call."""
        if self._function is not None:
            reply = self._function(conversation, views, assistant_prefix)
        elif len(self.calls) < len(self._replies):
            reply = self._replies[len(self.calls)]
        else:
            raise BackendError(
                f"ScriptedBackend ran out of replies: all {len(self._replies)} were used and call "
                f"{len(self.calls) + 1} asked for another; script one more reply"
            )
        if not isinstance(reply, str):
            raise BackendError(f"scripted reply {len(self.calls) + 1} is {type(reply).__name__}, not str")
        self.calls.append(
            ScriptedCall(
                conversation=copy.deepcopy(conversation),
                plans=tuple(view.plan for view in views),
                assistant_prefix=assistant_prefix,
                max_new_tokens=max_new_tokens,
                skip_special_tokens=skip_special_tokens,
                reply=reply,
            )
        )
        return reply


__all__ = ["ScriptedBackend", "ScriptedCall"]
