"""Checkpointing and human-in-the-loop: a LOVE-R1 run stopped after its first zoom resumes where it stopped.

A resumed run must give the answer an uninterrupted run gives, must not ask the model again for
turns that already finished, and must survive a new graph instance (a new process, in practice)
that only shares the checkpoint database and the thread id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from lover1_plugin.backends.scripted import ScriptedBackend
from lover1_plugin.graphs.context import LoveR1Context
from lover1_plugin.graphs.love_r1 import build_graph
from lover1_plugin.synthetic import make_test_video
from lover1_plugin.video import ViewRenderer

QUESTION = "What colour is the card?"
SMALL_VIEWS = {"fast_res": 4, "slow_res": 8}  # small frames keep the module fast; intervals do not depend on them
ANSWER_PREFIX = "I get the answer.\n\n"
# D = 600: round 1 zooms on [300, 340] -> [295, 345]; round 2 on [100, 110] -> [90, 120]; then the forced answer.
REPLIES = [
    "I need to zoom in on the video.\n\n\\boxed{[300, 340]}",
    "I need to zoom in on the video.\n\n\\boxed{[100, 110]}",
    "The card reads \\boxed{D}",
]


class ProcessKilled(BaseException):
    """Stands in for the process dying mid-run (not an ``Exception``: the nodes do not record it)."""


class CrashingBackend(ScriptedBackend):
    """A scripted backend whose call number ``crash_on`` (1-based) kills the 'process'."""

    def __init__(self, replies, crash_on: int) -> None:
        super().__init__(replies)
        self.crash_on = crash_on
        self.attempts = 0

    def generate(self, conversation, views, **kwargs):
        self.attempts += 1
        if self.attempts == self.crash_on:
            raise ProcessKilled(f"killed during call {self.attempts}")
        return super().generate(conversation, views, **kwargs)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    return str(make_test_video(tmp_path_factory.mktemp("v") / "v600.mp4", duration_s=600, fps=1, size=(72, 128)))


@pytest.fixture(scope="module")
def renderer() -> ViewRenderer:
    return ViewRenderer(max_cached_views=32)


@pytest.fixture
def inputs(video) -> dict:
    return {"video": video, "question": QUESTION, "overrides": SMALL_VIEWS}


@pytest.fixture(params=["memory", "sqlite"])
def open_saver(request, tmp_path) -> Iterator[Callable[[], object]]:
    """A factory of checkpointer handles on one store: a new SQLite connection to the same file
    each call (what a restarted process does), or the one in-memory saver."""
    if request.param == "memory":
        saver = InMemorySaver()
        yield lambda: saver
        return
    path = tmp_path / "checkpoints.sqlite"
    connections: list[sqlite3.Connection] = []

    def open_sqlite() -> SqliteSaver:
        connections.append(sqlite3.connect(path, check_same_thread=False))
        return SqliteSaver(connections[-1])

    yield open_sqlite
    for connection in connections:
        connection.close()


def context(backend, renderer) -> LoveR1Context:
    return LoveR1Context(backend=backend, renderer=renderer)


def config(thread: str) -> dict:
    return {"configurable": {"thread_id": thread}}


def labels(call) -> list[tuple[int, int]]:
    return [plan.label for plan in call.plans]


@pytest.fixture
def uninterrupted(inputs, renderer) -> dict:
    backend = ScriptedBackend(REPLIES)
    result = build_graph().invoke(inputs, context=context(backend, renderer))
    assert len(backend.calls) == 3 and result["answer"] == "D"
    return result


def test_resume_after_an_interrupt_on_a_new_graph(open_saver, inputs, renderer, uninterrupted):
    first_backend = ScriptedBackend(REPLIES)
    first = build_graph(checkpointer=open_saver())
    partial = first.invoke(inputs, config("t1"), context=context(first_backend, renderer), interrupt_after=["zoom"])
    assert partial["intervals"] == [[295, 345]] and "answer" not in partial
    assert len(first_backend.calls) == 1

    second = build_graph(checkpointer=open_saver())  # nothing shared but the store and the thread id
    paused = second.get_state(config("t1"))
    assert paused.next == ("reason",)
    assert paused.values["round"] == 1 and paused.values["intervals"] == [[295, 345]]

    second_backend = ScriptedBackend(REPLIES[1:])  # only the turns still to come
    result = second.invoke(None, config("t1"), context=context(second_backend, renderer))

    assert result == uninterrupted
    assert len(second_backend.calls) == 2  # round 2 and the forced answer; round 1 was not asked again
    assert labels(second_backend.calls[0]) == [(0, 600), (295, 345)]  # round 2 sees round 1's zoom
    assert second_backend.calls[1].assistant_prefix == ANSWER_PREFIX
    assert second.get_state(config("t1")).next == ()


def test_resume_after_a_crash_in_round_two(open_saver, inputs, renderer, uninterrupted):
    crashing = CrashingBackend(REPLIES, crash_on=2)
    first = build_graph(checkpointer=open_saver())
    with pytest.raises(ProcessKilled):
        first.invoke(inputs, config("t2"), context=context(crashing, renderer))
    assert len(crashing.calls) == 1

    second = build_graph(checkpointer=open_saver())
    assert second.get_state(config("t2")).next == ("reason",)
    second_backend = ScriptedBackend(REPLIES[1:])
    result = second.invoke(None, config("t2"), context=context(second_backend, renderer))

    assert result == uninterrupted
    assert len(second_backend.calls) == 2
    assert [r["raw"] for r in result["rounds"]] == REPLIES[:2]  # round 1's text survived the crash


def test_threads_are_independent(open_saver, inputs, renderer):
    graph = build_graph(checkpointer=open_saver())
    graph.invoke(inputs, config("a"), context=context(ScriptedBackend(REPLIES), renderer), interrupt_after=["zoom"])
    other = graph.invoke(
        inputs, config("b"), context=context(ScriptedBackend(["I get the answer.\n\n\\boxed{A}"]), renderer)
    )
    assert other["answer"] == "A" and other["intervals"] == []
    assert graph.get_state(config("a")).next == ("reason",)


def test_human_changes_the_proposed_interval(open_saver, inputs, renderer):
    graph = build_graph(checkpointer=open_saver(), interrupt_before_zoom=True)
    backend = ScriptedBackend([REPLIES[1], "I get the answer.\n\n\\boxed{B}"])
    graph.invoke(inputs, config("h1"), context=context(backend, renderer))

    paused = graph.get_state(config("h1"))
    assert paused.next == ("zoom",)
    assert paused.values["proposal"] == [100, 110]  # the model's box, before padding
    graph.update_state(config("h1"), {"proposal": [400, 420]})

    result = build_graph(checkpointer=open_saver(), interrupt_before_zoom=True).invoke(
        None, config("h1"), context=context(backend, renderer)
    )
    # The human's [400, 420] goes through the same rules: padded to [395, 425], 30 s, not widened.
    assert result["intervals"] == [[395, 425]]
    assert labels(backend.calls[1]) == [(0, 600), (395, 425)]
    assert result["answer"] == "B"
    assert len(backend.calls) == 2


def test_human_approves_the_proposal(open_saver, inputs, renderer):
    graph = build_graph(checkpointer=open_saver(), interrupt_before_zoom=True)
    backend = ScriptedBackend(REPLIES)
    graph.invoke(inputs, config("h2"), context=context(backend, renderer))
    assert graph.get_state(config("h2")).values["proposal"] == [300, 340]
    graph.invoke(None, config("h2"), context=context(backend, renderer))  # approve round 1 as proposed
    paused = graph.get_state(config("h2"))
    assert paused.next == ("zoom",) and paused.values["proposal"] == [100, 110]  # paused again in round 2
    result = graph.invoke(None, config("h2"), context=context(backend, renderer))
    assert result["intervals"] == [[90, 120], [295, 345]]
    assert result["answer"] == "D"


def test_human_proposal_is_checked_like_the_models(open_saver, inputs, renderer):
    graph = build_graph(checkpointer=open_saver(), interrupt_before_zoom=True)
    backend = ScriptedBackend([REPLIES[1], "\\boxed{C}"])
    graph.invoke(inputs, config("h3"), context=context(backend, renderer))
    graph.update_state(config("h3"), {"proposal": [900, 950]})  # past the end of a 600 s video
    result = graph.invoke(None, config("h3"), context=context(backend, renderer))
    assert result["intervals"] == []
    assert result["forced"] is True and result["answer"] == "C"
    assert labels(backend.calls[1]) == [(0, 600), (0, 600)]


def test_malformed_human_proposal_is_recorded_as_a_zoom_error(open_saver, inputs, renderer):
    graph = build_graph(checkpointer=open_saver(), interrupt_before_zoom=True)
    backend = ScriptedBackend([REPLIES[1]])
    graph.invoke(inputs, config("h4"), context=context(backend, renderer))
    graph.update_state(config("h4"), {"proposal": [42]})
    result = graph.invoke(None, config("h4"), context=context(backend, renderer))
    (error,) = result["errors"]
    assert error["node"] == "zoom" and "[42]" in error["message"]
    assert result["answer"] == ""
    assert graph.get_state(config("h4")).next == ()


def test_interrupt_before_zoom_needs_no_human_when_the_model_answers(open_saver, inputs, renderer):
    graph = build_graph(checkpointer=open_saver(), interrupt_before_zoom=True)
    result = graph.invoke(
        inputs, config("h5"), context=context(ScriptedBackend(["I get the answer.\n\n\\boxed{A}"]), renderer)
    )
    assert result["answer"] == "A"
    assert graph.get_state(config("h5")).next == ()


def test_sqlite_checkpoint_file_outlives_its_connection(tmp_path, inputs, renderer, uninterrupted):
    """The checkpoint database is an ordinary file: close every connection, reopen, resume."""
    path = tmp_path / "runs.sqlite"
    with closing(sqlite3.connect(path, check_same_thread=False)) as connection:
        graph = build_graph(checkpointer=SqliteSaver(connection))
        graph.invoke(inputs, config("f"), context=context(ScriptedBackend(REPLIES), renderer), interrupt_after=["zoom"])
    assert path.stat().st_size > 0
    with closing(sqlite3.connect(path, check_same_thread=False)) as connection:
        graph = build_graph(checkpointer=SqliteSaver(connection))
        result = graph.invoke(None, config("f"), context=context(ScriptedBackend(REPLIES[1:]), renderer))
    assert result == uninterrupted
