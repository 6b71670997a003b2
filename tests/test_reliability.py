"""Reliability at the front doors: what a user sees when a video, the model or a setting is bad.

``tests/test_video_inputs.py`` checks the video module on broken files; ``tests/test_fuzz.py``
feeds the parser odd model outputs. Here the same kinds of trouble go through the doors a
user opens: the ``lover1`` command (``answer`` and ``plan``), the LangGraph graph and the
lmms-eval model's constructor (the evaluation run itself: ``tests/test_reliability_eval.py``).

What a user must see on a bad input:

- CLI: exit status 1, one line on stderr naming the file and the cause
  (``lover1: error: VideoDecodeError: cannot read '<path>' (<cause>)``), no traceback
  unless ``--debug``; valid odd inputs (sub-second, one frame, spaces and unicode in the
  path, 8K frames) plan and answer;
- graph: the run ends with an empty answer and the error in ``state["errors"]`` with the
  node that failed; the model is never asked about a video that cannot be read;
- settings: rejected before any video is decoded or any model loaded.

Every broken input is built inside the tests. The CLI runs in-process as ``lover1`` runs
it (:func:`run_cli`: logging configured by ``main`` itself), and stderr is captured at the
file-descriptor level, so messages printed by native libraries (decord) count too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lover1_plugin import cli
from lover1_plugin import video as video_module
from lover1_plugin.backends.hf import HFBackend
from lover1_plugin.backends.scripted import ScriptedBackend
from lover1_plugin.errors import CheckpointError, ConfigError
from lover1_plugin.evaluation import model as model_module
from lover1_plugin.evaluation.chat import LoveR1Chat
from lover1_plugin.evaluation.simple import LoveR1Simple
from lover1_plugin.graphs import context as context_module
from lover1_plugin.graphs.context import LoveR1Context
from lover1_plugin.graphs.love_r1 import build_graph
from lover1_plugin.synthetic import make_audio_only_file, make_test_video
from lover1_plugin.video import ViewRenderer, open_video, plan_fast_view, render_view

QUESTION = "What moves?"
ZOOM_ON_FIRST_SECOND = "I need to zoom in on the video.\n\n\\boxed{[0, 1]}"
ANSWER_B = "I get the answer.\n\n\\boxed{B}"
SMALL_VIEWS = {"fast_res": 4, "slow_res": 8}  # small frames keep graph runs fast; frame counts do not depend on them


# --------------------------------------------------------------------------- broken and odd inputs, built here


def write_random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    return path


def write_truncated_mp4(path: Path, scratch: Path) -> Path:
    good = make_test_video(scratch / "whole.mp4", duration_s=3, fps=10, size=(96, 160))
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the mp4 index (moov) is written last: it is cut off
    return path


def write_zero_frames(path: Path) -> Path:
    path.write_bytes(b"YUV4MPEG2 W64 H64 F10:1 Ip A1:1 C420jpeg\n")  # a valid y4m header, no frame
    return path


# case -> (builder, fragment of the cause the user must read)
BAD_VIDEOS = {
    "missing": (None, None),  # never written; the cause differs per command (see expected_cause)
    "random-bytes": (lambda p, s: write_random_bytes(p), "not a video file"),
    "truncated-mp4": (write_truncated_mp4, "truncated"),
    "audio-only": (lambda p, s: make_audio_only_file(p), "no video stream"),
    "zero-frames": (lambda p, s: write_zero_frames(p), "zero frames"),
    "aspect-8x1800": (
        lambda p, s: make_test_video(p, duration_s=0.5, fps=4, size=(8, 1800)),  # 225:1, over Qwen's 200
        "aspect ratio 225.0",
    ),
}
BAD_NAMES = {"zero-frames": "zero.y4m", "audio-only": "speech.mp4"}  # the rest: "<case>.mp4"


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    scratch = tmp_path_factory.mktemp("scratch")
    paths = {}
    for case, (build, _) in BAD_VIDEOS.items():
        path = folder / BAD_NAMES.get(case, f"{case}.mp4")
        if build is not None:
            build(path, scratch)
        paths[case] = path
    return paths


def expected_cause(case: str, command: str) -> str:
    if case == "missing":
        # `answer` checks the path before starting the graph; `plan` gets the reader's cause
        return "does not exist" if command == "answer" else "file not found"
    return BAD_VIDEOS[case][1]


def expected_type(case: str, command: str) -> str:
    if case == "missing" and command == "answer":
        return "Lover1Error"
    return "ViewError" if case == "aspect-8x1800" else "VideoDecodeError"


@pytest.fixture(scope="module")
def odd_videos(tmp_path_factory) -> dict[str, Path]:
    """Valid videos at the edges of SPEC 1's formulas (all must plan and answer)."""
    folder = tmp_path_factory.mktemp("odd")
    spaced = tmp_path_factory.mktemp("with spaces") / "a folder with spaces"
    return {
        # D = 0.4 s: int(2 * D) = 0 fast frames by the formula; the view takes 2
        "0.4s": make_test_video(folder / "short04.mp4", duration_s=0.4, fps=10, size=(64, 112)),
        # D = 0.9 s: int(2 * D) = 1 frame by the formula; the view takes 2
        "0.9s": make_test_video(folder / "short09.mp4", duration_s=0.9, fps=10, size=(64, 112)),
        # N = 1: linspace over one frame, sample fps from a one-frame span
        "1-frame": make_test_video(folder / "one.mp4", duration_s=0.25, fps=4, size=(64, 112)),
        "spaces-unicode": make_test_video(spaced / "vidéo 视频 🎬 (final).mp4", duration_s=2, fps=4, size=(64, 112)),
    }


