"""The love_r1 lmms-eval model with a scripted backend: settings, requests, traces, failures, ranks.

Requests are built exactly as lmms-eval builds them (``Instance.args`` of the simple and
chat interfaces); the model answers them by running the LOVE-R1 graph.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.reasoning import strip_reasoning_tags

from lover1_plugin.backends.scripted import ScriptedBackend
from lover1_plugin.config import get_preset
from lover1_plugin.errors import CheckpointError, ConfigError
from lover1_plugin.evaluation import DOCUMENT_FAILED
from lover1_plugin.evaluation import model as model_module
from lover1_plugin.evaluation.chat import LoveR1Chat
from lover1_plugin.evaluation.manifest import get_manifests
from lover1_plugin.evaluation.model import model_arg_names, resolve_device
from lover1_plugin.evaluation.simple import LoveR1Simple
from lover1_plugin.prompts import ZOOM_INSTRUCTION, to_single_pass
from lover1_plugin.synthetic import make_test_video
from lover1_plugin.video import plan_fast_view, probe_video

ZOOM = "I need to zoom in on the video.\n\n\\boxed{[4, 8]}"
ANSWER_B = "I get the answer.\n\n\\boxed{B}"
MC_QUESTION = "What is shown?\nOptions:\n(A) a cat\n(B) a red square\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
VIDEOMME_QUESTION = "What is shown?\nA. a cat\nB. a red square\n\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
FAST = {"num_slow": 4, "slow_res": 16}  # small zoom clips: keep the tests fast (the fast view is untouched)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 20 s, 2 fps clip (40 frames): fast view of 40 frames, short-video budget factor 2."""
    return str(make_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", duration_s=20, fps=2))


def make_model(cls=LoveR1Simple, replies=(ANSWER_B,), docs=(), **model_args):
    backend = replies if isinstance(replies, ScriptedBackend) else ScriptedBackend(replies)
    model = cls(backend=backend, **{**FAST, **model_args})
    model.task_dict = {"t": {"test": list(docs)}}
    return model


def simple_request(doc_id, ctx=MC_QUESTION, gen_kwargs=None, doc_to_visual=lambda doc: [doc["video"]]):
    """``Instance.args = (ctx, gen_kwargs, doc_to_visual, doc_id, task, split)``, as ConfigurableTask builds it."""
    args = (ctx, dict(gen_kwargs or {}), doc_to_visual, doc_id, "t", "test")
    return Instance("generate_until", args, 0, {"task": "t", "doc_id": doc_id, "repeats": 1})


def doc_to_messages(doc):
    return [
        {"role": "user", "content": [{"type": "video", "url": doc["video"]}, {"type": "text", "text": doc["question"]}]}
    ]


def chat_request(doc_id, ctx="ctx is not the question here", gen_kwargs=None):
    """``Instance.args = (ctx, doc_to_messages, gen_kwargs, doc_id, task, split)``, as ConfigurableMessagesTask builds it."""
    args = (ctx, doc_to_messages, dict(gen_kwargs or {}), doc_id, "t", "test")
    return Instance("generate_until", args, 0, {"task": "t", "doc_id": doc_id, "repeats": 1})


def question_of(call) -> str:
    """The last text part of a recorded conversation's user turn (question + instruction)."""
    return call.conversation[-1]["content"][-1]["text"]


# --------------------------------------------------------------------------- registration


def test_lmms_eval_resolves_chat_by_default_and_simple_with_force_simple():
    from lmms_eval.models import get_model, get_model_manifest

    assert get_model_manifest("love_r1") == get_manifests()  # registered through our entry point
    assert get_model("love_r1") is LoveR1Chat and LoveR1Chat.is_simple is False
    assert get_model("love_r1", force_simple=True) is LoveR1Simple and LoveR1Simple.is_simple is True


# --------------------------------------------------------------------------- the loop per document


def test_zoom_round_then_answer_returns_answer_and_trace(video):
    model = make_model(replies=[ZOOM, ANSWER_B], docs=[{"video": video}])
    (response,) = model.generate_until([simple_request(0)])
    result = json.loads(response)
    assert result["answer"] == "B"
    trace = result["trace"]
    assert [r["decision"] for r in trace["rounds"]] == ["zoom", "answer"]
    assert trace["intervals"] == [[0, 13]]  # [4, 8] padded by 5 s and clamped at 0
    assert trace["duration"] == 20.0 and trace["fast_view"]["frames"] == 40 and trace["errors"] == []
    first, second = model.backend.calls
    assert question_of(first) == MC_QUESTION + "\n" + ZOOM_INSTRUCTION  # ctx is the question text, verbatim
    texts = [part.get("text") for part in second.conversation[-1]["content"]]
    assert "Subset zoom-in video clip [0, 13]:" in texts and len(second.plans) == 2


def test_preset_comes_from_the_tasks_generation_kwargs(video):
    model = make_model(docs=[{"video": video}])
    (response,) = model.generate_until([simple_request(0, gen_kwargs={"love_r1_preset": "mlvu"})])
    (call,) = model.backend.calls
    # MLVU's fast view: 384 frames at most, 64 patches a frame
    assert call.plans[0] == plan_fast_view(probe_video(video), get_preset("mlvu").view)
    assert call.plans[0] != plan_fast_view(probe_video(video), get_preset("default").view)
    assert json.loads(response)["trace"]["preset"] == "mlvu"


def test_preset_model_arg_wins_over_the_task(video):
    model = make_model(docs=[{"video": video}], preset="videomme")
    (response,) = model.generate_until([simple_request(0, gen_kwargs={"love_r1_preset": "mlvu"})])
    assert model.backend.calls[0].plans[0] == plan_fast_view(probe_video(video), get_preset("videomme").view)
    assert json.loads(response)["trace"]["preset"] == "videomme"


@pytest.mark.parametrize(
    ("model_args", "gen_kwargs", "expected"),
    [
        ({}, {}, 2048),  # SPEC 3 default
        ({}, {"max_new_tokens": 512}, 512),  # the task's generation kwargs
        ({"max_new_tokens": 16}, {"max_new_tokens": 2048}, 16),  # model_args win
    ],
)
def test_max_new_tokens_precedence(video, model_args, gen_kwargs, expected):
    model = make_model(docs=[{"video": video}], **model_args)
    model.generate_until([simple_request(0, gen_kwargs=gen_kwargs)])
    assert model.backend.calls[0].max_new_tokens == expected


def test_single_pass_mode_converts_the_question(video):
    model = make_model(replies=["The answer is B."], docs=[{"video": video}], mode="single")
    (response,) = model.generate_until(
        [simple_request(0, ctx=VIDEOMME_QUESTION, gen_kwargs={"love_r1_preset": "videomme"})]
    )
    (call,) = model.backend.calls  # one turn, no loop
    assert question_of(call) == to_single_pass(VIDEOMME_QUESTION, "videomme")
    assert question_of(call).endswith(
        "B. a red square\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
    )
    assert ZOOM_INSTRUCTION not in question_of(call) and call.assistant_prefix is None
    assert call.plans[1].label == (0, 20)  # the whole video as the slow view
    assert json.loads(response)["answer"] == "The answer is B."  # the whole reply, scored by the task


def test_save_trace_false_returns_the_bare_answer(video):
    model = make_model(replies=[ZOOM, ANSWER_B], docs=[{"video": video}], save_trace=False)
    assert model.generate_until([simple_request(0)]) == ["B"]


def test_trace_survives_lmms_eval_reasoning_tag_stripping(video):
    reply = "I get the answer.\n\n<think>look at 3 s</think> \\boxed{B}"
    model = make_model(replies=[reply], docs=[{"video": video}])
    (response,) = model.generate_until([simple_request(0)])
    stripped = strip_reasoning_tags(response, [["<think>", "</think>"]])  # lmms-eval's default --reasoning_tags
    assert stripped == response
    assert json.loads(stripped)["trace"]["rounds"][0]["raw"] == reply


def test_chat_interface_reads_video_and_question_from_the_messages(video):
    model = make_model(cls=LoveR1Chat, replies=[ZOOM, ANSWER_B], docs=[{"video": video, "question": MC_QUESTION}])
    (response,) = model.generate_until([chat_request(0)])
    assert json.loads(response)["answer"] == "B"
    assert question_of(model.backend.calls[0]) == MC_QUESTION + "\n" + ZOOM_INSTRUCTION
    assert model.backend.calls[0].plans[0].source == video


# --------------------------------------------------------------------------- failures


def test_a_failing_document_does_not_end_the_run(video, tmp_path, caplog):
    docs = [{"video": str(tmp_path / "missing.mp4")}, {"video": video}, {"video": None}]

    def doc_to_visual(doc):
        if doc["video"] is None:
            raise KeyError("video")  # a broken task function: an unexpected exception
        return [doc["video"]]

    model = make_model(replies=lambda conversation, views, prefix: ANSWER_B, docs=docs)
    with caplog.at_level(logging.ERROR, logger="lover1_plugin.evaluation.model"):
        responses = model.generate_until([simple_request(i, doc_to_visual=doc_to_visual) for i in range(3)])
    missing, good, broken = (json.loads(r) for r in responses)
    assert missing["answer"] == "" and missing["trace"]["errors"][0]["type"] == "VideoDecodeError"
    assert "missing.mp4" in missing["trace"]["errors"][0]["message"]
    assert good["answer"] == "B" and good["trace"]["errors"] == []
    assert broken["answer"] == "" and broken["trace"]["errors"] == [
        {"node": "request", "type": "KeyError", "message": "'video'"}
    ]
    assert any(DOCUMENT_FAILED in record.getMessage() and record.exc_info for record in caplog.records)


def test_chat_clip_with_start_and_end_is_an_error_of_that_document(video):
    def clip_messages(doc):
        return [
            {
                "role": "user",
                "content": [
                    {"type": "video", "url": {"video": video, "video_start": 2, "video_end": 8}},
                    {"type": "text", "text": "q"},
                ],
            }
        ]

    model = make_model(cls=LoveR1Chat, docs=[{"video": video}])
    request = Instance(
        "generate_until", ("q", clip_messages, {}, 0, "t", "test"), 0, {"task": "t", "doc_id": 0, "repeats": 1}
    )
    (response,) = model.generate_until([request])
    assert "video_start" in json.loads(response)["trace"]["errors"][0]["message"]
    assert model.backend.calls == []


def test_unknown_task_preset_fails_before_any_document_is_run(video):
    model = make_model(docs=[{"video": video}] * 2)
    requests = [simple_request(0), simple_request(1, gen_kwargs={"love_r1_preset": "egoschema"})]
    with pytest.raises(ConfigError, match="egoschema"):
        model.generate_until(requests)
    assert model.backend.calls == []


def test_loglikelihood_and_multi_round_are_not_supported():
    model = make_model()
    with pytest.raises(NotImplementedError, match="generation-only.*love_r1_videomme"):
        model.loglikelihood([])
    with pytest.raises(NotImplementedError, match="generation-only.*love_r1_needle"):
        model.generate_until_multi_round([])


# --------------------------------------------------------------------------- model_args


@pytest.fixture
def loads(monkeypatch):
    """Records load_backend calls and hands back a scripted backend instead of a model."""
    calls = []

    def fake_load_backend(name, model, **kwargs):
        calls.append({"name": name, "model": model, **kwargs})
        return ScriptedBackend([ANSWER_B])

    monkeypatch.setattr(model_module, "load_backend", fake_load_backend)
    return calls


def test_unknown_model_args_fail_with_the_valid_keys(loads):
    with pytest.raises(ConfigError) as error:
        LoveR1Simple.create_from_arg_string("pretrained=tiny,num_frames=8,fps=2")
    message = str(error.value)
    assert "num_frames" in message and "fps" in message  # what was wrong
    assert all(key in message for key in ("num_fast", "slow_res", "save_trace", "preset"))  # what is valid
    assert loads == []  # failed before loading anything


@pytest.mark.parametrize(
    ("model_args", "match"),
    [
        ("num_fast=0", "num_fast"),
        ("max_rounds=-1", "max_rounds"),
        ("mode=fast", "mode"),
        ("backend=torch", "backend"),
        ("preset=egoschema", "egoschema"),
        ("batch_size=4", "batch_size"),
        ("save_trace=maybe", "save_trace"),
        ("font_path=/no/such/font.ttf", "font_path"),
    ],
)
def test_invalid_model_args_fail_at_start_up(loads, model_args, match):
    with pytest.raises(ConfigError, match=match):
        LoveR1Chat.create_from_arg_string(f"pretrained=tiny,{model_args}")
    assert loads == []


def test_lmms_eval_extra_arguments_are_accepted(loads):
    # what simple_evaluate passes besides --model_args (None values are dropped by lmms-eval)
    model = LoveR1Simple.create_from_arg_string(
        "pretrained=tiny,save_trace=false,num_fast=64", {"batch_size": "1", "device": "cpu"}
    )
    assert loads == [{"name": "hf", "model": "tiny", "device": "cpu"}]
    assert model.save_trace is False and model.preset_for({}).view.num_fast == 64
    assert set(model_arg_names()) >= {
        "pretrained",
        "mode",
        "device",
        "dtype",
        "attn_implementation",
        "backend",
        "preset",
        "num_fast",
        "fast_res",
        "num_slow",
        "slow_res",
        "max_rounds",
        "max_new_tokens",
        "font_path",
        "save_trace",
        "batch_size",
    }


def test_a_checkpoint_that_is_not_qwen2_5_vl_fails_at_start_up(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(CheckpointError, match="Qwen2.5-VL"):
        LoveR1Simple(pretrained=str(tmp_path), device="cpu")


# --------------------------------------------------------------------------- data parallel


class FakeAccelerator:
    """What ``accelerate launch --num_processes 2`` gives the second process."""

    def __init__(self, num_processes, process_index, device="cpu"):
        self.num_processes = num_processes
        self.process_index = self.local_process_index = process_index
        self.device = torch.device(device)
        self.is_local_main_process = process_index == 0


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_world_size_and_progress_bar_under_accelerate(monkeypatch, capsys, video, rank):
    monkeypatch.setattr(model_module, "make_accelerator", lambda: FakeAccelerator(2, rank))
    model = make_model(docs=[{"video": video}], device="cuda")
    assert (model.rank, model.world_size) == (rank, 2)
    assert model.device == torch.device(f"cuda:{rank}")  # one GPU per local rank
    model.generate_until([simple_request(0)])
    shown = "Model Responding" in capsys.readouterr().err
    assert shown is (rank == 0)  # only rank 0 draws the progress bar


def test_single_process_uses_the_accelerator_device(monkeypatch):
    monkeypatch.setattr(model_module, "make_accelerator", lambda: FakeAccelerator(1, 0, device="cpu"))
    model = make_model()
    assert (model.rank, model.world_size, model.device) == (0, 1, torch.device("cpu"))


@pytest.mark.parametrize(
    ("requested", "num_processes", "local_rank", "default", "expected"),
    [
        (None, 1, 0, "cuda:0", "cuda:0"),  # the accelerator's device
        ("cpu", 1, 0, "cuda:0", "cpu"),  # an explicit choice
        ("cuda", 2, 1, "cuda:1", "cuda:1"),  # each rank on its own GPU
        ("cuda:0", 4, 3, "cuda:3", "cuda:3"),  # ...even when one index was asked for all
        ("cpu", 2, 1, "cpu", "cpu"),  # accelerate launch --cpu
    ],
)
def test_resolve_device(requested, num_processes, local_rank, default, expected):
    assert resolve_device(requested, num_processes=num_processes, local_rank=local_rank, default=default) == expected
