"""``love_r1`` through lmms-eval's simple interface (``--force_simple``).

A request is ``Instance.args = (ctx, gen_kwargs, doc_to_visual, doc_id, task, split)``:
the video is the first entry of ``doc_to_visual(doc)``, the question text is ``ctx``
(the task's ``doc_to_text``: the SPEC 2 formatted question).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import LoveR1Model, first_video


class LoveR1Simple(LoveR1Model):
    """LOVE-R1 for lmms-eval's simple (ctx + doc_to_visual) requests."""

    is_simple = True

    def request_fields(self, args: tuple) -> tuple[str, Mapping[str, Any], int, str, str]:
        ctx, gen_kwargs, _doc_to_visual, doc_id, task, split = args
        return ctx, gen_kwargs or {}, doc_id, task, split

    def video_and_question(self, args: tuple, doc: Mapping[str, Any]) -> tuple[str, str]:
        ctx, _gen_kwargs, doc_to_visual, *_ = args
        return first_video(doc_to_visual(doc)), ctx


__all__ = ["LoveR1Simple"]
