"""HFBackend on the tiny model: SPEC 1b positions reach the model, SPEC 3 greedy decoding, cache reuse."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from lover1_plugin.backends import Backend, load_backend
from lover1_plugin.backends.hf import HFBackend
from lover1_plugin.errors import CheckpointError, ConfigError, GenerationOOMError
from lover1_plugin.views import View, ViewPlan

PREFIX = "I get the answer.\n\n"
NEW_TOKENS = 6  # keep the tests fast: a few tokens show whether two runs agree


def make_view(kind, frames, fps, height, width, label, seed):
    plan = ViewPlan("video.mp4", kind, tuple(range(frames)), fps, height, width, label, 30.0)
    generator = torch.Generator().manual_seed(seed)
    return View(plan, torch.randint(0, 256, (frames, 3, height, width), generator=generator).float())


FAST = make_view("fast", 8, 0.5, 56, 84, (0, 16), seed=0)
SLOWS = [make_view("slow", 4, 1.0, 56, 56, (4 * i, 4 * i + 4), seed=i + 1) for i in range(3)]


def conversation(question, slows=()):
    content = [{"type": "text", "text": "Full video [0, 16]:"}, {"type": "video"}]
    for view in slows:
        start, end = view.plan.label
        content += [{"type": "text", "text": f"Subset zoom-in video clip [{start}, {end}]:"}, {"type": "video"}]
    content.append({"type": "text", "text": question + "\nBased on the video and the user question, ..."})
    return [
        {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
        {"role": "user", "content": content},
    ]


def rounds(question, slows):
    """A 3-round question: overview, one zoom, forced answer over two other zooms."""
    return [
        (conversation(question), [FAST], None),
        (conversation(question, slows[:1]), [FAST, slows[0]], None),
        (conversation(question, slows[1:]), [FAST, *slows[1:]], PREFIX),
    ]


@pytest.fixture()
def backend_pair(tiny_backend):
    """A fresh reuse=False and reuse=True backend sharing the session's tiny model."""
    plain = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=False)
    reusing = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=True)
    return plain, reusing


class PositionRecorder:
    """Records the position_ids (and sequence length) of every language-model forward."""

    def __init__(self, model):
        self.calls = []
        self._handle = model.model.language_model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.calls.append(kwargs["position_ids"].detach().clone())

    def close(self):
        self._handle.remove()


def assert_positions_reached_the_model(calls, expected):
    """Prompt chunks together are ``expected``; each decode step is the last position + 1."""
    length = expected.shape[-1]
    seen, index = [], 0
    while sum(c.shape[-1] for c in seen) < length:
        seen.append(calls[index])
        index += 1
    assert torch.equal(torch.cat(seen, dim=-1), expected)
    last = int(expected[0, 0, -1])
    for step, call in enumerate(calls[index:], start=1):
        assert call.shape == (3, 1, 1)
        assert call.flatten().tolist() == [last + step] * 3
    return index


def test_from_pretrained_tiny_cpu_defaults(tiny_backend):
    assert isinstance(tiny_backend, Backend)
    assert tiny_backend.device.type == "cpu"
    assert tiny_backend.model.dtype == torch.float32
    assert tiny_backend.model.config._attn_implementation == "sdpa"
    assert not tiny_backend.model.training