# frames the fast view takes: (ids, sample fps)
ODD_FAST_VIEWS = {
    "0.4s": ([0, 3], 6.67),  # 4 frames at 10 fps: 2 / 3 * 10
    "0.9s": ([0, 8], 2.5),  # 9 frames: 2 / 8 * 10
    "1-frame": ([0], 4.0),  # one frame: 1 / 1 * 4
    # D = 2 s at 4 fps: int(2 * 2) = 4 of 8 frames, round(linspace(0, 7, 4)) = round(0, 2.33, 4.67, 7);
    # sample fps round(4 / 7 * 4, 2)
    "spaces-unicode": ([0, 2, 5, 7], 2.29),
}


# --------------------------------------------------------------------------- running the CLI as a user does


def run_cli(argv: list[str]) -> int:
    """``lover1 <argv>`` in this process, with logging set up by ``main`` as on the command line.

    pytest's log capture sits on the root logger and would make ``logging.basicConfig`` in
    ``main`` a no-op; it is detached for the call so warnings reach stderr as they do for a user.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        return cli.main(argv)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def visible_lines(stream: str) -> list[str]:
    """The lines a terminal shows: for each line its text after the last carriage return, blanks dropped."""
    shown = (line.split("\r")[-1].rstrip() for line in stream.split("\n"))
    return [line for line in shown if line.strip()]


def cli_argv(command: str, path: Path) -> list[str]:
    if command == "answer":
        return ["answer", str(path), QUESTION, "--max-new-tokens", "4"]
    return ["plan", str(path)]


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if the CLI or the graph loads a model."""

    def load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(context_module, "_shared_backend", load)


@pytest.fixture
def no_decoding(monkeypatch):
    """Record (and refuse) every attempt to open a video: settings must fail before that."""
    opened: list[str] = []

    def refuse(self, path, **kwargs):
        opened.append(str(path))
        raise AssertionError(f"{path} was opened for decoding before the settings were checked")

    monkeypatch.setattr(video_module.DecordSource, "__init__", refuse)
    monkeypatch.setattr(video_module.PyAVSource, "__init__", refuse)
    return opened


# --------------------------------------------------------------------------- 1. bad videos through the CLI

COMMANDS = ("answer", "plan")


@pytest.mark.parametrize("case", list(BAD_VIDEOS))
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_video_exits_1_with_a_typed_error_and_no_traceback(command, case, bad_videos, no_model, capfd):
    path = bad_videos[case]
    assert run_cli(cli_argv(command, path)) == 1
    out, err = capfd.readouterr()
    last = visible_lines(err)[-1]
    assert last.startswith(f"lover1: error: {expected_type(case, command)}: ")
    assert expected_cause(case, command) in last
    assert "Traceback" not in err and "Traceback" not in out
    if command == "plan":
        assert out == ""  # no half report
    elif case != "missing":
        assert visible_lines(out)[-1] == "answer: ''"  # the trace still ends with the (empty) answer


