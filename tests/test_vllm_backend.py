"""The vLLM backend without vLLM: the install hint, and what it hands a (fake) vLLM engine.

vLLM needs a GPU and is not installed here, so a small fake ``vllm`` module stands in
for it. The fake expands each ``<|video_pad|>`` the way a non-resizing Qwen2.5-VL
processor would (``ceil(T / 2) * (H / 28) * (W / 28)`` tokens) and replies with scripted
token ids, which is enough to check the prompt text, the video items and their rates,
the greedy sampling settings and the decoding of the reply.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import torch

from lover1_plugin.backends import vllm as vllm_backend
from lover1_plugin.backends.vllm import VLLMBackend, VLLMUnavailableError, build_request, mm_processor_kwargs
from lover1_plugin.errors import BackendError, CheckpointError, ConfigError, Lover1Error, ViewError
from lover1_plugin.inputs import render_text
from lover1_plugin.prompts import ANSWER_PREFIX, VIDEO_PLACEHOLDER, build_conversation
from lover1_plugin.views import View, ViewPlan

VIDEO_PAD = 151656
IM_END = 151645


def make_view(kind, frames, fps, height, width, label, seed):
    plan = ViewPlan("video.mp4", kind, tuple(range(frames)), fps, height, width, label, 30.0)
    generator = torch.Generator().manual_seed(seed)
    return View(plan, torch.randint(0, 256, (frames, 3, height, width), generator=generator).float())


FAST = make_view("fast", 4, 0.5, 28, 56, (0, 16), seed=0)
SLOW = make_view("slow", 3, 1.07, 56, 56, (4, 10), seed=1)  # odd frame count: padded to 2 grid steps


class FakeLLM:
    """Records the engine arguments and requests; answers with scripted token ids."""

    instances: list[FakeLLM] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.requests = []
        self.reply_ids: list[int] = []
        self.cached_tokens = 0
        self.resizes = False  # True: behave like a processor that enlarged every frame
        self.error: Exception | None = None
        self.tokenizer = None
        FakeLLM.instances.append(self)

    def generate(self, requests, params, use_tqdm=True):
        if self.error is not None:
            raise self.error
        # vLLM caches HF processors keyed by the processor kwargs: they must hash
        hash(
            tuple(
                sorted(
                    (k, tuple(v) if isinstance(v, list) else v)
                    for k, v in requests[0].get("mm_processor_kwargs", {}).items()
                )
            )
        )
        self.requests.append((requests, params))
        request = requests[0]
        ids = self.tokenizer(request["prompt"])["input_ids"]
        videos = iter(request.get("multi_modal_data", {}).get("video", []))
        expanded = []
        for token in ids:
            if token != VIDEO_PAD:
                expanded.append(token)
                continue
            frames, _meta = next(videos)
            t, h, w = frames.shape[:3]
            scale = 2 if self.resizes else 1
            expanded += [VIDEO_PAD] * (math.ceil(t / 2) * (h * scale // 28) * (w * scale // 28))
        completion = SimpleNamespace(token_ids=tuple(self.reply_ids), text="(vLLM's own text is not used)")
        return [SimpleNamespace(prompt_token_ids=expanded, outputs=[completion], num_cached_tokens=self.cached_tokens)]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@dataclasses.dataclass
class FakeEngineArgs:
    model: str = ""
    mm_processor_cache_gb: float = 4.0


@pytest.fixture(scope="module")
def tiny_processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(tiny_model_path))


@pytest.fixture()
def fake_vllm(monkeypatch, tiny_processor):
    import transformers

    # loading the 151k-token tokenizer takes seconds: hand every test the one loaded processor
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *args, **kwargs: tiny_processor)
    module = ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    module.EngineArgs = FakeEngineArgs
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(vllm_backend, "_warned_positions", False)
    FakeLLM.instances.clear()
    return module


@pytest.fixture()
def backend(fake_vllm, tiny_model_path):
    loaded = VLLMBackend.from_pretrained(str(tiny_model_path))
    loaded.llm.tokenizer = loaded.processor.tokenizer
    return loaded


def test_missing_vllm_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(VLLMUnavailableError) as caught:
        VLLMBackend.from_pretrained("tiny")
    assert 'pip install "lover1-plugin[vllm]"' in str(caught.value)
    assert "GPU" in str(caught.value)
    # catchable both as an import problem and as a configuration error of ours
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, Lover1Error)


def test_engine_arguments(fake_vllm, tiny_model_path, caplog):
    with caplog.at_level(logging.WARNING, logger="lover1_plugin.backends.vllm"):
        VLLMBackend.from_pretrained(str(tiny_model_path), tensor_parallel_size=2, max_model_len=4096, seed=7)
        VLLMBackend.from_pretrained(str(tiny_model_path))
    kwargs = FakeLLM.instances[0].kwargs
    assert kwargs["model"] == str(tiny_model_path)
    assert kwargs["tensor_parallel_size"] == 2
    assert kwargs["max_model_len"] == 4096
    assert kwargs["enable_prefix_caching"] is True
    assert kwargs["gpu_memory_utilization"] == 0.9
    assert kwargs["limit_mm_per_prompt"] == {"image": 0, "video": 4}
    assert kwargs["mm_processor_cache_gb"] == 0  # partial cache hits would mismatch the per-request rate lists
    assert kwargs["seed"] == 7  # other engine arguments pass through
    # the positions caveat is logged once per process, not per engine
    warnings = [r for r in caplog.records if "RoPE positions" in r.getMessage()]
    assert len(warnings) == 1


def test_non_qwen_checkpoint_is_refused_before_starting_vllm(fake_vllm, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(CheckpointError, match="Qwen2.5-VL"):
        VLLMBackend.from_pretrained(str(tmp_path))
    assert FakeLLM.instances == []


def test_prompt_videos_and_rates(backend):
    conversation = build_conversation(16, "What happens?", [SLOW.plan.label])
    prefix_ids = backend.processor.tokenizer("I get the answer.")["input_ids"]
    backend.llm.reply_ids = [*prefix_ids, IM_END]
    text = backend.generate(conversation, [FAST, SLOW], assistant_prefix=ANSWER_PREFIX, max_new_tokens=9)
    ((requests, params),) = backend.llm.requests
    request = requests[0]
    # the chat template of the checkpoint, the prefix appended verbatim, one placeholder per view
    assert request["prompt"] == render_text(backend.processor, conversation) + ANSWER_PREFIX
    assert request["prompt"].endswith("<|im_start|>assistant\n" + ANSWER_PREFIX)
    assert request["prompt"].count(VIDEO_PLACEHOLDER) == 2
    # the rendered views themselves, uint8 (T, H, W, 3), with their own rates
    (fast_frames, fast_meta), (slow_frames, slow_meta) = request["multi_modal_data"]["video"]
    assert fast_frames.dtype == np.uint8 and fast_frames.shape == (4, 28, 56, 3)
    assert np.array_equal(fast_frames, FAST.pixels.permute(0, 2, 3, 1).numpy().astype(np.uint8))
    assert slow_frames.shape == (3, 56, 56, 3)
    assert (fast_meta["fps"], fast_meta["total_num_frames"]) == (0.5, 4)
    assert (slow_meta["fps"], slow_meta["total_num_frames"]) == (1.07, 3)
    assert slow_meta["frames_indices"] == [0, 1, 2]
    kwargs = request["mm_processor_kwargs"]
    assert kwargs["do_sample_frames"] is False and kwargs["do_resize"] is False
    assert [m["fps"] for m in kwargs["video_metadata"]] == [0.5, 1.07]  # transformers 5.x
    # greedy, the checkpoint's stop tokens, special tokens skipped as asked
    sampling = params.kwargs
    assert sampling["temperature"] == 0.0 and sampling["repetition_penalty"] == 1.0
    assert sampling["max_tokens"] == 9
    assert sampling["stop_token_ids"] == [151645, 151643]
    assert sampling["skip_special_tokens"] is False
    # the reply is decoded by the checkpoint's tokenizer, as the HF backend does
    assert text == "I get the answer.<|im_end|>"


def test_skip_special_tokens_per_call(backend):
    backend.llm.reply_ids = [*backend.processor.tokenizer("\\boxed{B}")["input_ids"], IM_END]
    conversation = build_conversation(16, "Q?")
    text = backend.generate(conversation, [FAST], skip_special_tokens=True, max_new_tokens=4)
    assert text == "\\boxed{B}"
    assert backend.llm.requests[-1][1].kwargs["skip_special_tokens"] is True


def test_rates_for_transformers_4():
    kwargs = mm_processor_kwargs([FAST, SLOW], transformers_major=4)
    assert kwargs["fps"] == [0.5, 1.07]
    assert "video_metadata" not in kwargs and "cap_pixels_per_frame" not in kwargs


def test_resizing_engine_is_caught(backend):
    backend.llm.resizes = True
    backend.llm.reply_ids = [IM_END]
    with pytest.raises(ViewError, match="resized or resampled"):
        backend.generate(build_conversation(16, "Q?"), [FAST])


def test_views_must_match_video_entries(backend):
    with pytest.raises(ViewError, match="2 views"):
        build_request(backend.processor, build_conversation(16, "Q?"), [FAST, SLOW], transformers_major=5)


def test_engine_errors_are_backend_errors(backend):
    backend.llm.error = ValueError("The decoder prompt (length 40000) is longer than the maximum model length")
    with pytest.raises(BackendError, match="visual tokens"):
        backend.generate(build_conversation(16, "Q?"), [FAST])


def test_stats_count_cached_prompt_tokens(backend):
    backend.llm.reply_ids = [IM_END]
    backend.llm.cached_tokens = 20
    backend.generate(build_conversation(16, "Q?"), [FAST])
    text_ids = backend.llm.tokenizer(backend.llm.requests[0][0][0]["prompt"])["input_ids"]
    prompt_tokens = len(text_ids) - 1 + FAST.plan.visual_tokens  # the placeholder expanded
    assert backend.stats.cached_tokens == 20
    assert backend.stats.prefill_tokens == prompt_tokens - 20
    assert backend.stats.generated_tokens == 1
