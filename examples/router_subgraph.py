"""The LOVE-R1 graph inside a larger LangGraph app: a router sends video questions to it, text questions elsewhere.

::

    START -> route --(a video is attached)--> love_r1 (the LOVE-R1 graph, as a subgraph) -> END
                   \\-(text only)-----------> text_qa (the same model, no video)         -> END

The compiled LOVE-R1 graph is added as a node as it is (``add_node("love_r1", build_graph())``):
the router's state shares the keys of LOVE-R1's input (``video``, ``question``, ``options``,
``preset``, ``overrides``) and output (``answer``, ``rounds``, ``intervals``, ``errors``...), so
nothing needs mapping, and ``stream(..., subgraphs=True)`` shows the loop's own steps. The run-time
context is a subclass of ``LoveR1Context``: it reaches the subgraph's nodes unchanged, with the
backend and view cache they need, plus the router's own settings.

Offline, on this machine::

    python examples/router_subgraph.py             # the tiny random model (it rambles; never zooms)
    python examples/router_subgraph.py --scripted  # scripted replies that zoom, to show the loop's shape
    python examples/router_subgraph.py --model /path/to/love-r1-stage3 --max-new-tokens 2048
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import NotRequired, Required, TypedDict

from lover1_plugin.backends import ScriptedBackend
from lover1_plugin.graphs.context import LoveR1Context
from lover1_plugin.graphs.love_r1 import build_graph as build_love_r1
from lover1_plugin.graphs.state import ErrorRecord, RoundRecord
from lover1_plugin.synthetic import make_needle_video

TEXT_SYSTEM_PROMPT = "You are a helpful assistant."  # Qwen2.5-VL's default system prompt

# The demo video: 2 minutes at 1 fps; the word is readable only in a zoomed clip.
NEEDLE_WORD = "PIANO"
NEEDLE_SPAN = (40.0, 46.0)
VIDEO_QUESTION = "A word is shown briefly on a small white card in this video. Which word is it?"
VIDEO_OPTIONS = ["A. APPLE", "B. PIANO", "C. RIVER", "D. ROBOT"]
TEXT_QUESTION = "What is the capital of France?"


class RouterState(TypedDict, total=False):
    """The router's state: one question, maybe a video, and whichever branch's answer."""

    question: Required[str]
    video: NotRequired[str | None]
    options: NotRequired[list[str]]
    preset: NotRequired[str]
    overrides: NotRequired[dict]
    route: Literal["video", "text"]
    answer: str
    # filled by the LOVE-R1 subgraph (same names as its output schema)
    forced: bool
    rounds: list[RoundRecord]
    intervals: list[list[int]]
    errors: list[ErrorRecord]


@dataclass
class RouterContext(LoveR1Context):
    """LOVE-R1's context (backend, model, preset, view cache) plus the text branch's settings."""

    text_max_new_tokens: int = 256


def route(state: RouterState) -> dict[str, Any]:
    """Video questions go to LOVE-R1; questions without a video go to the text branch."""
    return {"route": "video" if state.get("video") else "text"}


def pick_branch(state: RouterState) -> Literal["love_r1", "text_qa"]:
    if state["route"] == "video":
        return "love_r1"
    if state["route"] == "text":
        return "text_qa"
    raise ValueError(f"unexpected route {state['route']!r}")


def text_qa(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """Answer a text-only question with the same model (no views, no zoom instruction)."""
    ctx = runtime.context
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": TEXT_SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "text", "text": state["question"]}]},
    ]
    reply = ctx.get_backend().generate(
        conversation, [], max_new_tokens=ctx.text_max_new_tokens, skip_special_tokens=True
    )
    return {"answer": reply.strip()}


def build_router(checkpointer: Any = None):
    """Compile the router with the LOVE-R1 graph embedded as the ``love_r1`` node."""
    builder = StateGraph(RouterState, context_schema=RouterContext)
    builder.add_node("route", route)
    builder.add_node("love_r1", build_love_r1())
    builder.add_node("text_qa", text_qa)
    builder.add_edge(START, "route")
    builder.add_conditional_edges("route", pick_branch)
    builder.add_edge("love_r1", END)
    builder.add_edge("text_qa", END)
    return builder.compile(checkpointer=checkpointer, name="video_or_text_router")


def scripted_model() -> ScriptedBackend:
    """Replies a trained checkpoint might give, chosen from what each turn shows the model.

    Text only: an answer. Fast view only: ask to zoom on the card's seconds. With a zoomed
    clip: answer the letter of the needle word.
    """

    def reply(conversation: list[dict], views: Sequence, assistant_prefix: str | None) -> str:
        if not views:
            return "Paris."
        if len(views) == 1 and assistant_prefix is None:
            start, end = (int(t) for t in NEEDLE_SPAN)
            return f"I need to zoom in on the video.\n\nA small card appears near {start} s.\\boxed{{[{start}, {end}]}}"
        return "I get the answer.\n\nThe card reads PIANO, option B.\\boxed{B}"

    return ScriptedBackend(reply)


def demo_video(folder: str | Path) -> str:
    """Write the 2-minute needle video (180x320, 1 fps) and return its path."""
    video = make_needle_video(
        Path(folder) / "needle.mp4", duration_s=120, fps=1.0, size=(180, 320),
        needle_span=NEEDLE_SPAN, needle_text=NEEDLE_WORD,
    )  # fmt: skip
    return str(video.path)


def ask_both(router, context: RouterContext, video: str, max_new_tokens: int) -> list[dict]:
    """Ask the demo's video question and text question; return both final states."""
    overrides = {"max_new_tokens": max_new_tokens}
    questions: list[RouterState] = [
        {"question": VIDEO_QUESTION, "video": video, "options": VIDEO_OPTIONS, "overrides": overrides},
        {"question": TEXT_QUESTION},
    ]
    return [router.invoke(question, context=context) for question in questions]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="tiny", help="LOVE-R1 checkpoint (default: the built-in tiny model)")
    parser.add_argument("--scripted", action="store_true", help="use scripted replies instead of a model")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="new tokens per turn (tiny model: keep small)")
    parser.add_argument("--video", help="a video to ask about (default: a generated 2-minute needle video)")
    parser.add_argument("--show-graph", action="store_true", help="print the router's mermaid picture first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    context = RouterContext(
        backend=scripted_model() if args.scripted else None,
        model=args.model,
        text_max_new_tokens=args.max_new_tokens,
    )
    router = build_router()
    if args.show_graph:
        print(router.get_graph(xray=1).draw_mermaid())
    with tempfile.TemporaryDirectory() as folder:
        video = args.video or demo_video(folder)
        for state in ask_both(router, context, video, args.max_new_tokens):
            print(f"[{state['route']}] {state['question']}")
            if state["route"] == "video":
                for record in state.get("rounds", []):
                    print(f"  round {record['round']}: {record['decision']} -> {record['outcome']}")
                print(f"  zoomed: {state.get('intervals')}  forced: {state.get('forced')}")
            print(f"  answer: {state.get('answer')!r}")
            for error in state.get("errors", []):
                print(f"  error in {error['node']}: {error['message']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
