"""The LOVE-R1 loop as a LangGraph graph: the one implementation of SPEC 3 / 3b.

::

    START -> overview -> reason -> zoom -> reason -> zoom -> answer -> END
                 |          |                  (round cap)    ^
                 |          +--(answer / invalid)-------------+
                 +--(single-pass mode)------------------------+

- ``overview``: read the video, plan and render the fast view.
- ``reason``: one model turn on the fast view + every zoomed clip; parse its box.
- ``zoom``: SPEC 3 policy on the proposed interval (pad, clamp, widen, IoU stop);
  render the accepted slow view.
- ``answer``: the direct answer, or the forced-answer turn (assistant prefix
  ``I get the answer.\\n\\n``), or the single pass of SPEC 3b.

The lmms-eval model, the CLI and ``langgraph dev`` all run this graph. Run it with
``graph.invoke({"video": ..., "question": ...}, context=LoveR1Context(...))`` or
:func:`run_love_r1`.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from lover1_plugin.config import Preset, get_preset
from lover1_plugin.decisions import Decision, last_boxed, parse_answer, parse_decision
from lover1_plugin.graphs.context import LoveR1Context
from lover1_plugin.graphs.state import LoveR1Input, LoveR1Output, LoveR1State
from lover1_plugin.policy import Zoom, add_interval, next_step
from lover1_plugin.prompts import ANSWER_PREFIX, build_conversation, format_question, to_single_pass
from lover1_plugin.video import plan_fast_view, plan_slow_view, plan_whole_video_view
from lover1_plugin.views import View

logger = logging.getLogger(__name__)

NODES = ("overview", "reason", "zoom", "answer")


# --------------------------------------------------------------------------- helpers


def _context(runtime: Runtime[LoveR1Context]) -> LoveR1Context:
    """The run's context; a bare ``invoke`` without one gets the defaults (model loaded lazily, once)."""
    return runtime.context if runtime.context is not None else LoveR1Context()


def resolve_preset(state: LoveR1State, ctx: LoveR1Context) -> Preset:
    """The context's preset when given, else the state's preset name with its overrides."""
    if ctx.preset is not None:
        return ctx.preset
    return get_preset(state.get("preset", "default"), **(state.get("overrides") or {}))


def build_question_text(state: LoveR1State, preset: Preset) -> str:
    """The SPEC 2 question text (SPEC 3b's variant in single-pass mode)."""
    single = preset.loop.mode == "single"
    if "question_text" in state:
        text = state["question_text"]
        return to_single_pass(text, preset.question_format) if single else text
    return format_question(state["question"], state.get("options"), preset.question_format, single_pass=single)


def _views(
    state: LoveR1State, ctx: LoveR1Context, preset: Preset, intervals: list[list[int]], *, whole_video: bool = False
) -> tuple[int, list[View]]:
    """Render (or fetch from the cache) the fast view and the slow views of ``intervals``, in prompt order."""
    renderer = ctx.get_renderer(preset.view.font_path)
    info = renderer.probe(state["video"])
    plans = [plan_fast_view(info, preset.view)]
    if whole_video:
        plans.append(plan_whole_video_view(info, preset.view))
    else:
        plans += [plan_slow_view(info, s, e, preset.view) for s, e in sorted(intervals)]
    return int(info.duration), [renderer.render(plan) for plan in plans]


def _error(state: LoveR1State, node: str, exc: BaseException) -> dict[str, Any]:
    logger.info("LOVE-R1 %s failed on %r: %s: %s", node, state.get("video"), type(exc).__name__, exc)
    logger.debug("%s", "".join(traceback.format_exception(exc)))
    record = {"node": node, "type": type(exc).__name__, "message": str(exc)}
    return {"errors": [*state.get("errors", []), record], "status": "error", "answer": ""}


# --------------------------------------------------------------------------- nodes


def overview(state: LoveR1State, runtime: Runtime[LoveR1Context]) -> dict[str, Any]:
    """Read the video, plan the fast view and render it (SPEC 1)."""
    ctx = _context(runtime)
    try:
        preset = resolve_preset(state, ctx)
        ctx.check_model()  # a wrong checkpoint fails before any decoding; the model itself loads lazily
        renderer = ctx.get_renderer(preset.view.font_path)
        info = renderer.probe(state["video"])
        plan = plan_fast_view(info, preset.view)
        runtime.stream_writer({"event": "decoding", "video": state["video"], "frames": plan.num_frames})
        renderer.render(plan)
    except Exception as exc:  # recorded in state; the run ends with an empty answer
        return _error(state, "overview", exc)
    fast_view = {
        "frames": plan.num_frames,
        "sample_fps": plan.sample_fps,
        "size": [plan.height, plan.width],
        "visual_tokens": plan.visual_tokens,
        "video_fps": info.fps,
        "video_frames": info.num_frames,
    }
    runtime.stream_writer({"event": "frames_decoded", **fast_view})
    return {
        "duration": info.duration,
        "fast_view": fast_view,
        "round": 0,
        "intervals": [],
        "rounds": [],
        "proposal": None,
        "status": "overview",
        "errors": state.get("errors", []),
    }


