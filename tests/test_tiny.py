"""The tiny Qwen2.5-VL checkpoint: official token ids, loadable offline, cached atomically."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lover1_plugin import tiny
from lover1_plugin.tiny import TINY_MODEL, build_tiny_model, default_tiny_path, resolve_model_path

# The official Qwen2.5-VL tokenizer's added tokens and ids.
OFFICIAL_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647,
    "<|box_start|>": 151648,
    "<|box_end|>": 151649,
    "<|quad_start|>": 151650,
    "<|quad_end|>": 151651,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}


@pytest.fixture(scope="module")
def processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path, local_files_only=True)


def test_special_tokens_have_the_official_ids(processor):
    tokenizer = processor.tokenizer
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in OFFICIAL_IDS} == OFFICIAL_IDS
    assert len(tokenizer) == 151665
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert processor.video_token_id == 151656 and processor.image_token_id == 151655


def test_text_tokenises_like_qwen(processor):
    # ids of Qwen2's real vocabulary (e.g. "system" 8948, "\n" 198, "You are a helpful assistant." ...)
    ids = processor.tokenizer("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n").input_ids
    assert ids == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]
    assert processor.tokenizer.decode([9707, 1879, 151645]) == "Hello world<|im_end|>"
    assert processor.tokenizer.decode([9707, 1879, 151645], skip_special_tokens=True) == "Hello world"


def test_loads_with_the_auto_classes(tiny_model_path):
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLForConditionalGeneration

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_path, local_files_only=True)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    config = model.config
    assert config.model_type == "qwen2_5_vl"
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (64, 2)
    assert (config.text_config.num_attention_heads, config.text_config.num_key_value_heads) == (4, 2)
    assert config.text_config.rope_parameters["mrope_section"] == [2, 3, 3]
    assert (config.vision_config.depth, config.vision_config.out_hidden_size) == (2, 64)
    assert config.vision_config.tokens_per_second == 2  # as in the real 7B config
    assert 9_000_000 < sum(p.numel() for p in model.parameters()) < 11_000_000
    # the checkpoint carries Qwen2.5-VL's sampling defaults on purpose (backends must override them)
    assert model.generation_config.do_sample is True and model.generation_config.repetition_penalty == 1.05


@pytest.mark.slow
def test_loads_in_a_fresh_offline_process(tiny_model_path):
    code = (
        "import sys\n"
        "from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration\n"
        "m = Qwen2_5_VLForConditionalGeneration.from_pretrained(sys.argv[1])\n"
        "p = AutoProcessor.from_pretrained(sys.argv[1])\n"
        "print(type(p).__name__, type(p.video_processor).__name__, type(p.image_processor).__name__)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny_model_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor", "Qwen2VLImageProcessor"]


def test_chat_template_renders_qwen2_5_vl_format(processor):
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": "SYS"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Full video [0, 600]:"},
                {"type": "video"},
                {"type": "text", "text": "Subset zoom-in video clip [100, 130]:"},
                {"type": "video"},
                {"type": "text", "text": "Q?\nBased on"},
            ],
        },
    ]
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nSYS<|im_end|>\n"
        "<|im_start|>user\nFull video [0, 600]:<|vision_start|><|video_pad|><|vision_end|>"
        "Subset zoom-in video clip [100, 130]:<|vision_start|><|video_pad|><|vision_end|>Q?\nBased on<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_default_system_prompt_and_string_content(processor):
    text = processor.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], tokenize=False
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    )
    image_text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "x"}]}],
        tokenize=False,
        add_vision_id=True,
    )
    assert "Picture 1: <|vision_start|><|image_pad|><|vision_end|>Video 1: <|vision_start|>" in image_text


def test_cached_build_is_reused_and_force_rebuilds(tmp_path):
    target = tmp_path / "tiny"
    first = build_tiny_model(target)
    weights = first / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert build_tiny_model(target) == first
    assert weights.stat().st_mtime_ns == stamp  # not rebuilt
    build_tiny_model(target, force=True)
    assert weights.stat().st_mtime_ns != stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    from safetensors.torch import load_file

    a = load_file(build_tiny_model(tmp_path / "a", seed=0) / "model.safetensors")
    b = load_file(build_tiny_model(tmp_path / "b", seed=0) / "model.safetensors")
    c = load_file(build_tiny_model(tmp_path / "c", seed=1) / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"  # transformers saves the original Qwen2.5-VL key layout
    assert torch.equal(a[name], b[name])
    assert not torch.equal(a[name], c[name])


def test_incomplete_or_stale_directory_is_replaced(tmp_path):
    target = tmp_path / "tiny"
    target.mkdir()
    (target / "config.json").write_text("{}")  # a half-written build from a killed process
    build_tiny_model(target)
    assert json.loads((target / "lover1_tiny.json").read_text())["version"] == tiny.TINY_FORMAT_VERSION
    assert (target / "model.safetensors").is_file()


def test_losing_the_publish_race_keeps_the_winner(tmp_path):
    winner = build_tiny_model(tmp_path / "tiny")
    loser = tmp_path / ".tiny.partial"
    loser.mkdir()
    (loser / "junk").write_text("x")
    tiny._publish(loser, winner, 0, force=False)  # the target is complete: no error, winner kept
    assert (winner / "model.safetensors").is_file() and not (winner / "junk").exists()


def _build_in(path: str) -> str:
    return str(build_tiny_model(Path(path)))


@pytest.mark.slow
def test_two_processes_building_at_once(tmp_path):
    target = tmp_path / "tiny"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build_in, [str(target), str(target)])
    assert results == [str(target), str(target)]
    assert tiny._is_complete(target, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_default_location_and_resolve(monkeypatch, tmp_path):
    monkeypatch.setenv("LOVER1_CACHE", str(tmp_path))
    assert default_tiny_path() == tmp_path / "tiny-qwen2_5-vl"
    assert default_tiny_path(seed=3) == tmp_path / "tiny-qwen2_5-vl-seed3"
    monkeypatch.delenv("LOVER1_CACHE")
    assert default_tiny_path() == Path.home() / ".cache" / "lover1_plugin" / "tiny-qwen2_5-vl"
    assert resolve_model_path("iSEE-Laboratory/love-r1-stage3") == "iSEE-Laboratory/love-r1-stage3"
    assert resolve_model_path("/some/dir") == "/some/dir"


def test_resolve_tiny_builds_under_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LOVER1_CACHE", str(tmp_path))
    path = resolve_model_path(TINY_MODEL)
    assert path == str(tmp_path / "tiny-qwen2_5-vl")
    assert (Path(path) / "config.json").is_file() and (Path(path) / "chat_template.jinja").is_file()
