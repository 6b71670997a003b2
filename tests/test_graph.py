"""Every edge of the LOVE-R1 graph (SPEC 3 / 3b), driven by scripted model replies on generated videos.

Each test asserts the nodes the run visited (``stream_mode="updates"``), what the model was shown
(the scripted backend records every call) and the final state. Expected intervals are worked by
hand from SPEC 3 in the comments next to them; none is computed with the package's own code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lover1_plugin.backends.scripted import ScriptedBackend
from lover1_plugin.graphs.context import LoveR1Context
from lover1_plugin.graphs.love_r1 import build_graph
from lover1_plugin.synthetic import make_test_video
from lover1_plugin.video import ViewRenderer

ANSWER_PREFIX = "I get the answer.\n\n"  # SPEC 2/3, typed again here
ZOOM_TAIL = "within \\boxed{[start_time, end_time]}."  # end of SPEC 2's zoom instruction
MC_SUFFIX = "Provide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
QUESTION = "What colour is the card?"
# Small frames keep the module fast (about 0.3 s instead of 1 s per slow view); frame counts,
# intervals and labels do not depend on them. Two tests keep the real sizes.
SMALL_VIEWS = {"fast_res": 4, "slow_res": 8}


def ask(video: str, *, overrides: dict | None = None, small: bool = True, **fields) -> dict:
    """Graph input for ``QUESTION`` about ``video``."""
    merged = {**(SMALL_VIEWS if small else {}), **(overrides or {})}
    return {"video": video, "question": QUESTION, **fields, **({"overrides": merged} if merged else {})}


def zoom_reply(interval: str) -> str:
    return f"I need to zoom in on the video.\n\nThe card is too small to read here.\n\\boxed{{{interval}}}"


def answer_reply(letter: str) -> str:
    return f"I get the answer.\n\nThe card is clearly visible.\n\\boxed{{{letter}}}"


@dataclass
class Run:
    """What one streamed run did."""

    nodes: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    state: dict = field(default_factory=dict)

    def events_of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event.get("event") == kind]


def run_graph(inputs: dict, backend: ScriptedBackend, renderer: ViewRenderer) -> Run:
    """Stream one run; collect visited nodes, custom events and the final (output) state."""
    graph = build_graph()
    context = LoveR1Context(backend=backend, renderer=renderer)
    run = Run()
    for mode, chunk in graph.stream(inputs, context=context, stream_mode=["updates", "custom", "values"]):
        if mode == "updates":
            run.nodes.extend(chunk)
        elif mode == "custom":
            run.events.append(chunk)
        else:
            run.state = chunk
    return run


def texts(call) -> list[str]:
    """The text parts of a recorded call's user message, in order."""
    return [part["text"] for part in call.conversation[1]["content"] if part["type"] == "text"]


def labels(call) -> list[tuple[int, int]]:
    return [plan.label for plan in call.plans]


@pytest.fixture(scope="module")
def renderer():
    """One view cache for the module: each video's fast view is rendered once."""
    return ViewRenderer(max_cached_views=64)


@pytest.fixture(scope="module")
def video_600(tmp_path_factory):
    """10 minutes at 1 fps: D = 600, widening width min(30, 600 / 8) = 30 s."""
    return str(make_test_video(tmp_path_factory.mktemp("v") / "v600.mp4", duration_s=600, fps=1, size=(72, 128)))


@pytest.fixture(scope="module")
def video_120(tmp_path_factory):
    """2 minutes at 1 fps: D = 120, widening width min(30, 120 / 8) = 15 s."""
    return str(make_test_video(tmp_path_factory.mktemp("v") / "v120.mp4", duration_s=120, fps=1, size=(72, 128)))


# --------------------------------------------------------------------------- the loop's edges


def test_direct_answer_stops_after_one_turn(video_600, renderer):
    backend = ScriptedBackend([answer_reply("B")])
    run = run_graph(ask(video_600, small=False), backend, renderer)

    assert run.nodes == ["overview", "reason", "answer"]
    assert run.state["answer"] == "B"
    assert run.state["forced"] is False
    assert run.state["intervals"] == []
    assert [r["decision"] for r in run.state["rounds"]] == ["answer"]
    assert "final" not in run.state  # no forced-answer turn
    (call,) = backend.calls
    assert call.assistant_prefix is None and call.skip_special_tokens is False
    full, question = texts(call)
    assert full == "Full video [0, 600]:"
    assert question.startswith(f"{QUESTION}\nBased on the video and the user question") and question.endswith(ZOOM_TAIL)
    assert [plan.kind for plan in call.plans] == ["fast"]


