"""``lover1`` (``lover1_plugin.cli.main``): plan, answer, and how errors reach the user."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lover1_plugin import cli
from lover1_plugin.backends.scripted import ScriptedBackend
from lover1_plugin.errors import Lover1Error
from lover1_plugin.graphs import context as context_module
from lover1_plugin.synthetic import make_test_video


@pytest.fixture(scope="module")
def hour_video(tmp_path_factory) -> str:
    """One hour at 1 fps, 360x640 (16:9, 360p: the smallest size SPEC's 1-hour numbers hold for).

    A smaller source is enlarged differently: 144x256 also gives 112x196 fast frames, but
    336x616 zoom frames (4,224 tokens), not SPEC's 336x588.
    """
    return str(make_test_video(tmp_path_factory.mktemp("v") / "hour.mp4", duration_s=3600, fps=1, size=(360, 640)))


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> str:
    """6 s at 2 fps, 64x112: 12 fast frames, quick on the tiny model."""
    return str(make_test_video(tmp_path_factory.mktemp("v") / "short.mp4", duration_s=6, fps=2, size=(64, 112)))


@pytest.fixture
def broken_video(tmp_path) -> str:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    return str(path)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line message, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- plan


def test_plan_json_for_a_one_hour_video_matches_spec(hour_video, capsys):
    assert cli.main(["plan", hour_video, "--zoom", "100", "130", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["duration"] == 3600 and report["num_frames"] == 3600
    fast, zoom = report["fast"], report["zoom"]
    # SPEC 1 worked example: 768 fast frames of 112x196, 28 tokens per frame pair, 10,752 tokens.
    assert (fast["frames"], fast["height"], fast["width"], fast["visual_tokens"]) == (768, 112, 196, 10752)
    assert fast["frame_ids"][:2] == [0, 5] and fast["frame_ids"][-1] == 3599
    assert fast["label"] == [0, 3600]
    # a 30 s zoom clip: 32 frames of 336x588, 4,032 tokens.
    assert (zoom["frames"], zoom["height"], zoom["width"], zoom["visual_tokens"]) == (32, 336, 588, 4032)
    assert zoom["frame_ids"][0] == 100 and zoom["frame_ids"][-1] == 130
    assert zoom["grid_thw"] == [16, 24, 42]
    assert report["visual_tokens"] == 10752 + 4032


def test_plan_text_report(hour_video, capsys):
    assert cli.main(["plan", hour_video]) == 0
    out = capsys.readouterr().out
    assert "768 frames of 112x196" in out and "10752 visual tokens" in out
    assert "zoom" not in out  # no --zoom, no zoom clip


def test_plan_smaller_source_is_enlarged_to_the_budget(tmp_path, capsys):
    # SPEC 1: "240x426 gives zoom frames of 364x616 (4,576 tokens for 32 frames)"; 120 s keeps factor 1.
    video = make_test_video(tmp_path / "small.mp4", duration_s=120, fps=1, size=(240, 426))
    assert cli.main(["plan", str(video), "--zoom", "10", "40", "--json"]) == 0
    zoom = json.loads(capsys.readouterr().out)["zoom"]
    assert (zoom["frames"], zoom["height"], zoom["width"], zoom["visual_tokens"]) == (32, 364, 616, 4576)


def test_plan_preset_changes_the_views(hour_video, capsys):
    assert cli.main(["plan", hour_video, "--preset", "mlvu", "--zoom", "100", "130", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preset"] == "mlvu" and report["fast"]["frames"] == 384  # MLVU: num_fast 384, fast_res 64
    assert cli.main(["plan", hour_video, "--preset", "longvideobench", "--zoom", "100", "130", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["zoom"]["frames"] == 16  # LongVideoBench: num_slow 16


# --------------------------------------------------------------------------- answer


@pytest.mark.slow
def test_answer_with_the_tiny_model_prints_trace_and_answer(short_video, tiny_model_path, tmp_path, capsys):
    timeline = tmp_path / "timeline.png"
    code = cli.main(
        ["answer", short_video, "What moves?", "--model", "tiny", "--device", "cpu",
         "--max-new-tokens", "8",  # random weights ramble: keep the test fast
         "--timeline", str(timeline)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    assert out.startswith("video: 6.0 s; fast view 12 frames")
    assert "--- round 1:" in out
    # The tiny model never boxes: round 1 is unreadable, so the forced answer runs on the whole video.
    assert "--- forced answer" in out and "[[0, 6]]" in out
    assert out.rstrip().splitlines()[-1].startswith("answer: ")
    assert timeline.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_answer_json_with_the_tiny_model(short_video, tiny_model_path, capsys):
    code = cli.main(
        ["answer", short_video, "What moves?", "--options", "A. a square", "B. a circle",
         "--model", "tiny", "--device", "cpu", "--max-new-tokens", "4", "--max-rounds", "1", "--json"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    state = json.loads(captured.out)
    assert isinstance(state["answer"], str) and state["errors"] == []
    assert len(state["rounds"]) == 1 and state["forced"] is True


def test_answer_trace_shows_every_round(short_video, monkeypatch, capsys):
    # D = 6: [1, 2] -> padded [0, 6] (width 6 >= 3; widening to min(30, 6 / 8) = 0.75 s never narrows).
    replies = ["I need to zoom in on the video.\n\nLook closer \\boxed{[1, 2]}", "I get the answer.\n\n\\boxed{B}"]
    backend = ScriptedBackend(replies)
    monkeypatch.setattr(context_module, "_shared_backend", lambda name, model, kwargs: backend)
    assert cli.main(["answer", short_video, "What moves?", "--options", "A. a square", "B. a circle"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "--- round 1: zoom -> zoomed" in out
    assert "zoom interval: [0, 6] (proposed [1, 2])" in out
    assert "--- round 2: answer -> answer" in out
    assert out[-1] == "answer: 'B'"
    # the options reached the model in the MLVU format (the default preset)
    assert "Options:\n(A) a square\n(B) a circle" in backend.calls[0].conversation[1]["content"][-1]["text"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", ["answer", "plan"])
def test_missing_video_is_a_one_line_error(tmp_path, capsys, command):
    missing = str(tmp_path / "nope.mp4")
    argv = [command, missing, "What moves?"] if command == "answer" else [command, missing]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("lover1: error: ") and "nope.mp4" in line
    assert captured.out == ""


def test_unreadable_video_in_plan_is_a_one_line_error(broken_video, capsys):
    assert cli.main(["plan", broken_video]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("lover1: error: VideoDecodeError: cannot read") and "broken.mp4" in line


def test_unreadable_video_in_answer_fails_without_loading_a_model(broken_video, monkeypatch, capsys):
    def no_model(*args):
        raise AssertionError("a model was loaded for a video that cannot be read")

    monkeypatch.setattr(context_module, "_shared_backend", no_model)
    assert cli.main(["answer", broken_video, "What moves?", "--json"]) == 1
    captured = capsys.readouterr()
    state = json.loads(captured.out)
    assert state["answer"] == "" and state["errors"][0]["node"] == "overview"
    assert one_line(captured.err).startswith("lover1: error: VideoDecodeError: cannot read")


def test_debug_raises_instead_of_printing_one_line(tmp_path):
    with pytest.raises(Lover1Error, match="nope.mp4"):
        cli.main(["--debug", "plan", str(tmp_path / "nope.mp4")])


@pytest.mark.slow  # a fresh interpreter imports torch: 5-15 s on 2 busy cores
def test_debug_shows_the_traceback_on_the_command_line(tmp_path):
    missing = str(tmp_path / "nope.mp4")
    debug = subprocess.run(
        [sys.executable, "-m", "lover1_plugin.cli", "--debug", "plan", missing], capture_output=True, text=True
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "nope.mp4" in debug.stderr


@pytest.mark.parametrize("command", ["answer", "plan"])
def test_unknown_preset_is_rejected(short_video, capsys, command):
    argv = [command, short_video, *(["What moves?"] if command == "answer" else []), "--preset", "nonexistent"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nonexistent'" in err and "videomme" in err


def test_invalid_setting_is_a_one_line_error(short_video, capsys):
    assert cli.main(["plan", short_video, "--num-fast", "0"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("lover1: error: ConfigError:") and "num_fast" in line


def test_eval_passes_leading_options_through_to_lmms_eval(monkeypatch):
    import lover1_plugin.evaluation.cli as eval_cli
    from lover1_plugin.cli import main, tasks_path

    calls = []
    monkeypatch.setattr(eval_cli, "run_lmms_eval", lambda argv, include_path: calls.append((argv, include_path)) or 3)
    assert main(["eval", "--model", "love_r1", "--tasks", "love_r1_needle"]) == 3  # lmms-eval's status comes back
    assert calls == [(["--model", "love_r1", "--tasks", "love_r1_needle"], tasks_path())]
