"""The shape of the LOVE-R1 graph: nodes, edges, the mermaid picture and the schemas a server shows.

The mermaid text is compared with ``tests/snapshots/love_r1.mmd``. After a deliberate change to
the graph, regenerate the snapshot with::

    UPDATE_SNAPSHOTS=1 python -m pytest tests/test_graph_structure.py

and review the diff of the ``.mmd`` file before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

from lover1_plugin.graphs.love_r1 import NODES, build_graph, graph

SNAPSHOT = Path(__file__).parent / "snapshots" / "love_r1.mmd"

# (source, target, conditional): every way a run can move, SPEC 3 / 3b.
EXPECTED_EDGES = {
    ("__start__", "overview", False),
    ("overview", "reason", True),  # the zoom loop
    ("overview", "answer", True),  # single-pass mode, or max_rounds = 0
    ("overview", "__end__", True),  # the video cannot be read
    ("reason", "zoom", True),  # the reply asked to zoom
    ("reason", "answer", True),  # a direct answer, or an unreadable reply (forced answer)
    ("reason", "__end__", True),  # the backend failed
    ("zoom", "reason", True),  # the interval was accepted and rounds are left
    ("zoom", "answer", True),  # round cap, or the interval was rejected (width, IoU)
    ("zoom", "__end__", True),  # rendering the slow view failed
    ("answer", "__end__", False),
}


def test_nodes_are_the_four_steps_of_the_loop():
    drawn = graph.get_graph()
    assert set(drawn.nodes) == {"__start__", "__end__", *NODES}
    assert NODES == ("overview", "reason", "zoom", "answer")


def test_edges():
    edges = {(edge.source, edge.target, edge.conditional) for edge in graph.get_graph().edges}
    assert edges == EXPECTED_EDGES


def test_mermaid_matches_the_snapshot():
    drawn = graph.get_graph().draw_mermaid()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(drawn)
    assert SNAPSHOT.exists(), f"no snapshot at {SNAPSHOT}; create it with UPDATE_SNAPSHOTS=1"
    assert drawn == SNAPSHOT.read_text(), (
        "the graph's mermaid picture changed; if the change is deliberate, regenerate the snapshot with "
        "UPDATE_SNAPSHOTS=1 python -m pytest tests/test_graph_structure.py and review its diff"
    )


def test_human_in_the_loop_graph_marks_the_pause_before_zoom():
    paused = build_graph(interrupt_before_zoom=True)
    assert "zoom(zoom<hr/><small><em>__interrupt = before</em></small>)" in paused.get_graph().draw_mermaid()
    assert {(e.source, e.target, e.conditional) for e in paused.get_graph().edges} == EXPECTED_EDGES


def test_compiled_graph_is_named_for_langgraph_json():
    assert graph.name == "love_r1"
    assert build_graph(name="video_qa").name == "video_qa"


def test_input_schema_asks_for_video_and_question():
    """LangGraph Studio and ``/assistants/{id}/schemas`` build their input form from this schema."""
    schema = graph.get_input_jsonschema()
    assert set(schema["required"]) == {"video", "question"}
    assert {"options", "preset", "overrides", "question_text"} <= set(schema["properties"])
    assert not {"status", "proposal", "round"} & set(schema["properties"])  # bookkeeping stays internal


def test_output_schema_has_the_answer_and_its_history():
    schema = graph.get_output_jsonschema()
    assert {"answer", "rounds", "intervals", "errors"} <= set(schema["properties"])
