"""``lover1``: answer questions about videos, inspect view plans, run the demo, evaluate, train.

Every command exits non-zero with a one-line message on error (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import OVERRIDE_KEYS, PRESETS, get_preset
from .errors import Lover1Error

logger = logging.getLogger("lover1_plugin.cli")


# --------------------------------------------------------------------------- answer


def _add_view_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="benchmark preset")
    parser.add_argument("--num-fast", type=int, help="most fast-view frames (preset: 768)")
    parser.add_argument("--fast-res", type=int, help="fast-view budget in 28x28 patches (preset: 32)")
    parser.add_argument("--num-slow", type=int, help="most frames per zoom clip (preset: 32)")
    parser.add_argument("--slow-res", type=int, help="slow-view budget in 28x28 patches (preset: 256)")
    parser.add_argument("--font", dest="font_path", help="timestamp font (Arial.Unicode.ttf for exact parity)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = [k for k in OVERRIDE_KEYS if hasattr(args, k)]
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def run_with_progress(inputs: dict, context: Any, *, quiet: bool) -> dict:
    """Run the graph, showing a progress bar fed by the graph's custom stream events."""
    from tqdm.auto import tqdm

    from .graphs.love_r1 import graph

    final: dict = {}
    with tqdm(total=None, desc="lover1", unit="step", disable=quiet, file=sys.stderr, leave=False) as bar:
        for mode, chunk in graph.stream(inputs, context=context, stream_mode=["custom", "values"]):
            if mode == "values":
                final = chunk
                continue
            event = chunk.get("event")
            bar.set_postfix_str(_describe_event(chunk), refresh=False)
            if event in ("frames_decoded", "round_finished", "interval_chosen", "zoom_rejected", "answer"):
                bar.update(1)
    return final


def _describe_event(event: dict) -> str:
    kind = event.get("event")
    if kind == "decoding":
        return f"decoding {event['frames']} frames"
    if kind == "frames_decoded":
        return f"fast view {event['frames']} frames {event['size'][0]}x{event['size'][1]}"
    if kind == "round_started":
        return f"round {event['round']}"
    if kind == "interval_chosen":
        return f"zoom {event['interval']}"
    if kind == "answer":
        return f"answer {event['answer']!r}"
    return str(kind)


def format_trace(state: dict) -> str:
    """Human-readable trace: each round's raw text, decision and interval, then the answer."""
    lines = []
    fast = state.get("fast_view")
    if fast:
        lines.append(
            f"video: {state.get('duration', 0):.1f} s; fast view {fast['frames']} frames of "
            f"{fast['size'][0]}x{fast['size'][1]} at {fast['sample_fps']} fps ({fast['visual_tokens']} visual tokens)"
        )
    for record in state.get("rounds", []):
        lines.append(f"--- round {record['round']}: {record['decision']} -> {record['outcome']}")
        if record.get("interval"):
            lines.append(f"zoom interval: {record['interval']} (proposed {record.get('proposal')})")
        lines.append(record["raw"].strip())
    final = state.get("final")
    if final:
        lines.append(
            f"--- {'forced answer' if final['forced'] else 'single pass'} ({final['reason']}) on {final['intervals']}"
        )
        lines.append(final["raw"].strip())
    for error in state.get("errors", []):
        lines.append(f"error in {error['node']}: {error['type']}: {error['message']}")
    lines.append(f"answer: {state.get('answer', '')!r}")
    return "\n".join(lines)


def cmd_answer(args: argparse.Namespace) -> int:
    from .graphs.context import LoveR1Context

    overrides = _overrides(args)
    get_preset(args.preset, **overrides)  # validate before anything is loaded or decoded
    if not Path(args.video).exists():
        raise Lover1Error(f"video {args.video!r} does not exist")
    context = LoveR1Context(model=args.model, backend_name=args.backend, backend_kwargs=_backend_kwargs(args))
    inputs: dict[str, Any] = {"video": args.video, "question": args.question, "preset": args.preset}
    if args.options:
        inputs["options"] = args.options
    if overrides:
        inputs["overrides"] = overrides
    state = run_with_progress(inputs, context, quiet=args.json)
    if args.timeline:
        from .timeline import draw_timeline

        draw_timeline(state, args.timeline, title=args.question)
    if args.json:
        print(json.dumps(state, indent=2, default=str))
    else:
        print(format_trace(state))
    if state.get("errors"):
        error = state["errors"][0]
        print(f"lover1: error: {error['type']}: {error['message']}", file=sys.stderr)
        return 1
    return 0


def _backend_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = {}
    for key in ("device", "dtype", "attn_implementation"):
        if getattr(args, key, None):
            kwargs[key] = getattr(args, key)
    return kwargs


# --------------------------------------------------------------------------- plan


