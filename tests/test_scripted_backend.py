"""ScriptedBackend: replays replies in order, records every call, fails loudly when it runs out."""

from __future__ import annotations

import pytest
import torch

from lover1_plugin.backends import Backend, ScriptedBackend
from lover1_plugin.errors import BackendError
from lover1_plugin.views import View, ViewPlan

ZOOM = "I need to zoom in on the video.\n\nThe goal appears later. \\boxed{[100, 130]}"
ANSWER = "\\boxed{B}"


def view(kind="fast", label=(0, 600)):
    plan = ViewPlan("v.mp4", kind, (0, 30), 0.5, 28, 28, label, 30.0)
    return View(plan, torch.zeros(2, 3, 28, 28))


def conversation(text="Q"):
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]


def test_is_a_backend():
    assert isinstance(ScriptedBackend([]), Backend)


def test_replays_in_order_and_records_each_call():
    backend = ScriptedBackend([ZOOM, ANSWER])
    fast, slow = view(), view("slow", (100, 130))
    assert backend.generate(conversation(), [fast]) == ZOOM
    assert backend.remaining == 1
    assert backend.generate(conversation(), [fast, slow], assistant_prefix="I get the answer.\n\n") == ANSWER
    assert [call.plans for call in backend.calls] == [(fast.plan,), (fast.plan, slow.plan)]
    assert [call.assistant_prefix for call in backend.calls] == [None, "I get the answer.\n\n"]
    assert [call.reply for call in backend.calls] == [ZOOM, ANSWER]
    assert backend.remaining == 0


def test_records_generation_settings():
    backend = ScriptedBackend(["x"])
    backend.generate(conversation(), [view()], max_new_tokens=7, skip_special_tokens=True)
    assert (backend.calls[0].max_new_tokens, backend.calls[0].skip_special_tokens) == (7, True)


def test_recorded_conversation_is_a_snapshot():
    backend = ScriptedBackend(["a"])
    messages = conversation("original")
    backend.generate(messages, [view()])
    messages[0]["content"][1]["text"] = "changed later by the caller"
    assert backend.calls[0].conversation[0]["content"][1]["text"] == "original"


def test_running_out_raises_a_clear_error():
    backend = ScriptedBackend([ANSWER])
    backend.generate(conversation(), [view()])
    with pytest.raises(BackendError, match="ran out of replies: all 1 were used and call 2"):
        backend.generate(conversation(), [view()])
    assert len(backend.calls) == 1  # the failed call is not recorded as answered


def test_reply_function_sees_the_round():
    def reply(messages, views, prefix):
        return f"{len(views)} views, prefix={prefix!r}, question={messages[0]['content'][-1]['text']}"

    backend = ScriptedBackend(reply)
    assert backend.generate(conversation("Why?"), [view(), view("slow")]) == "2 views, prefix=None, question=Why?"
    assert backend.remaining is None
    assert len(backend.calls) == 1


def test_reply_function_must_return_text():
    backend = ScriptedBackend(lambda messages, views, prefix: None)
    with pytest.raises(BackendError, match="not str"):
        backend.generate(conversation(), [])


def test_a_single_string_is_not_a_script():
    with pytest.raises(TypeError, match="sequence of strings"):
        ScriptedBackend(ANSWER)
