"""Synthetic videos: frame-accurate test clips, needle videos readable only when zoomed, the needle dataset."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from lover1_plugin.config import ViewConfig
from lover1_plugin.errors import ConfigError
from lover1_plugin.synthetic import (
    NEEDLE_WORDS,
    make_needle_dataset,
    make_needle_video,
    make_test_video,
    read_frame_index,
)
from lover1_plugin.video import open_video, plan_fast_view, plan_slow_view, probe_video, render_view


def test_test_video_has_the_asked_length_rate_and_size(tmp_path):
    path = make_test_video(tmp_path / "clip.mp4", duration_s=3, fps=10, size=(96, 160))
    video = probe_video(path)
    assert (video.num_frames, video.fps, video.height, video.width) == (30, 10.0, 96, 160)


def test_test_video_ntsc_rate_is_exact(tmp_path):
    video = probe_video(make_test_video(tmp_path / "ntsc.mp4", duration_s=2, fps=29.97, size=(96, 160)))
    assert video.fps == pytest.approx(30000 / 1001)
    assert video.num_frames == 60


def test_every_frame_carries_its_index_and_frames_differ(tmp_path):
    path = make_test_video(tmp_path / "clip.mp4", duration_s=4, fps=10, size=(72, 128), gop=8, bframes=2)
    with open_video(path) as source:
        frames = source.get_frames(range(40))
    assert [read_frame_index(f) for f in frames] == list(range(40))
    assert all(not np.array_equal(frames[k], frames[k + 1]) for k in range(39))  # moving content


def test_seed_changes_content_not_layout(tmp_path):
    a = make_test_video(tmp_path / "a.mp4", duration_s=1, fps=4, size=(96, 160), seed=0)
    b = make_test_video(tmp_path / "b.mp4", duration_s=1, fps=4, size=(96, 160), seed=1)
    c = make_test_video(tmp_path / "c.mp4", duration_s=1, fps=4, size=(96, 160), seed=0)
    assert a.read_bytes() == c.read_bytes()  # deterministic
    assert a.read_bytes() != b.read_bytes()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(duration_s=1, fps=0, size=(96, 160)),
        dict(duration_s=1, fps=float("nan"), size=(96, 160)),
        dict(duration_s=0, fps=10, size=(96, 160)),
        dict(duration_s=1, fps=10, size=(95, 160)),  # yuv420p needs even sides
    ],
)
def test_bad_test_video_settings_are_config_errors(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        make_test_video(tmp_path / "bad.mp4", **kwargs)


# --------------------------------------------------------------------------- needle videos


@pytest.fixture(scope="module")
def needle(tmp_path_factory):
    path = tmp_path_factory.mktemp("needle") / "needle.mp4"
    return make_needle_video(path, duration_s=120, fps=1.0, needle_span=(40, 52), needle_text="RIVER", seed=3)


def test_needle_video_metadata(needle):
    video = probe_video(needle.path)
    assert (video.num_frames, video.fps, video.height, video.width) == (120, 1.0, 360, 640)
    assert needle.needle_span == (40.0, 52.0) and needle.needle_text == "RIVER"
    x0, y0, x1, y1 = needle.box
    assert x1 <= 320 and y1 <= 180  # upper-left quarter, away from the timestamps


def card_darkness(frame: np.ndarray, box, scale_y: float = 1.0, scale_x: float = 1.0) -> float:
    """Darkest pixel (mean over RGB) inside the needle card: text strokes are black."""
    x0, y0, x1, y1 = box
    region = frame[int(y0 * scale_y) : int(np.ceil(y1 * scale_y)), int(x0 * scale_x) : int(np.ceil(x1 * scale_x))]
    return float(region.mean(axis=-1).min())


def test_needle_shows_only_during_its_span(needle):
    x0, y0, x1, y1 = needle.box
    with open_video(needle.path) as source:
        frames = source.get_frames([39, 40, 46, 51, 52, 100])
    card = frames[:, y0:y1, x0:x1].mean(axis=(1, 2, 3))
    inside, outside = card[[1, 2, 3]], card[[0, 4, 5]]
    assert inside.min() > 150  # mostly white card
    assert outside.max() < 150  # textured background


def test_needle_is_unreadable_in_the_fast_view_and_readable_when_zoomed(needle):
    video = probe_video(needle.path)
    fast = render_view(plan_fast_view(video, ViewConfig()))
    zoom = render_view(plan_slow_view(video, 40, 52, ViewConfig()))
    assert (fast.plan.height, fast.plan.width) == (112, 196)  # the sizes the docstring promises
    assert (zoom.plan.height, zoom.plan.width) == (336, 588)
    fast_frame = fast.plan.frame_ids.index(46) if 46 in fast.plan.frame_ids else None
    k = fast_frame if fast_frame is not None else next(i for i, f in enumerate(fast.plan.frame_ids) if 40 <= f < 52)
    small = fast.pixels[k].permute(1, 2, 0).numpy()
    large = zoom.pixels[3].permute(1, 2, 0).numpy()
    # at 112x196 the black strokes blur into grey; at 336x588 they stay black
    assert card_darkness(small, needle.box, 112 / 360, 196 / 640) > 90
    assert card_darkness(large, needle.box, 336 / 360, 588 / 640) < 40


def test_needle_video_is_fast_to_make(tmp_path):
    started = time.perf_counter()
    make_needle_video(tmp_path / "long.mp4", duration_s=600, fps=1.0, needle_span=(300, 312))
    assert time.perf_counter() - started < 15  # ~1 s on an idle 2-core machine; generous for loaded CI


@pytest.mark.parametrize(
    "span,text",
    [((50, 40), "B"), ((-1, 5), "B"), ((10, 700), "B"), ((10, 20), "   ")],
)
def test_bad_needle_settings_are_config_errors(tmp_path, span, text):
    with pytest.raises(ConfigError):
        make_needle_video(tmp_path / "bad.mp4", duration_s=60, needle_span=span, needle_text=text)


# --------------------------------------------------------------------------- needle dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("needle_set")
    return out, make_needle_dataset(out, num_questions=3, duration_s=60, fps=1.0, seed=7)


def test_dataset_records_have_the_documented_fields(dataset):
    out, records = dataset
    assert len(records) == 3
    assert json.loads((out / "needle.json").read_text()) == records
    for record in records:
        assert set(record) == {"id", "video", "question", "options", "answer", "needle_span", "duration"}
        assert (out / record["video"]).is_file() and "/" not in record["video"]
        assert [o[:3] for o in record["options"]] == ["A. ", "B. ", "C. ", "D. "]
        assert record["answer"] in "ABCD"
        t0, t1 = record["needle_span"]
        assert 0 <= t0 < t1 <= record["duration"] == 60.0
        assert 8 <= t1 - t0 <= 16
    assert len({r["id"] for r in records}) == 3


def test_dataset_answer_is_the_word_shown_in_the_video(dataset):
    out, records = dataset
    for record in records:
        word = record["options"]["ABCD".index(record["answer"])][3:]
        assert word in NEEDLE_WORDS
        t0, t1 = record["needle_span"]
        with open_video(out / record["video"]) as source:
            inside, before = source.get_frames([int(t0) + 1, int(t0) - 3])
        assert not np.array_equal(inside, before)
        assert (inside.mean(axis=-1) > 245).sum() > (before.mean(axis=-1) > 245).sum() + 50  # the white card


def test_dataset_is_deterministic_for_a_seed(tmp_path, dataset):
    _, records = dataset
    again = make_needle_dataset(tmp_path / "again", num_questions=3, duration_s=60, fps=1.0, seed=7)
    other = make_needle_dataset(tmp_path / "other", num_questions=3, duration_s=60, fps=1.0, seed=8)
    assert again == records
    assert other != records
    for record in records:
        assert (tmp_path / "again" / record["video"]).read_bytes() == (dataset[0] / record["video"]).read_bytes()


def test_dataset_videos_render_with_the_whole_pipeline(dataset):
    out, records = dataset
    video = probe_video(out / records[0]["video"])
    view = render_view(plan_fast_view(video, ViewConfig()))
    assert view.pixels.dtype == torch.float32 and view.pixels.shape[0] == 120


def test_bad_dataset_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        make_needle_dataset(tmp_path, num_questions=0)
    with pytest.raises(ConfigError):
        make_needle_dataset(tmp_path, duration_s=5)