def reason(state: LoveR1State, runtime: Runtime[LoveR1Context]) -> dict[str, Any]:
    """One model turn on the current context; parse its last box (SPEC 3 steps 1-4)."""
    ctx = _context(runtime)
    number = state.get("round", 0) + 1
    runtime.stream_writer({"event": "round_started", "round": number, "intervals": state.get("intervals", [])})
    try:
        preset = resolve_preset(state, ctx)
        duration, views = _views(state, ctx, preset, state.get("intervals", []))
        labels = [tuple(v.plan.label) for v in views[1:]]
        conversation = build_conversation(duration, build_question_text(state, preset), labels)
        raw = ctx.get_backend().generate(conversation, views, max_new_tokens=preset.loop.max_new_tokens)
    except Exception as exc:
        return _error(state, "reason", exc)
    decision = parse_decision(raw, lenient=preset.loop.lenient)
    record = {
        "round": number,
        "raw": raw,
        "decision": decision.kind,
        "reason": decision.reason,
        "box": last_boxed(raw),
        "answer": decision.answer,
        "proposal": list(decision.interval) if decision.interval is not None else None,
        "interval": None,
        "outcome": {"answer": "answer", "zoom": "zoom proposed", "invalid": "forced answer"}[decision.kind],
    }
    runtime.stream_writer({"event": "round_finished", "round": number, "decision": decision.kind})
    return {
        "round": number,
        "rounds": [*state.get("rounds", []), record],
        "proposal": record["proposal"],
        "status": decision.kind,
        "force_reason": decision.reason if decision.kind == "invalid" else "",
    }


def zoom(state: LoveR1State, runtime: Runtime[LoveR1Context]) -> dict[str, Any]:
    """Apply the SPEC 3 policy to the proposed interval; render the accepted slow view."""
    ctx = _context(runtime)
    rounds = [dict(r) for r in state.get("rounds", [])]
    try:
        preset = resolve_preset(state, ctx)
        proposal = state.get("proposal")
        if not proposal or len(proposal) != 2:
            raise ValueError(f"zoom needs a proposed interval [start, end], got {proposal!r}")
        if rounds[-1].get("proposal") != list(proposal):
            rounds[-1]["edited_proposal"] = list(proposal)  # changed by a person while interrupted
        decision = Decision(kind="zoom", answer=None, interval=(int(proposal[0]), int(proposal[1])), reason="")
        step = next_step(decision, [tuple(i) for i in state.get("intervals", [])], state["duration"], preset.loop)
        if not isinstance(step, Zoom):
            rounds[-1]["outcome"] = f"forced answer: {step.reason}"
            runtime.stream_writer({"event": "zoom_rejected", "proposal": proposal, "reason": step.reason})
            return {"rounds": rounds, "proposal": None, "status": "force", "force_reason": step.reason}
        intervals = [list(i) for i in add_interval([tuple(i) for i in state.get("intervals", [])], step.interval)]
        runtime.stream_writer({"event": "interval_chosen", "interval": list(step.interval)})
        _views(state, ctx, preset, intervals)  # render (and cache) the new slow view now
    except Exception as exc:
        return _error(state, "zoom", exc)
    rounds[-1]["interval"] = list(step.interval)
    rounds[-1]["outcome"] = "zoomed"
    return {"rounds": rounds, "intervals": intervals, "proposal": None, "status": "zoomed"}