@pytest.mark.parametrize(
    ("command", "case"),
    [pytest.param(c, k, id=f"{c}-{k}") for c in COMMANDS for k in BAD_VIDEOS],
)
def test_bad_video_error_is_one_stderr_line_naming_the_path(command, case, bad_videos, no_model, capfd):
    path = bad_videos[case]
    assert run_cli(cli_argv(command, path)) == 1
    lines = visible_lines(capfd.readouterr().err)
    assert len(lines) == 1, lines
    assert str(path) in lines[0] and expected_cause(case, command) in lines[0]


def test_debug_answer_shows_the_traceback_of_a_bad_video(bad_videos, no_model, capfd):
    path = bad_videos["truncated-mp4"]
    assert run_cli(["--debug", *cli_argv("answer", path)]) == 1
    err = capfd.readouterr().err
    assert "Traceback (most recent call last)" in err and "VideoDecodeError" in err
    assert visible_lines(err)[-1].startswith("lover1: error: VideoDecodeError: ")


@pytest.mark.parametrize("case", ["random-bytes", "aspect-8x1800"])
def test_debug_plan_raises_the_typed_error(case, bad_videos):
    from lover1_plugin.errors import VideoDecodeError, ViewError

    expected = ViewError if case == "aspect-8x1800" else VideoDecodeError
    with pytest.raises(expected):
        run_cli(["--debug", "plan", str(bad_videos[case])])


# --------------------------------------------------------------------------- valid odd videos through the CLI


@pytest.mark.parametrize("case", list(ODD_FAST_VIEWS))
def test_plan_works_on_short_one_frame_and_unicode_videos(case, odd_videos, capfd):
    path = odd_videos[case]
    assert run_cli(["plan", str(path), "--json"]) == 0
    out, err = capfd.readouterr()
    report = json.loads(out)
    ids, fps = ODD_FAST_VIEWS[case]
    assert report["video"] == str(path)
    assert (report["fast"]["frame_ids"], report["fast"]["sample_fps"]) == (ids, fps)
    assert report["fast"]["label"] == [0, int(report["duration"])]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", list(ODD_FAST_VIEWS))
def test_answer_works_on_short_one_frame_and_unicode_videos(case, odd_videos, tiny_backend, monkeypatch, capfd):
    monkeypatch.setattr(context_module, "_shared_backend", lambda name, model, kwargs: tiny_backend)
    path = odd_videos[case]
    assert run_cli(["answer", str(path), QUESTION, "--max-new-tokens", "4", "--json"]) == 0
    out, err = capfd.readouterr()
    state = json.loads(out)
    assert state["errors"] == [] and isinstance(state["answer"], str)
    assert state["fast_view"]["frames"] == len(ODD_FAST_VIEWS[case][0])
    # the tiny model never boxes: the forced answer sees the whole video [0, int(D)] as one slow view
    assert state["final"]["intervals"] == [[0, int(state["duration"])]]
    assert "Traceback" not in err


# --------------------------------------------------------------------------- 8K frames


def peak_rss_growth_mib(work) -> float:
    """Peak resident memory growth of ``work()`` in MiB.

    Resets the kernel's peak counter (``/proc/self/clear_refs``) and reads ``VmHWM`` after;
    where that is not allowed, samples ``VmRSS`` every 2 ms in a thread.
    """

    def status(key: str) -> int:
        with open("/proc/self/status") as file:
            return next(int(line.split()[1]) for line in file if line.startswith(key))

    base = status("VmRSS:")
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        peak, done = [base], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], status("VmRSS:"))
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            work()
        finally:
            done.set()
            sampler.join()
        return (peak[0] - base) / 1024
    work()
    return (status("VmHWM:") - base) / 1024


@pytest.fixture(scope="module")
def video_8k(tmp_path_factory) -> Path:
    # 2 frames of 7680x4320 at 1 fps (D = 2 s): about 5 s to encode
    return make_test_video(tmp_path_factory.mktemp("8k") / "8k.mp4", duration_s=2, fps=1, size=(4320, 7680))


