"""SPEC 1: the processor keeps every view exactly as planned and knows its real rate."""

from __future__ import annotations

import pytest
import torch

from lover1_plugin.errors import ViewError
from lover1_plugin.inputs import (
    build_inputs,
    build_text_inputs,
    check_against_plans,
    count_video_entries,
    process_views,
    video_kwargs,
)
from lover1_plugin.positions import rope_position_ids
from lover1_plugin.views import View, ViewPlan

VIDEO_PAD = 151656
CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])


def make_view(kind, frames, fps, height, width, label=(0, 40), seed=0):
    plan = ViewPlan(
        source="video.mp4",
        kind=kind,
        frame_ids=tuple(range(0, 3 * frames, 3)),
        sample_fps=fps,
        height=height,
        width=width,
        label=label,
        video_fps=30.0,
    )
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (frames, 3, height, width), generator=generator).float()
    return View(plan, pixels)


def conversation(*clips, question="What happens?"):
    content = [{"type": "text", "text": "Full video [0, 40]:"}, {"type": "video"}]
    for start, end in clips:
        content += [{"type": "text", "text": f"Subset zoom-in video clip [{start}, {end}]:"}, {"type": "video"}]
    content.append({"type": "text", "text": question})
    return [
        {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
        {"role": "user", "content": content},
    ]


@pytest.fixture(scope="module")
def processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path, local_files_only=True)


def test_spec_40s_fast_view_grid_tokens_and_rate(processor):
    # SPEC 1 worked example: 40 s 720p at 30 fps -> 80 fast frames of 168x280, 2,400 tokens
    fast = make_view("fast", 80, 2.0, 168, 280)
    batch = build_inputs(processor, conversation(), [fast])
    assert batch["video_grid_thw"].tolist() == [[40, 12, 20]]
    assert batch["second_per_grid_ts"].tolist() == [1.0]
    assert int((batch["input_ids"] == VIDEO_PAD).sum()) == 2400 == fast.plan.visual_tokens


def test_small_fast_view_is_not_enlarged_to_the_class_minimum(processor):
    # 112x196 is far below the video processor's default minimum (128 * 28 * 28 pixels);
    # 64 frames here (not 768) keep the test fast: 32 * 4 * 7 = 896 tokens
    fast = make_view("fast", 64, 0.21, 112, 196)
    batch = build_inputs(processor, conversation(), [fast])
    assert batch["video_grid_thw"].tolist() == [[32, 8, 14]]
    assert int((batch["input_ids"] == VIDEO_PAD).sum()) == 896
    assert batch["second_per_grid_ts"][0].item() == pytest.approx(2 / 0.21, rel=1e-6)


@pytest.mark.slow
def test_spec_one_hour_fast_view_768_frames(processor):
    fast = make_view("fast", 768, 0.21, 112, 196)
    batch = build_inputs(processor, conversation(), [fast])
    assert batch["video_grid_thw"].tolist() == [[384, 8, 14]]
    assert int((batch["input_ids"] == VIDEO_PAD).sum()) == 10752


def test_pixels_reach_the_model_unresized(processor):
    fast = make_view("fast", 4, 2.0, 56, 84, seed=1)
    slow = make_view("slow", 3, 1.97, 84, 140, label=(10, 25), seed=2)
    batch = build_inputs(processor, conversation((10, 25)), [fast, slow])
    patches = batch["pixel_values_videos"]
    assert patches.shape == (2 * 4 * 6 + 2 * 6 * 10, 3 * 2 * 14 * 14)

    def normalised(pixels):  # (T, 3, h, w) -> what the vision tower should see
        return (pixels / 255.0 - CLIP_MEAN[:, None, None]) / CLIP_STD[:, None, None]

    # the first patch of the fast view: frames 0-1, rows 0-13, columns 0-13, (C, T, 14, 14)
    expected = normalised(fast.pixels[0:2, :, 0:14, 0:14]).permute(1, 0, 2, 3).reshape(-1)
    assert torch.allclose(patches[0], expected, atol=1e-5)
    # the first patch of the slow view; its odd frame count is padded by repeating the last frame
    first_slow = 2 * 4 * 6
    expected = normalised(slow.pixels[0:2, :, 0:14, 0:14]).permute(1, 0, 2, 3).reshape(-1)
    assert torch.allclose(patches[first_slow], expected, atol=1e-5)
    last_pair = torch.stack([slow.pixels[2], slow.pixels[2]])[:, :, 70:84, 126:140]
    assert torch.allclose(patches[-1], normalised(last_pair).permute(1, 0, 2, 3).reshape(-1), atol=1e-5)