def answer(state: LoveR1State, runtime: Runtime[LoveR1Context]) -> dict[str, Any]:
    """The final answer: the loop's direct answer, the forced-answer turn, or SPEC 3b's single pass."""
    ctx = _context(runtime)
    if state.get("status") == "answer":
        result = state["rounds"][-1].get("answer") or ""
        runtime.stream_writer({"event": "answer", "answer": result, "forced": False})
        return {"answer": result, "forced": False, "status": "done"}
    try:
        preset = resolve_preset(state, ctx)
        single = preset.loop.mode == "single"
        intervals = state.get("intervals", [])
        duration, views = _views(state, ctx, preset, intervals, whole_video=single or not intervals)
        labels = [tuple(v.plan.label) for v in views[1:]]
        conversation = build_conversation(
            duration, build_question_text(state, preset), labels, zoom_instruction=not single
        )
        raw = ctx.get_backend().generate(
            conversation,
            views,
            assistant_prefix=None if single else ANSWER_PREFIX,
            max_new_tokens=preset.loop.max_new_tokens,
            skip_special_tokens=True,
        )
    except Exception as exc:
        return _error(state, "answer", exc)
    result = raw if single else parse_answer(raw)
    reason = "single-pass mode" if single else state.get("force_reason") or "round cap reached"
    final = {"raw": raw, "forced": not single, "reason": reason, "intervals": [list(v.plan.label) for v in views[1:]]}
    runtime.stream_writer({"event": "answer", "answer": result, "forced": not single})
    return {"answer": result, "forced": not single, "final": final, "status": "done"}


# --------------------------------------------------------------------------- routing


def route_after_overview(state: LoveR1State, runtime: Runtime[LoveR1Context]) -> Literal["reason", "answer", "__end__"]:
    if state.get("status") == "error":
        return END
    loop = resolve_preset(state, _context(runtime)).loop
    return "answer" if loop.mode == "single" or loop.max_rounds == 0 else "reason"


def route_after_reason(state: LoveR1State) -> Literal["zoom", "answer", "__end__"]:
    status = state.get("status")
    if status == "error":
        return END
    if status == "zoom":
        return "zoom"
    if status in ("answer", "invalid"):
        return "answer"
    raise ValueError(f"unexpected status after reason: {status!r}")


def route_after_zoom(state: LoveR1State, runtime: Runtime[LoveR1Context]) -> Literal["reason", "answer", "__end__"]:
    status = state.get("status")
    if status == "error":
        return END
    if status == "force":
        return "answer"
    if status != "zoomed":
        raise ValueError(f"unexpected status after zoom: {status!r}")
    max_rounds = resolve_preset(state, _context(runtime)).loop.max_rounds
    return "reason" if state.get("round", 0) < max_rounds else "answer"


# --------------------------------------------------------------------------- graph


def build_graph(checkpointer: Any = None, *, interrupt_before_zoom: bool = False, name: str = "love_r1"):
    """Compile the LOVE-R1 graph.

    Args:
        checkpointer: a LangGraph checkpointer (``InMemorySaver``, ``SqliteSaver``...) to make
            runs resumable; runs then need ``config={"configurable": {"thread_id": ...}}``.
        interrupt_before_zoom: pause before every ``zoom`` so a person can approve or change
            the proposed interval (``graph.update_state(config, {"proposal": [s, e]})``, then
            ``graph.invoke(None, config, context=...)``). Needs a checkpointer.
    """
    builder = StateGraph(
        LoveR1State, context_schema=LoveR1Context, input_schema=LoveR1Input, output_schema=LoveR1Output
    )
    builder.add_node("overview", overview)
    builder.add_node("reason", reason)
    builder.add_node("zoom", zoom)
    builder.add_node("answer", answer)
    builder.add_edge(START, "overview")
    builder.add_conditional_edges("overview", route_after_overview)
    builder.add_conditional_edges("reason", route_after_reason)
    builder.add_conditional_edges("zoom", route_after_zoom)
    builder.add_edge("answer", END)
    return builder.compile(
        checkpointer=checkpointer, interrupt_before=["zoom"] if interrupt_before_zoom else None, name=name
    )


graph = build_graph()


def run_love_r1(
    video: str,
    question: str,
    options: list[str] | None = None,
    *,
    context: LoveR1Context | None = None,
    preset: str = "default",
    question_text: str | None = None,
    **overrides: Any,
) -> LoveR1Output:
    """Answer one question about one video with the LOVE-R1 loop; returns the output state."""
    inputs: LoveR1Input = {"video": str(video), "question": question, "preset": preset}
    if options:
        inputs["options"] = list(options)
    if question_text is not None:
        inputs["question_text"] = question_text
    if overrides:
        inputs["overrides"] = overrides
    return graph.invoke(inputs, context=context or LoveR1Context())


__all__ = [
    "NODES",
    "LoveR1Context",
    "LoveR1Input",
    "LoveR1Output",
    "LoveR1State",
    "answer",
    "build_graph",
    "graph",
    "overview",
    "build_question_text",
    "reason",
    "resolve_preset",
    "run_love_r1",
    "zoom",
]