def test_one_zoom_then_answer(video_600, renderer):
    backend = ScriptedBackend([zoom_reply("[100, 110]"), answer_reply("C")])
    run = run_graph(ask(video_600, small=False), backend, renderer)

    assert run.nodes == ["overview", "reason", "zoom", "reason", "answer"]
    # [100, 110] padded by 5 s: [95, 115], width 20 < 30: re-centred on 105 with width 30.
    assert run.state["intervals"] == [[90, 120]]
    assert run.state["answer"] == "C" and run.state["forced"] is False
    first, second = run.state["rounds"]
    assert first["proposal"] == [100, 110] and first["interval"] == [90, 120]
    assert second["decision"] == "answer"
    assert len(backend.calls) == 2
    call = backend.calls[1]
    assert texts(call)[:2] == ["Full video [0, 600]:", "Subset zoom-in video clip [90, 120]:"]
    assert labels(call) == [(0, 600), (90, 120)]
    slow = call.plans[1]
    # 30 s at 1 fps: frames 90 ... 120, n = min(int(30 * 2), 32) = 32.
    assert (slow.num_frames, slow.frame_ids[0], slow.frame_ids[-1]) == (32, 90, 120)
    assert call.assistant_prefix is None


def test_two_zooms_then_forced_answer(video_600, renderer):
    backend = ScriptedBackend([zoom_reply("[300, 340]"), zoom_reply("[100, 110]"), "So the card reads \\boxed{ D }"])
    run = run_graph(ask(video_600), backend, renderer)

    assert run.nodes == ["overview", "reason", "zoom", "reason", "zoom", "answer"]
    # round 1: [295, 345] (width 50 >= 30, not widened); round 2: [90, 120] as above.
    assert run.state["intervals"] == [[90, 120], [295, 345]]
    assert [r["interval"] for r in run.state["rounds"]] == [[295, 345], [90, 120]]
    assert run.state["answer"] == " D "  # the forced answer's box content is not stripped (SPEC 3)
    assert run.state["forced"] is True
    assert run.state["final"]["intervals"] == [[90, 120], [295, 345]]

    round_2, forced = backend.calls[1], backend.calls[2]
    assert texts(round_2)[1] == "Subset zoom-in video clip [295, 345]:"
    assert forced.assistant_prefix == ANSWER_PREFIX
    assert forced.skip_special_tokens is True
    # Both slow views, sorted by start, each after its label; the views in the same order.
    assert texts(forced)[:3] == [
        "Full video [0, 600]:",
        "Subset zoom-in video clip [90, 120]:",
        "Subset zoom-in video clip [295, 345]:",
    ]
    assert labels(forced) == [(0, 600), (90, 120), (295, 345)]
    assert texts(forced)[-1].endswith(ZOOM_TAIL)  # the same conversation, instruction included
    assert len(backend.calls) == 3


def test_two_zoom_run_streams_progress_events(video_600, renderer):
    backend = ScriptedBackend([zoom_reply("[300, 340]"), zoom_reply("[100, 110]"), "\\boxed{D}"])
    run = run_graph(ask(video_600), backend, renderer)

    (decoded,) = run.events_of("frames_decoded")
    assert decoded["frames"] == 768  # min(int(600 * 2), 768)
    assert [(e["round"], e["intervals"]) for e in run.events_of("round_started")] == [(1, []), (2, [[295, 345]])]
    assert [e["interval"] for e in run.events_of("interval_chosen")] == [[295, 345], [90, 120]]
    assert [(e["answer"], e["forced"]) for e in run.events_of("answer")] == [("D", True)]
    kinds = [e["event"] for e in run.events]
    assert kinds.index("frames_decoded") < kinds.index("round_started") < kinds.index("interval_chosen")
    assert kinds[-1] == "answer"


@pytest.mark.parametrize(
    "reply",
    [
        "I think the card is blue.",  # no box
        "I get the answer.\n\n\\boxed{ }",  # empty box
        zoom_reply("[ten, twenty]"),  # not integers
        zoom_reply("[12.5, 30]"),  # decimals: the reference parse sends them to the forced answer
    ],
)
def test_unparseable_reply_forces_an_answer_on_the_whole_video(video_600, renderer, reply):
    backend = ScriptedBackend([reply, "\\boxed{A}"])
    run = run_graph(ask(video_600), backend, renderer)

    assert run.nodes == ["overview", "reason", "answer"]
    assert run.state["rounds"][0]["decision"] == "invalid"
    assert run.state["answer"] == "A" and run.state["forced"] is True
    assert run.state["intervals"] == []
    forced = backend.calls[1]
    assert forced.assistant_prefix == ANSWER_PREFIX
    assert texts(forced)[1] == "Subset zoom-in video clip [0, 600]:"
    whole = forced.plans[1]
    assert (whole.kind, whole.label, whole.num_frames) == ("slow", (0, 600), 32)
    assert run.state["final"]["intervals"] == [[0, 600]]