def test_odd_frame_count_is_padded_and_views_are_left_untouched(processor):
    fast = make_view("fast", 5, 2.0, 56, 56)
    before = fast.pixels.clone()
    batch = build_inputs(processor, conversation(), [fast])
    assert batch["video_grid_thw"].tolist() == [[3, 4, 4]]  # ceil(5 / 2)
    assert int((batch["input_ids"] == VIDEO_PAD).sum()) == 12 == fast.plan.visual_tokens
    assert torch.equal(fast.pixels, before)  # views are cached and reused: never modified in place


def test_positions_are_the_spec_1b_ones(processor):
    fast = make_view("fast", 8, 0.5, 56, 84)
    slow = make_view("slow", 4, 1.0, 112, 56, label=(4, 8))
    batch = build_inputs(processor, conversation((4, 8)), [fast, slow])
    positions = batch["position_ids"]
    assert positions.shape == (3, 1, batch["input_ids"].shape[1])
    expected = rope_position_ids(batch["input_ids"][0], [[4, 4, 6], [2, 8, 4]], [4.0, 2.0])
    assert torch.equal(positions[:, 0], expected)
    # the fast view's last temporal step is 3 * 4 s * 2 positions/s = 24 after its start
    start = int((batch["input_ids"][0] == VIDEO_PAD).nonzero()[0])
    assert positions[0, 0, start + 23].item() == positions[0, 0, start].item() + 24


def test_assistant_prefix_and_completion_follow_the_generation_prompt(processor):
    fast = make_view("fast", 2, 2.0, 56, 56)
    tokenizer = processor.tokenizer
    plain = build_inputs(processor, conversation(), [fast])
    prefixed = build_inputs(processor, conversation(), [fast], assistant_prefix="I get the answer.\n\n")
    text = tokenizer.decode(prefixed["input_ids"][0])
    assert text.endswith("<|im_start|>assistant\nI get the answer.\n\n")
    assert prefixed["input_ids"].shape[1] == plain["input_ids"].shape[1] + 5  # "I get the answer.\n\n"
    trained = build_inputs(
        processor, conversation(), [fast], assistant_prefix="I get the answer.\n\n", completion="\\boxed{B}<|im_end|>"
    )
    assert tokenizer.decode(trained["input_ids"][0]).endswith("assistant\nI get the answer.\n\n\\boxed{B}<|im_end|>")
    assert trained["position_ids"].shape[-1] == trained["input_ids"].shape[1]


def test_without_generation_prompt(processor):
    batch = build_inputs(processor, conversation(), [make_view("fast", 2, 2.0, 56, 56)], add_generation_prompt=False)
    assert processor.tokenizer.decode(batch["input_ids"][0]).endswith("What happens?<|im_end|>\n")


def test_text_only_conversation(processor):
    batch = build_inputs(processor, [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], [])
    assert "pixel_values_videos" not in batch
    length = batch["input_ids"].shape[1]
    assert batch["position_ids"][:, 0].tolist() == [list(range(length))] * 3


def test_view_count_must_match_the_video_entries(processor):
    fast = make_view("fast", 2, 2.0, 56, 56)
    with pytest.raises(ViewError, match="2 video entries but 1 views"):
        build_inputs(processor, conversation((1, 5)), [fast])
    assert count_video_entries(conversation((1, 5), (6, 9))) == 3


