"""``draw_timeline``: a PNG of where the model looked, from a run's output state (or ``lover1 answer --json``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lover1_plugin import cli
from lover1_plugin.backends.scripted import ScriptedBackend
from lover1_plugin.graphs import context as context_module
from lover1_plugin.graphs.context import LoveR1Context
from lover1_plugin.graphs.love_r1 import build_graph
from lover1_plugin.synthetic import make_test_video
from lover1_plugin.timeline import draw_timeline, fast_view_times
from lover1_plugin.video import ViewRenderer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL_VIEWS = {"fast_res": 4, "slow_res": 8}  # small frames keep the module fast; the timeline ignores pixels


def zoom(box: str) -> str:
    return f"I need to zoom in on the video.\n\n\\boxed{{{box}}}"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    return str(make_test_video(tmp_path_factory.mktemp("v") / "v600.mp4", duration_s=600, fps=1, size=(72, 128)))


@pytest.fixture(scope="module")
def renderer() -> ViewRenderer:
    return ViewRenderer(max_cached_views=16)


def two_zoom_state(video: str, renderer: ViewRenderer, first: str, second: str) -> dict:
    backend = ScriptedBackend([zoom(first), zoom(second), "\\boxed{D}"])
    inputs = {"video": video, "question": "What colour is the card?", "overrides": SMALL_VIEWS}
    return build_graph().invoke(inputs, context=LoveR1Context(backend=backend, renderer=renderer))


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def orange_columns(image: np.ndarray) -> np.ndarray:
    """Columns holding matplotlib's tab:orange (the zoomed intervals)."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    orange = (r > 230) & (g > 120) & (g < 175) & (b < 90)
    return np.flatnonzero(orange.any(axis=0))


@pytest.fixture(scope="module")
def state(video, renderer) -> dict:
    # [300, 340] -> [295, 345]; [100, 110] -> [90, 120]
    return two_zoom_state(video, renderer, "[300, 340]", "[100, 110]")


def test_writes_a_readable_png(state, tmp_path):
    path = draw_timeline(state, tmp_path / "sub" / "timeline.png", title="What colour is the card?")
    assert path == tmp_path / "sub" / "timeline.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    # about 1200 px wide; one row per view / round / forced answer: readable, not a poster
    assert 800 <= width <= 2000 and 250 <= height <= 1200
    assert len(np.unique(pixels(path).reshape(-1, 3), axis=0)) > 10  # not a blank canvas


def test_zoomed_intervals_are_drawn_where_they_are(state, tmp_path):
    image = pixels(draw_timeline(state, tmp_path / "t.png", legend=False))  # the key has orange too
    columns = orange_columns(image)
    assert columns.size, "no zoomed interval drawn"
    # Two separate orange spans ([90, 120] and [295, 345] on a 600 s axis): the left one is narrower.
    gaps = np.flatnonzero(np.diff(columns) > 5)
    assert gaps.size == 1
    left, right = columns[: gaps[0] + 1], columns[gaps[0] + 1 :]
    assert right.size > left.size
    assert 1.3 < (right.size / left.size) < 2.0  # 50 s vs 30 s, give or take the edges


def test_is_deterministic_and_changes_with_the_intervals(state, video, renderer, tmp_path):
    first = pixels(draw_timeline(state, tmp_path / "a.png"))
    again = pixels(draw_timeline(state, tmp_path / "b.png"))
    np.testing.assert_array_equal(first, again)

    moved = two_zoom_state(video, renderer, "[450, 490]", "[100, 110]")  # -> [445, 495] instead of [295, 345]
    assert moved["intervals"] != state["intervals"]
    other = pixels(draw_timeline(moved, tmp_path / "c.png"))
    assert first.shape == other.shape
    assert (first != other).any(axis=2).sum() > 500
    bare_first = pixels(draw_timeline(state, tmp_path / "d.png", legend=False))  # the key has orange too
    bare_other = pixels(draw_timeline(moved, tmp_path / "e.png", legend=False))
    assert orange_columns(bare_other).max() > orange_columns(bare_first).max()  # the second clip moved right


def test_draws_the_state_printed_by_lover1_answer_json(state, tmp_path):
    reloaded = json.loads(json.dumps(state, default=str))
    np.testing.assert_array_equal(
        pixels(draw_timeline(reloaded, tmp_path / "json.png")), pixels(draw_timeline(state, tmp_path / "state.png"))
    )


def test_draws_a_failed_run(tmp_path):
    failed = {"answer": "", "errors": [{"node": "overview", "type": "VideoDecodeError", "message": "cannot read"}]}
    path = draw_timeline(failed, tmp_path / "failed.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_fast_view_times_follow_the_spec_frame_ids():
    # 10 frames at 2 fps, 5 fast frames: linspace(0, 9, 5) = 0, 2.25, 4.5, 6.75, 9 -> rounded
    # half-to-even 0, 2, 4, 7, 9 -> seconds 0, 1, 2, 3.5, 4.5.
    times = fast_view_times({"frames": 5, "video_frames": 10, "video_fps": 2.0})
    np.testing.assert_allclose(times, [0, 1, 2, 3.5, 4.5])


def test_lover1_answer_timeline_flag_writes_the_png(video, tmp_path, monkeypatch, capsys):
    backend = ScriptedBackend([zoom("[300, 340]"), zoom("[100, 110]"), "\\boxed{D}"])
    # Every model the CLI would load is this scripted one.
    monkeypatch.setattr(context_module, "_shared_backend", lambda name, model, kwargs: backend)
    out = tmp_path / "out.png"
    code = cli.main(
        ["answer", video, "What colour is the card?", "--timeline", str(out), "--fast-res", "4", "--slow-res", "8"]
    )
    assert code == 0, capsys.readouterr().err
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert len(backend.calls) == 3
    assert orange_columns(pixels(out)).size