def test_lenient_parse_zooms_on_decimals(video_600, renderer):
    backend = ScriptedBackend([zoom_reply("[12.5, 30]"), answer_reply("A")])
    run = run_graph(ask(video_600, overrides={"lenient": True}), backend, renderer)
    assert run.nodes == ["overview", "reason", "zoom", "reason", "answer"]
    # lenient: [12, 30] (start floored, end ceiled); padded [7, 35], width 28 < 30:
    # mid 21, s = int(21 - 15) = 6, e = int(21 + 15) = 36.
    assert run.state["intervals"] == [[6, 36]]


@pytest.mark.parametrize(
    "box",
    [
        "[900, 950]",  # past the end: s = 895, e = min(955, 600) = 600, width -295 < 3
        "[-20, -10]",  # before the start: s = 0, e = -5
    ],
)
def test_interval_rejected_by_width_forces_an_answer(video_600, renderer, box):
    backend = ScriptedBackend([zoom_reply(box), "\\boxed{B}"])
    run = run_graph(ask(video_600), backend, renderer)

    assert run.nodes == ["overview", "reason", "zoom", "answer"]
    assert run.state["intervals"] == []
    record = run.state["rounds"][0]
    assert record["interval"] is None and record["outcome"].startswith("forced answer")
    (rejected,) = run.events_of("zoom_rejected")
    assert "narrower than 3 s" in rejected["reason"]
    assert run.events_of("interval_chosen") == []
    forced = backend.calls[1]
    assert forced.assistant_prefix == ANSWER_PREFIX
    assert labels(forced) == [(0, 600), (0, 600)]  # nothing zoomed: the whole video as the slow view
    assert run.state["answer"] == "B"


def test_interval_rejected_by_iou_forces_an_answer_on_the_zoomed_clip(video_600, renderer):
    # round 2: [105, 125] -> [100, 130]; with [90, 120]: overlap 20, union 40, IoU 0.5 > 0.3.
    backend = ScriptedBackend([zoom_reply("[100, 110]"), zoom_reply("[105, 125]"), "\\boxed{C}"])
    run = run_graph(ask(video_600), backend, renderer)

    assert run.nodes == ["overview", "reason", "zoom", "reason", "zoom", "answer"]
    assert run.state["intervals"] == [[90, 120]]
    assert run.state["rounds"][1]["interval"] is None
    assert "IoU 0.50 > 0.3" in run.state["rounds"][1]["outcome"]
    assert labels(backend.calls[2]) == [(0, 600), (90, 120)]
    assert run.state["answer"] == "C" and run.state["forced"] is True


def test_interval_just_under_the_iou_limit_is_zoomed(video_600, renderer):
    # round 2: [112, 132] -> [107, 137]; with [90, 120]: overlap 13, union 47, IoU 0.277 <= 0.3.
    backend = ScriptedBackend([zoom_reply("[100, 110]"), zoom_reply("[112, 132]"), "\\boxed{C}"])
    run = run_graph(ask(video_600), backend, renderer)

    assert run.nodes == ["overview", "reason", "zoom", "reason", "zoom", "answer"]
    assert run.state["intervals"] == [[90, 120], [107, 137]]
    assert labels(backend.calls[2]) == [(0, 600), (90, 120), (107, 137)]


@pytest.mark.parametrize(
    ("video", "box", "preset", "expected", "slow_frames"),
    [
        # D = 600: padded [95, 115]; default widens to 30 s around 105; LongVideoBench keeps it
        # and samples min(int(20 * 2), 16) = 16 frames instead of min(60, 32) = 32.
        ("video_600", "[100, 110]", "default", [90, 120], 32),
        ("video_600", "[100, 110]", "longvideobench", [95, 115], 16),
        # D = 120: padded [45, 59], width 14 < min(30, 120 / 8) = 15: mid 52,
        # s = int(52 - 7.5) = 44, e = int(52 + 7.5) = 59. LongVideoBench: [45, 59], 16 frames.
        ("video_120", "[50, 54]", "default", [44, 59], 30),
        ("video_120", "[50, 54]", "longvideobench", [45, 59], 16),
    ],
)
def test_widening_per_preset(request, renderer, video, box, preset, expected, slow_frames):
    path = request.getfixturevalue(video)
    backend = ScriptedBackend([zoom_reply(box), answer_reply("A")])
    run = run_graph(ask(path, options=["red", "blue"], preset=preset), backend, renderer)
    assert run.nodes == ["overview", "reason", "zoom", "reason", "answer"]
    assert run.state["intervals"] == [expected]
    slow = backend.calls[1].plans[1]
    assert slow.label == tuple(expected) and slow.num_frames == slow_frames
    if preset == "longvideobench":  # its own question format (SPEC 2)
        assert texts(backend.calls[0])[-1].startswith(
            f"{QUESTION}\nA. red\nB. blue\nAnswer with the option's letter from the given choices directly.\n"
        )