class ResizingProcessor:
    """A processor that ignores our settings and resizes to its own defaults."""

    def __init__(self, processor):
        self._processor = processor

    def __getattr__(self, name):
        return getattr(self._processor, name)

    def __call__(self, **kwargs):
        kwargs.update(do_resize=True, size={"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28})
        return self._processor(**kwargs)


def test_a_processor_that_resizes_is_caught(processor):
    fast = make_view("fast", 2, 2.0, 56, 84)
    with pytest.raises(ViewError, match="differs from the planned"):
        build_inputs(ResizingProcessor(processor), conversation(), [fast])


def test_a_wrong_rate_is_caught(processor):
    fast = make_view("fast", 2, 2.0, 56, 56)
    batch = build_inputs(processor, conversation(), [fast])
    batch["second_per_grid_ts"] = torch.tensor([0.5])  # as if the processor had assumed 4 fps
    with pytest.raises(ViewError, match="second_per_grid_ts"):
        check_against_plans(batch, [fast], video_token_id=VIDEO_PAD)


def test_video_kwargs_bracket_the_view_sizes():
    views = [make_view("fast", 2, 2.0, 112, 196), make_view("slow", 2, 1.0, 476, 840)]
    kwargs = video_kwargs(views)
    assert kwargs["size"] == {"shortest_edge": 112 * 196, "longest_edge": 476 * 840}
    assert kwargs["video_metadata"] == [{"fps": 2.0, "total_num_frames": 2}, {"fps": 1.0, "total_num_frames": 2}]
    assert kwargs["do_sample_frames"] is False and kwargs["cap_pixels_per_frame"] is False
    assert video_kwargs([]) == {}


def test_a_wrong_token_count_is_caught(processor):
    fast = make_view("fast", 2, 2.0, 56, 56)
    batch = build_inputs(processor, conversation(), [fast])
    batch["input_ids"] = torch.cat([batch["input_ids"], torch.tensor([[VIDEO_PAD]])], dim=1)
    with pytest.raises(ViewError, match="5 video tokens, the view plans need 4"):
        check_against_plans(batch, [fast], video_token_id=VIDEO_PAD)


def test_image_entries_are_rejected(processor):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    with pytest.raises(ViewError, match="image entries"):
        build_inputs(processor, messages, [])
    with pytest.raises(ViewError, match="image entries"):
        build_text_inputs(processor, messages, [])


@pytest.mark.parametrize("prefix", [None, "I get the answer.\n\n"])
def test_text_inputs_equal_the_processor_inputs_without_pixels(processor, prefix):
    # the HF backend builds cached rounds this way: every field must match the processor path
    fast = make_view("fast", 9, 0.21, 56, 84)  # odd frame count, a rate with a float32 tail
    slows = [make_view("slow", 4, 1.97, 84, 140, (10, 25), 3), make_view("slow", 3, 0.5, 56, 56, (30, 36), 4)]
    messages = conversation((10, 25), (30, 36))
    full = build_inputs(processor, messages, [fast, *slows], assistant_prefix=prefix)
    text = build_text_inputs(processor, messages, [fast, *slows], assistant_prefix=prefix)
    assert set(full.keys()) - set(text.keys()) == {"pixel_values_videos"}
    for key in text.keys():
        assert text[key].dtype == full[key].dtype, key
        assert torch.equal(text[key], full[key]), key


def test_process_views_gives_the_processor_pixel_rows(processor):
    fast = make_view("fast", 9, 0.21, 56, 84)
    slow = make_view("slow", 4, 1.97, 84, 140, (10, 25), 3)
    full = build_inputs(processor, conversation((10, 25)), [fast, slow])
    only_slow = process_views(processor, [slow])
    fast_rows = 5 * 4 * 6  # grid (5, 4, 6) patches
    assert only_slow["video_grid_thw"].tolist() == [[2, 6, 10]]
    assert torch.equal(only_slow["pixel_values_videos"], full["pixel_values_videos"][fast_rows:])