def test_load_backend_builds_hf_and_rejects_others():
    backend = load_backend("hf", model="tiny", device="cpu", reuse=False)
    assert isinstance(backend, HFBackend) and backend.reuse is False
    with pytest.raises(ConfigError, match=r"lover1-plugin\[vllm\]"):  # vLLM is a GPU-only extra, absent here
        load_backend("vllm", model="tiny")
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        load_backend("nope")
    with pytest.raises(ConfigError, match="ScriptedBackend"):
        load_backend("scripted")


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "llama", "hidden_size": 64},
        {"model_type": "llama", "hidden_size": 8},  # invalid for transformers' llama config class too
    ],
)
def test_non_qwen2_5_vl_checkpoint_is_rejected_before_loading_weights(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    # no weights in the directory: the model type check must come first
    with pytest.raises(CheckpointError, match="'llama' model; LOVE-R1 needs a Qwen2.5-VL") as info:
        HFBackend.from_pretrained(str(tmp_path))
    assert "\n" not in str(info.value)


def test_qwen2_5_vl_config_without_weights_is_a_checkpoint_error(tmp_path, tiny_model_path):
    (tmp_path / "config.json").write_text((tiny_model_path / "config.json").read_text())
    with pytest.raises(CheckpointError, match="cannot load the Qwen2.5-VL checkpoint"):
        HFBackend.from_pretrained(str(tmp_path))


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read a model config"):
        HFBackend.from_pretrained(str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match="cannot read a model config .*no config.json"):
        HFBackend.from_pretrained(str(tmp_path))  # a directory without config.json


@pytest.mark.parametrize("reuse", [False, True])
def test_spec_positions_reach_the_language_model_in_prefill_and_decode(tiny_backend, reuse):
    backend = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=reuse)
    messages, views = conversation("What is shown?", SLOWS[:1]), [FAST, SLOWS[0]]
    expected = backend.build_inputs(messages, views)["position_ids"]
    recorder = PositionRecorder(backend.model)
    try:
        backend.generate(messages, views, max_new_tokens=4)
    finally:
        recorder.close()
    prompt_chunks = assert_positions_reached_the_model(recorder.calls, expected)
    assert prompt_chunks == (2 if reuse else 1)  # reuse: the prefix, then the rest of the prompt
    assert len(recorder.calls) - prompt_chunks <= 3  # 4 new tokens: 3 decode steps after the prompt


def test_positions_after_a_cached_prefix_continue_from_it(tiny_backend):
    backend = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=True)
    backend.generate(conversation("What is shown?"), [FAST], max_new_tokens=1)  # stores the fast-view prefix
    messages, views = conversation("What is shown?", SLOWS[:1]), [FAST, SLOWS[0]]
    cached = prefix_length(backend, conversation("What is shown?"), [FAST])
    expected = backend.build_inputs(messages, views)["position_ids"][..., cached:]
    recorder = PositionRecorder(backend.model)
    try:
        backend.generate(messages, views, max_new_tokens=4)
    finally:
        recorder.close()
    # the clip (stored as the next prefix), then the question text: SPEC 1b ids from where the cache ends
    assert assert_positions_reached_the_model(recorder.calls, expected) == 2
    assert backend.stats.cached_tokens == cached


def test_transformers_own_positions_disagree_and_we_warn_once(tiny_backend, caplog):
    backend = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=False)
    with caplog.at_level(logging.WARNING, logger="lover1_plugin.backends.hf"):
        backend.generate(conversation("a?"), [FAST], max_new_tokens=1)
        backend.generate(conversation("b?"), [FAST], max_new_tokens=1)
    warnings = [r for r in caplog.records if "3-D RoPE positions" in r.getMessage()]
    assert len(warnings) == 1


def manual_greedy(model, inputs, steps, eos_ids):
    """Greedy decoding by hand: full forward each step, argmax, SPEC positions extended by one."""
    ids, positions = inputs["input_ids"], inputs["position_ids"]
    for _ in range(steps):
        with torch.no_grad():
            logits = model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                position_ids=positions,
                pixel_values_videos=inputs["pixel_values_videos"],
                video_grid_thw=inputs["video_grid_thw"],
                use_cache=False,
            ).logits[0, -1]
        token = int(logits.argmax())
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        positions = torch.cat([positions, positions[..., -1:] + 1], dim=-1)
        if token in eos_ids:
            break
    return ids[0, inputs["input_ids"].shape[1] :]


def test_greedy_ignores_the_checkpoint_sampling_defaults(tiny_backend, monkeypatch):
    # Make the checkpoint's defaults loud: if any leaked in, the output would not be greedy.
    config = tiny_backend.model.generation_config
    monkeypatch.setattr(config, "repetition_penalty", 0.01)  # < 1 pushes the output towards prompt tokens
    monkeypatch.setattr(config, "temperature", 5.0)
    monkeypatch.setattr(config, "top_k", 1000)
    monkeypatch.setattr(config, "top_p", 1.0)
    monkeypatch.setattr(config, "no_repeat_ngram_size", 1)
    backend = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=False)
    messages, views = conversation("Why?", SLOWS[:1]), [FAST, SLOWS[0]]
    text = backend.generate(messages, views, max_new_tokens=5)
    expected = manual_greedy(backend.model, backend.build_inputs(messages, views), 5, {151645, 151643})
    assert text == backend.processor.tokenizer.decode(expected)


