"""Bad and unusual video inputs: every failure is a typed error with a human cause, edge cases plan and render."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from lover1_plugin.config import ViewConfig
from lover1_plugin.errors import VideoDecodeError, ViewError
from lover1_plugin.synthetic import make_audio_only_file, make_test_video, read_frame_index
from lover1_plugin.video import (
    VideoInfo,
    ViewRenderer,
    _info_from_reader,
    open_video,
    plan_fast_view,
    plan_slow_view,
    plan_whole_video_view,
    probe_video,
    render_view,
)

DEFAULT = ViewConfig()


# --------------------------------------------------------------------------- broken files, built here


@pytest.fixture(scope="module")
def good_video(tmp_path_factory):
    return make_test_video(tmp_path_factory.mktemp("good") / "good.mp4", duration_s=3, fps=10, size=(96, 160))


def expect_decode_error(path, cause_fragment):
    with pytest.raises(VideoDecodeError) as caught:
        probe_video(path)
    error = caught.value
    assert error.path == str(path)
    assert cause_fragment in error.cause
    assert str(error) == f"cannot read {str(path)!r} ({error.cause})"
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)  # no decord traceback
    return error


def test_missing_file(tmp_path):
    expect_decode_error(tmp_path / "nope.mp4", "file not found")


def test_directory(tmp_path):
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    expect_decode_error(folder, "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    expect_decode_error(path, "empty file")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    expect_decode_error(path, "not a video file")


def test_truncated_mp4(tmp_path, good_video):
    data = good_video.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])  # the index (moov) is written last: it is gone
    expect_decode_error(path, "truncated")


def test_truncated_mp4_with_index_first(tmp_path, good_video):
    full = tmp_path / "faststart.mp4"
    with av.open(str(good_video)) as src, av.open(str(full), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = full.read_bytes()
    path = tmp_path / "faststart_truncated.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])  # the index survives, the frame data does not
    expect_decode_error(path, "truncated")


def test_video_decord_cannot_decode_says_so(tmp_path):
    if "libaom-av1" not in av.codecs_available:
        pytest.skip("no AV1 encoder in this PyAV build")
    path = tmp_path / "av1.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libaom-av1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for k in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * k, np.uint8), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    expect_decode_error(path, "re-encode it")


def test_audio_only_file(tmp_path):
    error = expect_decode_error(make_audio_only_file(tmp_path / "speech.m4a"), "no video stream")
    assert "audio" in error.cause


def test_zero_frame_video(tmp_path):
    path = tmp_path / "zero.y4m"
    path.write_bytes(b"YUV4MPEG2 W64 H64 F10:1 Ip A1:1 C420jpeg\n")  # a valid header, no frames
    expect_decode_error(path, "zero frames")


def test_renderer_and_render_view_raise_the_same_typed_error(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(os.urandom(4096))
    plan = plan_fast_view(VideoInfo(str(path), 300, 30.0, 640, 360), DEFAULT)
    with pytest.raises(VideoDecodeError):
        render_view(plan)
    with ViewRenderer() as renderer, pytest.raises(VideoDecodeError):
        renderer.render(plan)
    with pytest.raises(VideoDecodeError):
        open_video(path, reader="pyav")


def test_unknown_reader_is_a_value_error(good_video):
    with pytest.raises(ValueError, match="reader"):
        open_video(good_video, reader="opencv")


def test_frame_ids_out_of_range_are_a_view_error(good_video):
    video = probe_video(good_video)
    plan = plan_fast_view(VideoInfo(video.path, video.num_frames + 100, video.fps, video.width, video.height))
    with pytest.raises(ViewError, match="out of range"):
        render_view(plan)


# --------------------------------------------------------------------------- frame rate


class FakeReader:
    """Shaped like decord's VideoReader, with a chosen average fps and last-frame end time."""

    def __init__(self, num_frames, fps, last_end):
        self.num_frames, self.fps, self.last_end = num_frames, fps, last_end

    def __len__(self):
        return self.num_frames

    def get_avg_fps(self):
        return self.fps

    def get_frame_timestamp(self, ids):
        return np.array([[self.last_end - 0.01, self.last_end]])

    def get_batch(self, ids):
        return np.zeros((len(ids), 90, 160, 3), np.uint8)