@pytest.mark.slow  # encoding and resizing 8K frames: about 12 s on 2 cores
def test_8k_video_plans_and_renders_with_bounded_memory(video_8k, odd_videos, capfd):
    assert run_cli(["plan", str(video_8k), "--json"]) == 0
    report = json.loads(capfd.readouterr().out)
    assert report["size"] == [4320, 7680]
    # D = 2 < 60: factor 2, budget 64 * 28 * 28 -> 168x280 (as SPEC's 720p example); int(2 * 2) = 4 frames of 2
    fast = report["fast"]
    assert (fast["frames"], fast["height"], fast["width"], fast["frame_ids"]) == (4, 168, 280, [0, 0, 1, 1])

    with open_video(odd_videos["1-frame"]) as small:  # warm up: the font and the resize kernels load once
        render_view(plan_fast_view(small.info), source=small)
    frame_mib = 4320 * 7680 * 3 / 2**20  # one decoded full-resolution RGB frame: 95 MiB
    with open_video(video_8k) as source:
        plan = plan_fast_view(source.info)
        views = []
        growth = peak_rss_growth_mib(lambda: views.append(render_view(plan, source=source)))
    assert tuple(views[0].pixels.shape) == (4, 3, 168, 280)
    # Frames are decoded, stamped and resized one at a time (BATCH_BYTES), the next one decoded meanwhile:
    # measured 490-650 MiB (5-7 frames' worth: the bicubic resize works on a float copy of its frame).
    # Decoding both frames at once (batch_bytes unbounded) measured 960-1030 MiB (10-11 frames' worth).
    assert growth < 8 * frame_mib, f"rendering a 2-frame 8K clip grew memory by {growth:.0f} MiB"


# --------------------------------------------------------------------------- 1. bad videos through the graph


def run_graph(inputs: dict, backend, renderer: ViewRenderer | None = None) -> tuple[list[str], dict]:
    """Stream one graph run: the nodes it visited and its final state."""
    graph = build_graph()
    context = LoveR1Context(backend=backend, renderer=renderer or ViewRenderer())
    nodes, state = [], {}
    for mode, chunk in graph.stream(inputs, context=context, stream_mode=["updates", "values"]):
        if mode == "updates":
            nodes.extend(chunk)
        else:
            state = chunk
    return nodes, state


@pytest.mark.parametrize(
    "case",
    [pytest.param(k) for k in BAD_VIDEOS],
)
def test_graph_records_a_bad_video_in_state_and_never_asks_the_model(case, bad_videos):
    path = bad_videos[case]
    backend = ScriptedBackend([ANSWER_B])
    nodes, state = run_graph({"video": str(path), "question": QUESTION}, backend)
    assert nodes == ["overview"]
    assert state["answer"] == "" and backend.calls == []
    (error,) = state["errors"]
    assert error["node"] == "overview"
    assert error["type"] == expected_type(case, "plan")
    assert expected_cause(case, "plan") in error["message"]
    assert str(path) in error["message"]


@pytest.mark.parametrize("case", ["0.4s", "0.9s", "1-frame"])
def test_graph_on_sub_second_videos_rejects_the_zoom_and_forces_an_answer(case, odd_videos):
    # D < 1: int(D) = 0. A proposal [0, 1] pads to [max(0 - 5, 0), min(1 + 5, int(D))] = [0, 0]: narrower than
    # 3 s, so SPEC 3 stops and forces the answer on the whole video [0, int(D)] = [0, 0].
    backend = ScriptedBackend([ZOOM_ON_FIRST_SECOND, "\\boxed{B}"])
    nodes, state = run_graph({"video": str(odd_videos[case]), "question": QUESTION, "overrides": SMALL_VIEWS}, backend)
    assert nodes == ["overview", "reason", "zoom", "answer"]
    assert state["errors"] == [] and state["answer"] == "B" and state["intervals"] == []
    fast, whole = backend.calls[1].plans
    assert fast.label == whole.label == (0, 0)
    assert whole.num_frames == 1  # [0, 0] spans frame 0 only
    assert fast.frame_ids == tuple(ODD_FAST_VIEWS[case][0])


