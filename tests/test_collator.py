"""The SFT collator: training inputs are the inference inputs plus labels on the reply only."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lover1_plugin.config import ViewConfig
from lover1_plugin.inputs import build_inputs
from lover1_plugin.prompts import ZOOM_PREFIX, build_conversation
from lover1_plugin.synthetic import make_test_video
from lover1_plugin.train.collator import (
    IGNORE_INDEX,
    VideoSFTCollator,
    record_to_row,
    sample_from_row,
    sample_to_row,
)
from lover1_plugin.train.samples import SampleSpec
from lover1_plugin.train.schema import SFTRecord
from lover1_plugin.video import ViewRenderer, plan_fast_view, plan_slow_view

# Small views keep the tests fast; the collator does not depend on the sizes.
SMALL = ViewConfig(num_fast=8, fast_res=4, num_slow=4, slow_res=8, short_video_s=120, factor_on_slow=False)
TARGET = "I get the answer.\n\nThe card says B.\n\n\\boxed{B}"


@pytest.fixture(scope="module")
def processor(tiny_model_path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return str(make_test_video(tmp_path_factory.mktemp("collator") / "clip.mp4", duration_s=20, fps=2, size=(96, 160)))


@pytest.fixture(scope="module")
def renderer():
    return ViewRenderer(max_cached_views=64)


def make_spec(video: str, renderer: ViewRenderer, clips=((4, 10),), target: str = TARGET, prefix=None) -> SampleSpec:
    info = renderer.probe(video)
    plans = [plan_fast_view(info, SMALL)] + [plan_slow_view(info, s, e, SMALL) for s, e in clips]
    messages = build_conversation(int(info.duration), "What does the card say?", [p.label for p in plans[1:]])
    return SampleSpec(video, messages, tuple(plans), target=target, assistant_prefix=prefix, where="test#0")


def trained_text(processor, batch, row: int = 0) -> str:
    labels = batch["labels"][row]
    return processor.tokenizer.decode(labels[labels != IGNORE_INDEX])


def test_assistant_loss_trains_exactly_the_reply_and_its_end_token(processor, video, renderer):
    batch = VideoSFTCollator(processor, renderer=renderer)([make_spec(video, renderer)])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    trained = (labels != IGNORE_INDEX).nonzero().flatten()
    # one contiguous block: the reply and <|im_end|>, then only the template's trailing newline
    assert trained.tolist() == list(range(int(trained[0]), int(trained[-1]) + 1))
    assert trained_text(processor, batch) == TARGET + "<|im_end|>"
    assert processor.tokenizer.decode(ids[int(trained[-1]) + 1 :]) == "\n"
    assert torch.equal(labels[trained], ids[trained])
    # the prompt right before the reply is the generation prompt
    assert processor.tokenizer.decode(ids[: int(trained[0])]).endswith("<|im_start|>assistant\n")


def test_all_text_loss_trains_everything_but_vision_tokens(processor, video, renderer):
    batch = VideoSFTCollator(processor, loss_on="all_text", renderer=renderer)([make_spec(video, renderer)])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    is_video = ids == processor.video_token_id
    assert is_video.sum() > 0
    assert (labels[is_video] == IGNORE_INDEX).all()
    assert torch.equal(labels[~is_video], ids[~is_video])  # system and user text included
    assert trained_text(processor, batch).startswith("<|im_start|>system\nYou are a helpful assistant.")


def test_forced_prefix_is_prompt_not_target(processor, video, renderer):
    spec = make_spec(video, renderer, clips=(), target="\\boxed{[3, 9]}", prefix=ZOOM_PREFIX)
    batch = VideoSFTCollator(processor, renderer=renderer)([spec])
    assert trained_text(processor, batch) == "\\boxed{[3, 9]}<|im_end|>"
    assert ZOOM_PREFIX.strip() in processor.tokenizer.decode(batch["input_ids"][0])


def test_vision_tensors_match_the_views(processor, video, renderer):
    spec = make_spec(video, renderer, clips=((2, 6), (10, 16)))
    batch = VideoSFTCollator(processor, renderer=renderer)([spec])
    plans = spec.views
    assert batch["video_grid_thw"].tolist() == [list(p.grid_thw) for p in plans]
    assert batch["pixel_values_videos"].shape[0] == sum(t * h * w for t, h, w in (p.grid_thw for p in plans))
    expected_seconds = torch.tensor([p.second_per_grid_t for p in plans], dtype=batch["second_per_grid_ts"].dtype)
    assert torch.allclose(batch["second_per_grid_ts"], expected_seconds)
    assert int((batch["input_ids"] == processor.video_token_id).sum()) == sum(p.visual_tokens for p in plans)
    assert batch["position_ids"].shape == (3, 1, batch["input_ids"].shape[1])


def test_training_prompt_equals_the_inference_prompt(processor, video, renderer):
    spec = make_spec(video, renderer)
    batch = VideoSFTCollator(processor, renderer=renderer)([spec])
    views = [renderer.render(p) for p in spec.views]
    inference = build_inputs(processor, spec.messages, views)  # what the HF backend generates from
    length = inference["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][:, :length], inference["input_ids"])
    assert torch.equal(batch["position_ids"][..., :length], inference["position_ids"])
    assert torch.equal(batch["pixel_values_videos"], inference["pixel_values_videos"])
    # the reply continues the positions as text after text: +1 per token on all three axes
    tail = batch["position_ids"][:, 0, length:]
    start = int(inference["position_ids"].max()) + 1
    assert torch.equal(tail, torch.arange(start, start + tail.shape[1]).expand(3, -1))


def test_batches_are_right_padded_and_run_through_the_model(processor, video, renderer, tiny_model_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    short = make_spec(video, renderer, clips=(), target="I get the answer.\n\n\\boxed{A}")
    long = make_spec(video, renderer, clips=((2, 6), (10, 16)))
    collator = VideoSFTCollator(processor, renderer=renderer)
    batch = collator([short, long])
    singles = [collator([short]), collator([long])]
    lengths = [s["input_ids"].shape[1] for s in singles]
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"][0].tolist() == [1] * lengths[0] + [0] * (max(lengths) - lengths[0])
    assert (batch["labels"][0, lengths[0] :] == IGNORE_INDEX).all()
    assert batch["pixel_values_videos"].shape[0] == sum(s["pixel_values_videos"].shape[0] for s in singles)
    assert batch["video_grid_thw"].shape[0] == 1 + 3
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_path).eval()
    with torch.no_grad():
        loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_records_become_spec4_samples_reproducibly(processor, video, renderer):
    cot = SFTRecord("sft.jsonl", 0, video, "Where is the square?", TARGET, zoomin_intervals=((4.4, 6.0),), cot=True)
    collator = VideoSFTCollator(processor, view_cfg=SMALL, renderer=renderer)
    spec = collator.to_sample(record_to_row(cot))
    # a CoT clip shorter than 5 s is re-centred to [mid - 3, mid + 3]; the zoom instruction is appended
    assert [p.label for p in spec.views[1:]] == [(2, 8)]
    assert spec.messages[1]["content"][-1]["text"].startswith("Where is the square?\nBased on the video")
    batch = collator([record_to_row(cot)])
    assert trained_text(processor, batch) == TARGET + "<|im_end|>"
    # stage-1 random choices: same seed, same draws; a second epoch draws again
    stage1 = SFTRecord("sft.jsonl", 1, video, "What moves?", TARGET, tgt=((5.0, 9.0),))
    one, two = (VideoSFTCollator(processor, seed=3, renderer=renderer) for _ in range(2))
    epoch1 = [one.to_sample(stage1).views for _ in range(6)]
    assert [two.to_sample(stage1).views for _ in range(6)] == epoch1
    assert len(set(epoch1)) > 1  # 60% clues / 20% whole video / 20% none: six draws are not all alike


def test_sample_rows_round_trip(video, renderer):
    spec = make_spec(video, renderer, prefix=ZOOM_PREFIX)
    assert sample_from_row(sample_to_row(spec)) == spec
    assert sample_from_row(sample_to_row(dataclasses.replace(spec, target=None))).target is None


def test_bad_settings_and_samples_are_rejected(processor, video, renderer):
    with pytest.raises(ValueError, match="loss_on"):
        VideoSFTCollator(processor, loss_on="everything")
    with pytest.raises(ValueError, match="no target"):
        VideoSFTCollator(processor, renderer=renderer)([make_spec(video, renderer, target=None)])
    with pytest.raises(ValueError, match="max_tokens"):
        VideoSFTCollator(processor, renderer=renderer, max_tokens=10)([make_spec(video, renderer)])
