"""``love_r1`` through lmms-eval's chat interface (the default for ``--model love_r1``).

A request is ``Instance.args = (ctx, doc_to_messages, gen_kwargs, doc_id, task, split)``:
the video is the user turn's video part, the question text its text (the task's
``doc_to_text``: the SPEC 2 formatted question), ``ctx`` when it has no text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import LoveR1Model, split_messages


class LoveR1Chat(LoveR1Model):
    """LOVE-R1 for lmms-eval's chat (doc_to_messages) requests."""

    is_simple = False

    def request_fields(self, args: tuple) -> tuple[str, Mapping[str, Any], int, str, str]:
        ctx, _doc_to_messages, gen_kwargs, doc_id, task, split = args
        return ctx, gen_kwargs or {}, doc_id, task, split

    def video_and_question(self, args: tuple, doc: Mapping[str, Any]) -> tuple[str, str]:
        ctx, doc_to_messages, *_ = args
        return split_messages(doc_to_messages(doc), ctx)


__all__ = ["LoveR1Chat"]
