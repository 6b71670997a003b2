"""``examples/router_subgraph.py``: the LOVE-R1 graph embedded in a router graph, run offline."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "router_subgraph.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("router_subgraph_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def video(example, tmp_path_factory) -> str:
    return example.demo_video(tmp_path_factory.mktemp("needle"))


def stream_steps(router, inputs, context) -> list[tuple[str, str]]:
    """(graph, node) for every step, the LOVE-R1 subgraph's own steps included."""
    steps = []
    for namespace, update in router.stream(inputs, context=context, stream_mode="updates", subgraphs=True):
        graph = namespace[-1].split(":")[0] if namespace else "router"
        steps.extend((graph, node) for node in update)
    return steps


def test_video_question_runs_the_love_r1_loop_as_a_subgraph(example, video):
    backend = example.scripted_model()
    context = example.RouterContext(backend=backend)
    inputs = {"question": example.VIDEO_QUESTION, "video": video, "options": example.VIDEO_OPTIONS}
    steps = stream_steps(example.build_router(), inputs, context)

    assert steps == [
        ("router", "route"),
        ("love_r1", "overview"),
        ("love_r1", "reason"),
        ("love_r1", "zoom"),
        ("love_r1", "reason"),
        ("love_r1", "answer"),
        ("router", "love_r1"),
    ]
    state = example.build_router().invoke(inputs, context=example.RouterContext(backend=example.scripted_model()))
    assert state["route"] == "video"
    assert state["answer"] == "B" and state["forced"] is False
    # the needle shows during [40, 46): padded to [35, 51], 16 s >= min(30, 120 / 8), not widened
    assert state["intervals"] == [[35, 51]]
    assert [r["decision"] for r in state["rounds"]] == ["zoom", "answer"]
    # the subgraph saw the router's options, formatted by LOVE-R1's default (MLVU) rule
    question_text = backend.calls[0].conversation[1]["content"][-1]["text"]
    assert question_text.startswith(example.VIDEO_QUESTION + "\nOptions:\n(A) APPLE\n(B) PIANO")


def test_text_question_skips_the_video_graph(example):
    backend = example.scripted_model()
    state = example.build_router().invoke(
        {"question": example.TEXT_QUESTION}, context=example.RouterContext(backend=backend, text_max_new_tokens=32)
    )
    assert state["route"] == "text" and state["answer"] == "Paris."
    assert "rounds" not in state  # LOVE-R1 never ran
    (call,) = backend.calls
    assert call.plans == () and call.max_new_tokens == 32
    user_text = call.conversation[1]["content"][0]["text"]
    assert user_text == example.TEXT_QUESTION  # no zoom instruction for a text question


def test_unreadable_video_is_reported_by_the_subgraph(example, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    state = example.build_router().invoke(
        {"question": example.VIDEO_QUESTION, "video": str(broken)},
        context=example.RouterContext(backend=example.scripted_model()),
    )
    assert state["route"] == "video" and state["answer"] == ""
    assert state["errors"][0]["node"] == "overview"


def test_router_picture_shows_the_embedded_loop(example):
    picture = example.build_router().get_graph(xray=1).draw_mermaid()
    assert "subgraph love_r1" in picture
    for node in ("overview", "reason", "zoom", "answer"):
        assert f"love_r1\\3a{node}({node})" in picture
    assert "route -.-> text_qa;" in picture


def test_main_with_scripted_replies(example, capsys):
    assert example.main(["--scripted"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"[video] {example.VIDEO_QUESTION}" in out
    assert "  zoomed: [[35, 51]]  forced: False" in out
    assert "  answer: 'B'" in out
    assert f"[text] {example.TEXT_QUESTION}" in out and "  answer: 'Paris.'" in out


@pytest.mark.slow
def test_main_with_the_tiny_model(example, tiny_model_path, capsys):
    assert example.main(["--model", "tiny", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    # The tiny random model never boxes: its video question ends in the forced answer.
    assert "[video]" in out and "round 1: invalid -> forced answer" in out and "forced: True" in out
    assert "[text]" in out
    assert "error in" not in out