@pytest.mark.parametrize("bad_fps", [0.0, float("nan"), float("inf"), -25.0, 5000.0])
def test_broken_fps_falls_back_to_the_timestamps(bad_fps, caplog):
    video = _info_from_reader("x.mp4", FakeReader(num_frames=300, fps=bad_fps, last_end=10.0))
    assert video.fps == pytest.approx(30.0)
    assert "fps" in caplog.text


@pytest.mark.parametrize("last_end", [0.0, float("nan"), 0.1])  # 0.1 s for 300 frames: 3000 fps
def test_broken_fps_without_usable_timestamps_is_a_decode_error(last_end):
    with pytest.raises(VideoDecodeError, match="invalid frame rate"):
        _info_from_reader("x.mp4", FakeReader(num_frames=300, fps=0.0, last_end=last_end))


def test_fps_over_1000_in_a_real_file_is_rejected(tmp_path):
    path = tmp_path / "fast.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(1200))
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for k in range(24):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), k * 10, np.uint8), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, 1200)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoDecodeError, match="invalid frame rate"):
        probe_video(path)


def test_video_info_rejects_impossible_values():
    with pytest.raises(ValueError):
        VideoInfo("x.mp4", num_frames=0, fps=30.0, width=64, height=64)
    with pytest.raises(ValueError):
        VideoInfo("x.mp4", num_frames=10, fps=float("nan"), width=64, height=64)
    with pytest.raises(ValueError):
        VideoInfo("x.mp4", num_frames=10, fps=30.0, width=0, height=64)


# --------------------------------------------------------------------------- very short videos


@pytest.mark.parametrize("seconds,fps,frames", [(0.4, 10, 2), (0.7, 10, 2), (1.0, 10, 2), (1.5, 10, 3)])
def test_sub_second_videos_get_at_least_two_frames(seconds, fps, frames):
    video = VideoInfo("short.mp4", num_frames=round(seconds * fps), fps=float(fps), width=160, height=96)
    plan = plan_fast_view(video, DEFAULT)
    assert plan.num_frames == frames
    assert plan.frame_ids[0] == 0 and plan.frame_ids[-1] == video.num_frames - 1
    assert math.isfinite(plan.sample_fps) and plan.sample_fps > 0


def test_one_frame_video_plans_and_renders(tmp_path):
    path = make_test_video(tmp_path / "still.mp4", duration_s=0.1, fps=10, size=(96, 160))
    video = probe_video(path)
    assert video.num_frames == 1
    for plan in (plan_fast_view(video, DEFAULT), plan_whole_video_view(video, DEFAULT)):
        assert plan.frame_ids == (0,)
        assert plan.sample_fps == 10.0  # one frame: one frame interval
        view = render_view(plan)
        assert tuple(view.pixels.shape) == (1, 3, plan.height, plan.width)
        assert plan.grid_thw[0] == 1 and math.isfinite(plan.second_per_grid_t)


def test_short_real_video_renders(tmp_path):
    path = make_test_video(tmp_path / "short.mp4", duration_s=0.5, fps=10, size=(96, 160))
    video = probe_video(path)
    plan = plan_fast_view(video, DEFAULT)
    assert plan.frame_ids == (0, 4)
    with open_video(path) as source:
        assert [read_frame_index(f) for f in source.get_frames(plan.frame_ids)] == [0, 4]
    assert render_view(plan).pixels.shape[0] == 2
    whole = plan_whole_video_view(video, DEFAULT)  # [0, int(0.5)] = [0, 0]
    assert whole.label == (0, 0) and whole.frame_ids == (0,)


def test_tiny_zoom_interval_gets_two_frames():
    video = VideoInfo("v.mp4", num_frames=600, fps=10.0, width=640, height=360)
    plan = plan_slow_view(video, 2.0, 2.2, DEFAULT)  # int(0.4) = 0 frames by the formula
    assert plan.frame_ids == (20, 22)
    assert plan.sample_fps == 10.0  # round(2 / 2 * 10, 2)