def plan_report(video: str, preset_name: str = "default", zoom: Sequence[float] | None = None, **overrides) -> dict:
    """What the model will see for ``video``: frame ids, sample fps, frame size and visual tokens per view."""
    from .video import plan_fast_view, plan_slow_view, probe_video

    preset = get_preset(preset_name, **overrides)
    info = probe_video(video)
    views = {"fast": plan_fast_view(info, preset.view)}
    if zoom is not None:
        views["zoom"] = plan_slow_view(info, float(zoom[0]), float(zoom[1]), preset.view)
    report = {
        "video": str(video),
        "duration": info.duration,
        "fps": info.fps,
        "num_frames": info.num_frames,
        "size": [info.height, info.width],
        "preset": preset.name,
    }
    for name, plan in views.items():
        report[name] = {
            "label": list(plan.label),
            "frames": plan.num_frames,
            "frame_ids": list(plan.frame_ids),
            "sample_fps": plan.sample_fps,
            "height": plan.height,
            "width": plan.width,
            "grid_thw": list(plan.grid_thw),
            "visual_tokens": plan.visual_tokens,
        }
    report["visual_tokens"] = sum(report[name]["visual_tokens"] for name in views)
    return report


def cmd_plan(args: argparse.Namespace) -> int:
    report = plan_report(args.video, args.preset, args.zoom, **_overrides(args))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['video']}: {report['duration']:.2f} s, {report['num_frames']} frames at {report['fps']:.3f} fps, "
        f"{report['size'][0]}x{report['size'][1]}"
    )
    for name in ("fast", "zoom"):
        if name in report:
            view = report[name]
            print(
                f"{name:5s} {view['label']}: {view['frames']} frames of {view['height']}x{view['width']} "
                f"at {view['sample_fps']} fps -> {view['visual_tokens']} visual tokens"
            )
    print(f"total visual tokens: {report['visual_tokens']}")
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    state = run_demo(model=args.model, max_new_tokens=args.max_new_tokens, timeline=args.timeline)
    print(f"video: {state['video']}\nquestion: {state['question']}\noptions: {' | '.join(state['options'])}")
    print(f"model: {state['model']}")
    print(format_trace(state))
    print(f"expected answer: {state['expected_answer']!r}")
    return 1 if state.get("errors") else 0


# --------------------------------------------------------------------------- evaluation


def tasks_path() -> Path:
    """Directory of the love_r1_* lmms-eval tasks (for ``--include_path``)."""
    from . import tasks

    return Path(tasks.__file__).resolve().parent


def cmd_tasks_path(args: argparse.Namespace) -> int:
    print(tasks_path())
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.cli import run_lmms_eval

    return run_lmms_eval(list(args.lmms_eval_args), include_path=tasks_path())


def cmd_train(args: argparse.Namespace) -> int:
    from .train.cli import main as train_main

    return train_main([args.stage, *args.train_args])


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lover1", description="LOVE-R1 long-video question answering")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("answer", help="answer a question about a video and print the trace")
    p.add_argument("video")
    p.add_argument("question")
    p.add_argument("--options", nargs="+", help='candidate answers, e.g. "A. red" "B. blue"')
    p.add_argument("--model", default=os.environ.get("LOVER1_MODEL", "tiny"), help="checkpoint path or hub id")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--dtype", help="bfloat16 / float32 (default: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--attn-implementation", dest="attn_implementation", help="flash_attention_2 / sdpa / eager")
    p.add_argument("--max-rounds", dest="max_rounds", type=int, help="reasoning rounds (default 2)")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, help="new tokens per turn (default 2048)")
    p.add_argument("--mode", choices=["zoom", "single"], help="zoom loop (default) or single pass (stage 1)")
    _add_view_flags(p)
    p.add_argument("--json", action="store_true", help="print the final state as JSON")
    p.add_argument("--timeline", help="also draw where the model looked into this PNG")
    p.set_defaults(func=cmd_answer)

    p = sub.add_parser("plan", help="show what the model will see (frames, sizes, tokens), loading no model")
    p.add_argument("video")
    p.add_argument("--zoom", nargs=2, type=float, metavar=("START", "END"), help="also plan this zoom clip")
    _add_view_flags(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("demo", help="generate a needle video, build the tiny model, answer one question")
    p.add_argument(
        "--model", default=None, help="checkpoint to use (default: the toy checkpoint if trained, else tiny)"
    )
    p.add_argument("--max-new-tokens", type=int, default=256, help="new tokens per turn (random weights ramble)")
    p.add_argument("--timeline", help="draw where the model looked into this PNG")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tasks-path", help="print the lmms-eval --include_path of the love_r1_* tasks")
    p.set_defaults(func=cmd_tasks_path)

    p = sub.add_parser("eval", help="run lmms-eval with the love_r1_* tasks included (arguments pass through)")
    p.add_argument("lmms_eval_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train: sft | grpo | toy (see README 'Train')")
    p.add_argument("stage", choices=["sft", "grpo", "toy"])
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command is not None and argv[command] == "eval":
        # `lover1 eval --model ...`: argparse's REMAINDER cannot take leading options; pass them through.
        args = parser.parse_args(argv[: command + 1])
        args.lmms_eval_args = argv[command + 1 :]
    else:
        args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.debug:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own bar shows progress; keep the weight-loading bars out of it
    try:
        return args.func(args)
    except (Lover1Error, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"lover1: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