# --------------------------------------------------------------------------- 2. model failures: out of memory


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """6 s at 2 fps, 64x112: a 12-frame fast view, quick on the tiny model."""
    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", duration_s=6, fps=2, size=(64, 112))


def out_of_memory_on_call(backend: HFBackend, monkeypatch, failing_call: int) -> list[int]:
    """Make the tiny model's ``generate`` raise CUDA's OOM on call ``failing_call`` (1-based).

    Earlier calls return one token ("Hello", no box: the round is unreadable).
    """
    calls: list[int] = []

    def generate(**kwargs):
        calls.append(1)
        if len(calls) == failing_call:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return torch.cat([kwargs["input_ids"], torch.tensor([[9707]])], dim=1)

    monkeypatch.setattr(backend.model, "generate", generate)
    return calls


# The clip's views (D = 6 < 60, so factor 2), worked by hand from SPEC 1:
# fast: 12 frames, budget 64 * 28 * 28 -> 64x112 enlarged to 196x308: 6 frame pairs * 7 * 11 = 462 tokens;
# whole video [0, 6] as a slow view: 12 frames, budget 512 * 28 * 28 -> 504x840: 6 * 18 * 30 = 3240 tokens.
CLIP_FAST_TOKENS = 462
CLIP_WHOLE_VIDEO_TOKENS = 3240


def test_out_of_memory_in_a_round_is_recorded_with_the_token_count_and_the_fix(clip, tiny_backend, monkeypatch):
    calls = out_of_memory_on_call(tiny_backend, monkeypatch, failing_call=1)
    nodes, state = run_graph({"video": str(clip), "question": QUESTION}, tiny_backend)
    assert nodes == ["overview", "reason"] and len(calls) == 1
    (error,) = state["errors"]
    assert (error["node"], error["type"]) == ("reason", "GenerationOOMError")
    assert f"out of memory with {CLIP_FAST_TOKENS} visual tokens" in error["message"]
    assert "num_fast / fast_res" in error["message"]  # the settings that lower it
    assert state["answer"] == ""


def test_out_of_memory_in_the_forced_answer_counts_both_views(clip, tiny_backend, monkeypatch):
    out_of_memory_on_call(tiny_backend, monkeypatch, failing_call=2)
    nodes, state = run_graph({"video": str(clip), "question": QUESTION}, tiny_backend)
    assert nodes == ["overview", "reason", "answer"]
    (error,) = state["errors"]
    assert (error["node"], error["type"]) == ("answer", "GenerationOOMError")
    # the forced answer shows the fast view and the whole video as one slow view
    assert f"out of memory with {CLIP_FAST_TOKENS + CLIP_WHOLE_VIDEO_TOKENS} visual tokens" in error["message"]


def test_out_of_memory_on_the_command_line_is_one_line_with_the_fix(clip, tiny_backend, monkeypatch, capfd):
    out_of_memory_on_call(tiny_backend, monkeypatch, failing_call=1)
    monkeypatch.setattr(context_module, "_shared_backend", lambda name, model, kwargs: tiny_backend)
    assert run_cli(["answer", str(clip), QUESTION, "--max-new-tokens", "4", "--num-fast", "8"]) == 1
    out, err = capfd.readouterr()
    # --num-fast 8: 8 frames of 196x308 -> 4 frame pairs * 7 * 11 = 308 tokens
    assert visible_lines(err)[-1].startswith("lover1: error: GenerationOOMError: out of memory with 308 visual tokens")
    assert "num_fast / fast_res" in visible_lines(err)[-1]
    assert "Traceback" not in err
    assert "error in reason: GenerationOOMError" in out  # the trace says which step failed


def test_after_out_of_memory_the_caches_are_dropped_and_the_next_question_runs(clip, tiny_backend, monkeypatch):
    out_of_memory_on_call(tiny_backend, monkeypatch, failing_call=1)
    _, state = run_graph({"video": str(clip), "question": QUESTION}, tiny_backend)
    assert state["errors"][0]["type"] == "GenerationOOMError"
    assert len(tiny_backend._vision_cache) == 0 and len(tiny_backend._prefix_cache) == 0  # memory given back
    monkeypatch.undo()  # the accelerator has room again
    overrides = {"max_new_tokens": 2, **SMALL_VIEWS}
    nodes, state = run_graph({"video": str(clip), "question": QUESTION, "overrides": overrides}, tiny_backend)
    assert state["errors"] == [] and nodes[-1] == "answer"