@pytest.mark.parametrize(
    ("preset", "options", "question_text"),
    [
        # SPEC 3b: Video-MME's suffix loses its leading newline in single-pass mode.
        ("videomme", ["A. red", "B. blue"], f"{QUESTION}\nA. red\nB. blue\n{MC_SUFFIX}"),
        ("mlvu", ["red", "blue"], f"{QUESTION}\nOptions:\n(A) red\n(B) blue\n{MC_SUFFIX}"),
    ],
)
def test_single_pass_mode(video_600, renderer, preset, options, question_text):
    backend = ScriptedBackend(["B. blue, as the card shows"])
    run = run_graph(ask(video_600, options=options, preset=preset, overrides={"mode": "single"}), backend, renderer)

    assert run.nodes == ["overview", "answer"]
    assert run.state["answer"] == "B. blue, as the card shows"  # the whole reply (SPEC 3b)
    assert run.state["rounds"] == []
    (call,) = backend.calls
    assert call.assistant_prefix is None
    assert texts(call) == ["Full video [0, 600]:", "Subset zoom-in video clip [0, 600]:", question_text]
    fast, whole = call.plans
    # No per-benchmark overrides in this mode: MLVU's 384 fast frames become 768.
    assert fast.num_frames == 768 and (whole.label, whole.num_frames) == ((0, 600), 32)


def test_max_rounds_zero_goes_straight_to_the_forced_answer(video_600, renderer):
    backend = ScriptedBackend(["\\boxed{B}"])
    run = run_graph(ask(video_600, overrides={"max_rounds": 0}), backend, renderer)

    assert run.nodes == ["overview", "answer"]
    (call,) = backend.calls
    assert call.assistant_prefix == ANSWER_PREFIX
    assert labels(call) == [(0, 600), (0, 600)]
    assert texts(call)[-1].endswith(ZOOM_TAIL)
    assert run.state["answer"] == "B" and run.state["forced"] is True


def test_max_rounds_one_forces_the_answer_after_one_zoom(video_600, renderer):
    backend = ScriptedBackend([zoom_reply("[100, 110]"), "\\boxed{B}"])
    run = run_graph(ask(video_600, overrides={"max_rounds": 1}), backend, renderer)

    assert run.nodes == ["overview", "reason", "zoom", "answer"]
    assert labels(backend.calls[1]) == [(0, 600), (90, 120)]
    assert backend.calls[1].assistant_prefix == ANSWER_PREFIX


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("content", [b"this is not a video at all", None])
def test_bad_video_is_recorded_in_state(tmp_path, renderer, content):
    path = tmp_path / "broken.mp4"
    if content is not None:
        path.write_bytes(content)
    backend = ScriptedBackend([answer_reply("A")])
    run = run_graph(ask(str(path)), backend, renderer)

    assert run.nodes == ["overview"]
    assert run.state["answer"] == ""
    (error,) = run.state["errors"]
    assert error["node"] == "overview"
    assert error["type"] == "VideoDecodeError"
    assert "broken.mp4" in error["message"]
    assert backend.calls == []


def test_backend_failure_in_a_round_is_recorded(video_600, renderer):
    backend = ScriptedBackend([])  # raises BackendError on the first call
    run = run_graph(ask(video_600), backend, renderer)

    assert run.nodes == ["overview", "reason"]
    (error,) = run.state["errors"]
    assert (error["node"], error["type"]) == ("reason", "BackendError")
    assert run.state["answer"] == ""


def test_backend_failure_in_the_forced_answer_is_recorded(video_600, renderer):
    backend = ScriptedBackend(["no box here"])
    run = run_graph(ask(video_600), backend, renderer)

    assert run.nodes == ["overview", "reason", "answer"]
    (error,) = run.state["errors"]
    assert (error["node"], error["type"]) == ("answer", "BackendError")
    assert run.state["answer"] == ""


def test_invoke_returns_the_streamed_final_state(video_600, renderer):
    replies = [zoom_reply("[100, 110]"), answer_reply("C")]
    streamed = run_graph(ask(video_600), ScriptedBackend(replies), renderer).state
    invoked = build_graph().invoke(
        ask(video_600), context=LoveR1Context(backend=ScriptedBackend(replies), renderer=renderer)
    )
    # invoke returns the output schema only: the answer and its history, not the loop's bookkeeping
    assert set(invoked) == {"answer", "forced", "rounds", "intervals", "duration", "fast_view", "errors"}
    assert invoked == {key: streamed[key] for key in invoked}