def test_assistant_prefix_is_in_the_prompt_not_in_the_reply(tiny_backend, monkeypatch):
    backend = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=False)
    prompts = []
    original = backend.model.generate

    def spy(**kwargs):
        prompts.append(kwargs["input_ids"])
        return original(**kwargs)

    monkeypatch.setattr(backend.model, "generate", spy)
    text = backend.generate(conversation("Why?"), [FAST], assistant_prefix=PREFIX, max_new_tokens=3)
    decoded = backend.processor.tokenizer.decode(prompts[0][0])
    assert decoded.endswith("<|im_start|>assistant\n" + PREFIX)
    assert not text.startswith(PREFIX)
    assert backend.stats.generated_tokens <= 3


def test_special_tokens_kept_unless_skipped(tiny_backend, monkeypatch):
    backend = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=False)

    def fake_generate(**kwargs):  # "Hello" then <|im_end|>
        return torch.cat([kwargs["input_ids"], torch.tensor([[9707, 151645]])], dim=1)

    monkeypatch.setattr(backend.model, "generate", fake_generate)
    assert backend.generate(conversation("q"), [FAST]) == "Hello<|im_end|>"
    assert backend.generate(conversation("q"), [FAST], skip_special_tokens=True) == "Hello"


def test_out_of_memory_names_the_visual_tokens_and_the_fix(tiny_backend, monkeypatch):
    backend = HFBackend(tiny_backend.model, tiny_backend.processor, reuse=True)

    def out_of_memory(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(backend.model, "generate", out_of_memory)
    views = [FAST, SLOWS[0]]
    with pytest.raises(GenerationOOMError, match="num_fast / fast_res") as info:
        backend.generate(conversation("q", SLOWS[:1]), views)
    assert info.value.visual_tokens == FAST.plan.visual_tokens + SLOWS[0].plan.visual_tokens == 24 + 8
    assert f"{info.value.visual_tokens} visual tokens" in str(info.value)


def test_max_new_tokens_must_be_positive(tiny_backend):
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_backend.generate(conversation("q"), [FAST], max_new_tokens=0)


def run_questions(backend, questions):
    return [
        [backend.generate(m, v, assistant_prefix=p, max_new_tokens=NEW_TOKENS) for m, v, p in rounds(q, slows)]
        for q, slows in questions
    ]


def test_reuse_is_token_identical_over_rounds_and_questions(backend_pair):
    plain, reusing = backend_pair
    # two questions on one video; the second reuses one zoom clip of the first
    questions = [("What is shown?", SLOWS), ("Where is the ball?", [SLOWS[2], SLOWS[0], SLOWS[1]])]
    expected = run_questions(plain, questions)
    assert run_questions(reusing, questions) == expected
    assert len({text for texts in expected for text in texts}) > 1  # the model's replies depend on the input

    stats = reusing.stats
    assert stats.generate_calls == plain.stats.generate_calls == 6
    # every prompt token is either prefilled or served from the prefix cache
    assert stats.prefill_tokens + stats.cached_tokens == plain.stats.prefill_tokens
    fast_prefix = prefix_length(reusing, conversation("x"), [FAST])
    clip_prefix = prefix_length(reusing, conversation("x", SLOWS[:1]), [FAST, SLOWS[0]])
    # the fast-view prefix serves the 4 later rounds that start with a new clip; the second
    # question's last round starts with SLOWS[0], whose prefix the first question stored
    assert stats.cached_tokens == 4 * fast_prefix + clip_prefix
    assert stats.vision_encodes == 4  # the fast view and three clips, each encoded once
    assert stats.vision_cache_hits == 2  # SLOWS[2] and SLOWS[1] in the second question
    assert plain.stats.vision_encodes == 2 * (1 + 2 + 3)


def prefix_length(backend, messages, views):
    """Tokens of the conversation up to and including the last view's ``<|vision_end|>``."""
    ids = backend.build_inputs(messages, views)["input_ids"][0]
    return int((ids == backend.model.config.vision_end_token_id).nonzero().max()) + 1


def test_zoom_clips_kept_in_place_come_from_the_prefix_cache(backend_pair):
    """The loop's third round keeps round 2's clip first: only the new clip and the text are prefilled."""
    plain, reusing = backend_pair
    loop_rounds = [
        (conversation("q"), [FAST], None),
        (conversation("q", SLOWS[:1]), [FAST, SLOWS[0]], None),
        (conversation("q", SLOWS[:2]), [FAST, *SLOWS[:2]], PREFIX),
    ]
    for messages, views, prefix in loop_rounds:
        before = reusing.stats.as_dict()
        text = reusing.generate(messages, views, assistant_prefix=prefix, max_new_tokens=NEW_TOKENS)
        assert text == plain.generate(messages, views, assistant_prefix=prefix, max_new_tokens=NEW_TOKENS)
    length = reusing.build_inputs(*loop_rounds[2][:2], assistant_prefix=PREFIX)["input_ids"].shape[1]
    cached = reusing.stats.cached_tokens - before["cached_tokens"]
    assert cached == prefix_length(reusing, *loop_rounds[1][:2])  # system, fast view and the first clip
    assert reusing.stats.prefill_tokens - before["prefill_tokens"] == length - cached
    assert reusing.stats.vision_encodes == 3  # each view once over the three rounds


def test_reused_prefix_is_not_extended_in_place(backend_pair):
    _, reusing = backend_pair
    messages, views = conversation("Same round twice", SLOWS[:1]), [FAST, SLOWS[0]]
    first = reusing.generate(messages, views, max_new_tokens=NEW_TOKENS)
    second = reusing.generate(messages, views, max_new_tokens=NEW_TOKENS)
    assert second == first
    assert reusing.stats.cached_tokens > 0


def test_same_plan_with_other_pixels_is_not_served_stale(backend_pair):
    plain, reusing = backend_pair
    messages = conversation("q")
    reusing.generate(messages, [FAST], max_new_tokens=NEW_TOKENS)
    repainted = View(FAST.plan, 255.0 - FAST.pixels)  # e.g. timestamps drawn with another font
    assert reusing.generate(messages, [repainted], max_new_tokens=NEW_TOKENS) == plain.generate(
        messages, [repainted], max_new_tokens=NEW_TOKENS
    )
    assert reusing.stats.vision_encodes == 2 and reusing.stats.cached_tokens == 0


def test_clear_caches_forgets_everything(backend_pair):
    _, reusing = backend_pair
    reusing.generate(conversation("q"), [FAST], max_new_tokens=1)
    reusing.clear_caches()
    reusing.generate(conversation("q"), [FAST], max_new_tokens=1)
    assert reusing.stats.vision_encodes == 2 and reusing.stats.cached_tokens == 0
    reusing.stats.reset()
    assert reusing.stats.as_dict() == dict.fromkeys(reusing.stats.as_dict(), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_defaults_bf16(tiny_model_path):
    backend = HFBackend.from_pretrained(str(tiny_model_path))
    assert backend.device.type == "cuda" and backend.model.dtype == torch.bfloat16
    assert backend.model.config._attn_implementation in ("flash_attention_2", "sdpa")
    assert isinstance(backend.generate(conversation("q"), [FAST], max_new_tokens=2), str)


def test_prefix_cache_size_zero_keeps_vision_reuse_only(backend_pair):
    plain, _ = backend_pair
    no_prefix = HFBackend(plain.model, plain.processor, reuse=True, prefix_cache_size=0)
    questions = [("What is shown?", SLOWS)]
    assert run_questions(no_prefix, questions) == run_questions(plain, questions)
    assert no_prefix.stats.cached_tokens == 0 and len(no_prefix._prefix_cache) == 0
    assert no_prefix.stats.prefill_tokens == plain.stats.prefill_tokens
    assert no_prefix.stats.vision_encodes == 4 < plain.stats.vision_encodes