def test_zero_width_interval_on_one_frame():
    video = VideoInfo("v.mp4", num_frames=600, fps=10.0, width=640, height=360)
    plan = plan_slow_view(video, 5.0, 5.0, DEFAULT)
    assert plan.frame_ids == (50,) and plan.sample_fps == 10.0


@pytest.mark.parametrize(
    "start,end,message",
    [(30, 20, "ends before"), (700, 710, "after the video ends"), (float("nan"), 5, "finite"), (0, math.inf, "finite")],
)
def test_bad_intervals_are_view_errors(start, end, message):
    video = VideoInfo("v.mp4", num_frames=600, fps=10.0, width=640, height=360)
    with pytest.raises(ViewError, match=message):
        plan_slow_view(video, start, end, DEFAULT)


def test_bad_num_frames_is_a_view_error():
    video = VideoInfo("v.mp4", num_frames=600, fps=10.0, width=640, height=360)
    with pytest.raises(ViewError):
        plan_slow_view(video, 0, 10, DEFAULT, num_frames=0)


def test_interval_past_the_end_is_clamped_to_the_last_frame():
    video = VideoInfo("v.mp4", num_frames=600, fps=10.0, width=640, height=360)
    plan = plan_slow_view(video, 50, 90, DEFAULT)
    assert plan.frame_ids[-1] == 599 and plan.label == (50, 90)


# --------------------------------------------------------------------------- geometry extremes


def test_extreme_aspect_ratio_is_a_view_error(tmp_path):
    path = make_test_video(tmp_path / "sliver.mp4", duration_s=0.5, fps=4, size=(8, 1800))  # 225:1
    video = probe_video(path)
    with pytest.raises(ViewError, match="aspect ratio"):
        plan_fast_view(video, DEFAULT)


def test_thin_video_under_the_limit_renders_with_28_px_sides(tmp_path):
    path = make_test_video(tmp_path / "thin.mp4", duration_s=0.5, fps=4, size=(10, 1900))  # 190:1
    video = probe_video(path)
    plan = plan_fast_view(video, DEFAULT)
    assert plan.height == 28 and plan.width % 28 == 0
    view = render_view(plan)
    assert tuple(view.pixels.shape) == (plan.num_frames, 3, 28, plan.width)


def test_portrait_video_renders(tmp_path):
    path = make_test_video(tmp_path / "portrait.mp4", duration_s=1, fps=4, size=(320, 180))
    plan = plan_fast_view(probe_video(path), DEFAULT)
    assert plan.height > plan.width
    assert render_view(plan).pixels.shape[-2:] == (plan.height, plan.width)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("name", ["my clip (final).mp4", "vidéo 视频 ビデオ.mp4", "emoji 🎬.mp4"])
def test_paths_with_spaces_and_unicode(tmp_path, name):
    folder = tmp_path / "a folder with spaces"
    path = make_test_video(folder / name, duration_s=1, fps=4, size=(96, 160))
    video = probe_video(path)
    assert video.path == str(path) and video.num_frames == 4
    view = render_view(plan_fast_view(video, DEFAULT))
    assert view.pixels.shape[0] == 2
    for reader in ("decord", "pyav"):
        with open_video(path, reader=reader) as source:
            assert [read_frame_index(f) for f in source.get_frames([0, 3])] == [0, 3]


def test_pathlib_and_str_paths_give_equal_plans(tmp_path):
    path = make_test_video(tmp_path / "p.mp4", duration_s=1, fps=4, size=(96, 160))
    assert plan_fast_view(probe_video(path)) == plan_fast_view(probe_video(str(path)))


def test_views_are_float32_in_0_255(tmp_path):
    path = make_test_video(tmp_path / "range.mp4", duration_s=1, fps=4, size=(96, 160))
    pixels = render_view(plan_fast_view(probe_video(path))).pixels
    assert pixels.dtype == torch.float32
    assert float(pixels.min()) >= 0 and float(pixels.max()) <= 255
    assert torch.equal(pixels, pixels.round())  # resized on uint8, then converted
