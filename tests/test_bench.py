"""The benchmarks: their pure parts, the honesty of the reference-equivalent fast view, and
smoke runs of each script on tiny inputs (they must print their ratio lines)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of the repository, not part of the installed package
    sys.path.insert(0, str(ROOT))

from bench.common import parse_size, question_turns, ratio_line, scaled_questions  # noqa: E402
from lover1_plugin.prompts import ANSWER_PREFIX  # noqa: E402
from lover1_plugin.video import VideoInfo  # noqa: E402

RATIO = re.compile(r"ours [\d,.]+( s)?, reference [\d,.]+( s)?, ratio \d+\.\d\dx \(target [<>]= \d")


def run_bench(module: str, *args: str, timeout: int = 600) -> str:
    """Run ``python -m bench.<module> ...`` from the repository root; return its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,  # `python -m` puts the repository root on sys.path; the environment (LOVER1_CACHE) is inherited
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_ratio_line_reads_reference_over_ours():
    line = ratio_line("prefill tokens per 3-turn question", 1000, 2500, target=2.0)
    assert line == "prefill tokens per 3-turn question: ours 1,000, reference 2,500, ratio 2.50x (target >= 2.0x, met)"
    assert "NOT met" in ratio_line("x", 1000, 1500, target=2.0)


def test_parse_size():
    assert parse_size("360x640") == (360, 640)
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_size("360")


def test_question_turns_follow_the_loop():
    info = VideoInfo("v.mp4", num_frames=1200, fps=2.0, width=640, height=360)
    turns = question_turns(info, "Q?", [(300, 310), (50, 60)])
    # the loop pads and widens each proposal to 30 s; slow views are sorted by start
    assert [[p.label for p in t.plans] for t in turns] == [
        [(0, 600)],
        [(0, 600), (290, 320)],
        [(0, 600), (40, 70), (290, 320)],
    ]
    assert [t.assistant_prefix for t in turns] == [None, None, ANSWER_PREFIX]
    assert [t.skip_special_tokens for t in turns] == [False, False, True]  # the forced answer skips them


def test_scaled_questions_fit_short_videos():
    for _text, zooms in scaled_questions(20.0):
        assert all(0 <= a < b <= 20 for a, b in zooms)


def test_reference_equivalent_fast_view_matches_ours(tmp_path):
    """The benchmark's reference path must compute the same view, or its timings mean nothing."""
    from bench.fast_view import _ours, _plan, _reference
    from lover1_plugin.synthetic import make_test_video

    video = make_test_video(tmp_path / "v.mp4", duration_s=3, fps=10, size=(72, 128))
    plan = _plan(str(video))
    reference = _reference(plan)
    assert reference.shape == (plan.num_frames, 3, plan.height, plan.width)
    for ours in (_ours(plan), _ours(plan, "decord"), _ours(plan, "pyav")):  # the default reader and both readers
        assert bool((ours == reference).all())
    assert bool(ours[..., 0, :, :].gt(ours[..., 1, :, :] + 100).any())  # red timestamps were drawn


@pytest.mark.slow
def test_prefill_script(tmp_path):
    out = run_bench(
        "prefill",
        *("--duration", "20", "--fps", "2", "--size", "96x160", "--questions", "2", "--max-new-tokens", "2"),
        *("--fast-res", "4", "--slow-res", "8", "--num-slow", "4", "--cache-dir", str(tmp_path)),
    )
    assert "greedy outputs token-identical (ours vs reference, every turn): True" in out
    per_question = next(line for line in out.splitlines() if line.startswith("prefill tokens per 3-turn question:"))
    per_video = next(
        line for line in out.splitlines() if line.startswith("prefill tokens per 2 questions on one video:")
    )
    assert RATIO.search(per_question) and RATIO.search(per_video)
    ours, reference = (int(x.replace(",", "")) for x in re.findall(r"(?:ours|reference) ([\d,]+)", per_question))
    assert ours < reference  # reuse skipped the fast view at least in rounds 2 and 3


@pytest.mark.slow
def test_round_time_script(tmp_path):
    out = run_bench(
        "round_time",
        *("--duration", "20", "--fps", "2", "--size", "96x160", "--questions", "1", "--max-new-tokens", "2"),
        *("--repeats", "1", "--fast-res", "4", "--slow-res", "8", "--num-slow", "4", "--cache-dir", str(tmp_path)),
    )
    assert "answers token-identical (every turn of every question and run): True" in out
    line = next(
        line for line in out.splitlines() if line.startswith("wall time per 3-turn question (first on the video):")
    )
    assert RATIO.search(line)


@pytest.mark.slow
def test_fast_view_script(tmp_path):
    out = run_bench("fast_view", "--duration", "4", "--fps", "5", "--size", "72x128", "--cache-dir", str(tmp_path))
    assert "pixels ours vs reference: max abs diff 0, 0 of" in out
    lines = out.splitlines()
    assert any(RATIO.search(line) for line in lines if line.startswith("fast-view wall time (ours):"))
    assert any(line.startswith("fast-view wall time vs decode alone (ours):") for line in lines)
    assert any(line.startswith("fast-view peak RSS (ours):") and "GiB" in line for line in lines)
