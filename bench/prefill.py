"""Prefill tokens per 3-turn LOVE-R1 question: cache reuse vs a reference-equivalent path.

Both paths drive the real :class:`~lover1_plugin.backends.hf.HFBackend` on the tiny model
over the same turns (fast view; fast + 1 slow; fast + 2 slows + ``I get the answer.``
prefix) and the backend's ``stats`` count the prompt tokens that went through the
language model:

- ours: ``reuse=True`` (prefix KV and vision outputs kept) and one shared view renderer;
- reference-equivalent: ``reuse=False`` and a fresh renderer every round, so every round
  re-renders and re-prefills its whole prompt, as the reference evaluation code did.

Three questions are asked about one generated 10-minute video (the second zooms backward,
so its slow clips sort in the other order). Nothing is timed here: see ``round_time.py``.

Run: ``python -m bench.prefill`` (full) or ``python -m bench.prefill --duration 60 --size 96x160``.
"""

from __future__ import annotations

import argparse
import logging

from bench.common import (
    add_question_flags,
    fresh_renderer_render,
    generated_video,
    load_average,
    load_tiny_pair,
    machine_line,
    question_turns,
    ratio_line,
    run_turns,
    scaled_questions,
    setup_logging,
    shared_renderer_render,
    view_config,
    write_json,
)

logger = logging.getLogger("bench.prefill")

TARGET_PER_QUESTION = 2.0
TARGET_PER_VIDEO = 3.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_question_flags(parser)
    parser.add_argument("--max-new-tokens", type=int, default=4, help="decoded tokens per turn (prefill is measured)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    from lover1_plugin.video import ViewRenderer

    print(machine_line())
    video = generated_video("needle", duration_s=args.duration, fps=args.fps, size=args.size, directory=args.cache_dir)
    ours, reference, recorder = load_tiny_pair()
    renderer = ViewRenderer()
    info = renderer.probe(video)
    print(f"video: {video.name}: {info.num_frames} frames at {info.fps:g} fps, {info.width}x{info.height}")

    totals = {"ours": 0, "reference": 0}
    per_question = []
    identical = True
    for number, (text, zooms) in enumerate(scaled_questions(info.duration)[: args.questions], start=1):
        turns = question_turns(info, text, zooms, view_config(args))
        mine = run_turns(turns, ours, shared_renderer_render(renderer), recorder, max_new_tokens=args.max_new_tokens)
        theirs = run_turns(turns, reference, fresh_renderer_render(), recorder, max_new_tokens=args.max_new_tokens)
        print(f"question {number}: zooms {[p.label for p in turns[-1].plans[1:]]}")
        for index, (turn, a, b) in enumerate(zip(turns, mine, theirs, strict=True), start=1):
            tokens = sum(plan.visual_tokens for plan in turn.plans)
            print(
                f"  turn {index} ({len(turn.plans)} views, {tokens:,} visual tokens): prefill ours {a.prefill_tokens:,} "
                f"(+{a.cached_tokens:,} from the prefix cache, {a.vision_encodes} vision encodes), "
                f"reference {b.prefill_tokens:,} ({b.vision_encodes} vision encodes), "
                f"same tokens: {a.token_ids == b.token_ids}"
            )
            identical &= a.token_ids == b.token_ids
        ours_sum = sum(r.prefill_tokens for r in mine)
        ref_sum = sum(r.prefill_tokens for r in theirs)
        per_question.append({"question": number, "ours": ours_sum, "reference": ref_sum})
        totals["ours"] += ours_sum
        totals["reference"] += ref_sum
        print(f"  {ratio_line(f'question {number} prefill tokens', ours_sum, ref_sum, target=TARGET_PER_QUESTION)}")
    recorder.close()

    first = per_question[0]
    print()
    print(f"load average at the end: {load_average()}")
    print(f"greedy outputs token-identical (ours vs reference, every turn): {identical}")
    print(
        f"vision encodes: ours {ours.stats.vision_encodes} ({ours.stats.vision_cache_hits} cache hits), "
        f"reference {reference.stats.vision_encodes}"
    )
    print(
        ratio_line("prefill tokens per 3-turn question", first["ours"], first["reference"], target=TARGET_PER_QUESTION)
    )
    if len(per_question) > 1:
        print(
            ratio_line(
                f"prefill tokens per {len(per_question)} questions on one video",
                totals["ours"],
                totals["reference"],
                target=TARGET_PER_VIDEO,
            )
        )
    write_json(
        args.json,
        {"per_question": per_question, "totals": totals, "token_identical": identical, "load_average": load_average()},
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