# --------------------------------------------------------------------------- 3. settings, checked before decoding


BAD_CLI_SETTINGS = [
    (["--num-fast", "0"], "num_fast"),
    (["--num-fast", "-16"], "num_fast"),
    (["--num-slow", "0"], "num_slow"),
    (["--fast-res", "-1"], "fast_res"),
    (["--slow-res", "0"], "slow_res"),
]
BAD_LOOP_SETTINGS = [(["--max-rounds", "-1"], "max_rounds"), (["--max-new-tokens", "0"], "max_new_tokens")]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("flags", "setting"), BAD_CLI_SETTINGS + BAD_LOOP_SETTINGS)
def test_cli_rejects_bad_settings_before_decoding(command, flags, setting, clip, no_decoding, no_model, capfd):
    if command == "plan" and setting in ("max_rounds", "max_new_tokens"):
        with pytest.raises(SystemExit) as exit_info:  # `plan` has no loop flags: argparse says so
            run_cli([*cli_argv(command, clip), *flags])
        assert exit_info.value.code == 2
        return
    assert run_cli([*cli_argv(command, clip), *flags]) == 1
    lines = visible_lines(capfd.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("lover1: error: ConfigError: ") and setting in lines[0]
    assert no_decoding == []


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_rejects_an_unknown_preset_before_decoding(command, clip, no_decoding, capfd):
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*cli_argv(command, clip), "--preset", "egoschema"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'egoschema'" in capfd.readouterr().err
    assert no_decoding == []


def write_checkpoint(folder: Path, config: dict | None) -> Path:
    """A directory that is not a Qwen2.5-VL checkpoint: another model's config.json, or none at all."""
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


# (config.json, what the error must say); the last one has no config.json at all
CHECKPOINTS = [
    pytest.param({"model_type": "llama"}, "is a 'llama' model", id="llama"),
    pytest.param({"model_type": "bert", "hidden_size": 8}, "is a 'bert' model", id="bert"),
    # transformers' own llama config class rejects this one (8 is not a multiple of its 32 heads)
    pytest.param({"model_type": "llama", "hidden_size": 8}, "is a 'llama' model", id="llama-invalid"),
    pytest.param(None, "cannot read a model config", id="no-config-json"),
]


@pytest.mark.parametrize(("config", "message"), CHECKPOINTS)
def test_cli_reports_a_checkpoint_that_is_not_qwen2_5_vl(config, message, clip, tmp_path, capfd):
    folder = write_checkpoint(tmp_path / "not a checkpoint", config)
    assert run_cli(["answer", str(clip), QUESTION, "--model", str(folder), "--max-new-tokens", "4"]) == 1
    last = visible_lines(capfd.readouterr().err)[-1]
    assert last.startswith("lover1: error: CheckpointError: ") and message in last and str(folder) in last
    assert "Traceback" not in last


@pytest.mark.parametrize("config", [{"model_type": "llama"}, None], ids=["llama", "no-config-json"])
def test_cli_checks_the_checkpoint_before_decoding(config, clip, tmp_path, no_decoding, capfd):
    folder = write_checkpoint(tmp_path / "ckpt", config)
    assert run_cli(["answer", str(clip), QUESTION, "--model", str(folder)]) == 1
    lines = visible_lines(capfd.readouterr().err)
    assert lines == [lines[-1]] and lines[-1].startswith("lover1: error: CheckpointError: ")
    assert no_decoding == []


@pytest.mark.parametrize(
    ("fields", "setting"),
    [
        ({"preset": "egoschema"}, "unknown preset 'egoschema'"),
        ({"overrides": {"num_fast": 0}}, "num_fast"),
        ({"overrides": {"num_slow": -4}}, "num_slow"),
        ({"overrides": {"num_frames": 8}}, "unknown setting(s) num_frames"),
        ({"overrides": {"max_rounds": -1}}, "max_rounds"),
    ],
)
def test_graph_records_bad_settings_before_decoding(fields, setting, clip, no_decoding):
    backend = ScriptedBackend([ANSWER_B])
    nodes, state = run_graph({"video": str(clip), "question": QUESTION, **fields}, backend)
    assert nodes == ["overview"] and backend.calls == [] and no_decoding == []
    (error,) = state["errors"]
    assert (error["node"], error["type"]) == ("overview", "ConfigError")
    assert setting in error["message"]


def test_graph_records_a_checkpoint_that_is_not_qwen2_5_vl(clip, tmp_path):
    folder = write_checkpoint(tmp_path / "llama", {"model_type": "llama"})
    graph = build_graph()
    state = graph.invoke(
        {"video": str(clip), "question": QUESTION}, context=LoveR1Context(model=str(folder), renderer=ViewRenderer())
    )
    (error,) = state["errors"]
    assert error["type"] == "CheckpointError" and str(folder) in error["message"]
    assert state["answer"] == ""


def test_graph_checks_the_checkpoint_before_decoding(clip, tmp_path, no_decoding):
    folder = write_checkpoint(tmp_path / "llama", {"model_type": "llama"})
    state = build_graph().invoke(
        {"video": str(clip), "question": QUESTION}, context=LoveR1Context(model=str(folder), renderer=ViewRenderer())
    )
    (error,) = state["errors"]
    assert (error["node"], error["type"]) == ("overview", "CheckpointError")
    assert no_decoding == []


# lmms-eval: the model classes are built as lmms-eval builds them, from --model_args


@pytest.fixture
def no_loading(monkeypatch):
    """Record load_backend calls; a bad setting must fail before any."""
    loads: list[dict] = []

    def load_backend(name, model, **kwargs):
        loads.append({"name": name, "model": model, **kwargs})
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(model_module, "load_backend", load_backend)
    return loads


@pytest.mark.parametrize("cls", [LoveR1Simple, LoveR1Chat])
@pytest.mark.parametrize(
    ("model_args", "message"),
    [
        ("num_slow=-4", "num_slow must be a positive integer"),  # lmms-eval parses "-4" as the float -4.0
        ("fast_res=0", "fast_res must be a positive integer"),
        ("slow_res=-1", "slow_res must be a positive integer"),
        ("num_fast=12.5", "num_fast must be a positive integer"),
        ("num_fast=many", "num_fast must be a positive integer"),
        ("max_new_tokens=0", "max_new_tokens must be a positive integer"),
        ("preset=Video-MME", "unknown preset 'Video-MME'"),  # the benchmark's name, not the preset's
        ("max_new_token=16", "unknown model_args for love_r1: max_new_token"),  # a typo
        ("num_frames=32,fps=2", "unknown model_args for love_r1: fps, num_frames"),  # another model's keys
        ("max_pixels=1605632", "unknown model_args for love_r1: max_pixels"),  # Qwen2.5-VL's lmms-eval key
    ],
)
def test_lmms_eval_model_rejects_bad_model_args_at_start_up(cls, model_args, message, no_loading, no_decoding):
    with pytest.raises(ConfigError) as error:
        cls.create_from_arg_string(f"pretrained=tiny,{model_args}")
    assert message in str(error.value)
    assert no_loading == [] and no_decoding == []


@pytest.mark.parametrize("cls", [LoveR1Simple, LoveR1Chat])
@pytest.mark.parametrize(("config", "message"), CHECKPOINTS)
def test_lmms_eval_model_rejects_a_checkpoint_that_is_not_qwen2_5_vl(cls, config, message, tmp_path, no_decoding):
    folder = write_checkpoint(tmp_path / "ckpt", config)
    with pytest.raises(CheckpointError, match=message) as error:
        cls(pretrained=str(folder), device="cpu")
    assert str(folder) in str(error.value) and no_decoding == []


def test_lmms_eval_model_accepts_good_settings_with_the_tiny_model(tiny_model_path, no_decoding):
    model = LoveR1Chat.create_from_arg_string("pretrained=tiny,num_fast=16,num_slow=4,max_new_tokens=4")
    assert isinstance(model.backend, HFBackend) and model.preset_for({}).view.num_fast == 16
    assert no_decoding == []  # loading a model decodes no video
