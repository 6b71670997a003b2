"""Wall time per 3-turn LOVE-R1 question on the tiny model: ours vs a reference-equivalent path.

Each question is the loop's worst case (two zooms, then the forced answer; see
``bench/common.py``), rendering included:

- ours: one shared :class:`~lover1_plugin.video.ViewRenderer` (the fast view is rendered
  once per video) and ``HFBackend(reuse=True)`` (prefix KV and vision outputs reused);
- reference-equivalent: every round opens the video again and renders all its views
  with a fresh renderer, and ``HFBackend(reuse=False)`` prefills the whole prompt and
  runs the vision tower on every view. Both use our (fast) renderer, so the ratio is
  what caching saves; ``bench/fast_view.py`` measures the renderer itself.

Both paths generate the same number of tokens per turn (greedy, from the same model),
and the script checks that they generate the same token ids. Runs alternate between the
two paths (``--repeats``), each run on fresh caches; the median counts.

Run: ``python -m bench.round_time`` (full) or ``python -m bench.round_time --duration 60 --size 96x160``.
"""

from __future__ import annotations

import argparse
import logging
import statistics

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
    timer,
    view_config,
    write_json,
)

logger = logging.getLogger("bench.round_time")

TARGET = 1.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_question_flags(parser)
    parser.add_argument("--max-new-tokens", type=int, default=16, help="tokens decoded per turn (both paths)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per path; the median counts")
    return parser.parse_args(argv)


def run_ours(video, questions, model_pair, max_new_tokens, view_cfg=None):
    """All questions on one video with one renderer and one reusing backend, both fresh."""
    from lover1_plugin.video import ViewRenderer

    loaded, recorder = model_pair
    backend = type(loaded)(loaded.model, loaded.processor, reuse=True)  # empty caches
    seconds, tokens = [], []
    with ViewRenderer() as renderer:
        render = shared_renderer_render(renderer)
        for text, zooms in questions:
            with timer() as took:
                info = renderer.probe(video)
                turns = question_turns(info, text, zooms, view_cfg)
                records = run_turns(turns, backend, render, recorder, max_new_tokens=max_new_tokens)
            seconds.append(took["s"])
            tokens.append([r.token_ids for r in records])
    return seconds, tokens


def run_reference(video, questions, model_pair, max_new_tokens, view_cfg=None):
    """Every round re-opens and re-renders the video and re-prefills the whole prompt."""
    from lover1_plugin.backends.hf import HFBackend
    from lover1_plugin.video import probe_video

    loaded, recorder = model_pair
    backend = HFBackend(loaded.model, loaded.processor, reuse=False)
    render = fresh_renderer_render()
    seconds, tokens = [], []
    for text, zooms in questions:
        with timer() as took:
            info = probe_video(video)
            turns = question_turns(info, text, zooms, view_cfg)
            records = run_turns(turns, backend, render, recorder, max_new_tokens=max_new_tokens)
        seconds.append(took["s"])
        tokens.append([r.token_ids for r in records])
    return seconds, tokens


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    from lover1_plugin.video import probe_video

    print(machine_line())
    video = generated_video("needle", duration_s=args.duration, fps=args.fps, size=args.size, directory=args.cache_dir)
    info = probe_video(video)
    print(f"video: {video.name}: {info.num_frames} frames at {info.fps:g} fps, {info.width}x{info.height}")
    ours_backend, _reference_backend, recorder = load_tiny_pair()
    pair = (ours_backend, recorder)
    questions = scaled_questions(info.duration)[: args.questions]

    # warm-up (not timed): library initialisation, first-call kernel selection, page cache
    view_cfg = view_config(args)
    run_reference(video, questions[:1], pair, 1, view_cfg)
    run_ours(video, questions[:1], pair, 1, view_cfg)

    ours_runs, ref_runs, identical = [], [], True
    for repeat in range(args.repeats):
        ref_s, ref_tokens = run_reference(video, questions, pair, args.max_new_tokens, view_cfg)
        ours_s, ours_tokens = run_ours(video, questions, pair, args.max_new_tokens, view_cfg)
        same = ours_tokens == ref_tokens
        identical &= same
        ours_runs.append(ours_s)
        ref_runs.append(ref_s)
        print(
            f"run {repeat + 1}: ours {' + '.join(f'{s:.2f}' for s in ours_s)} s, "
            f"reference {' + '.join(f'{s:.2f}' for s in ref_s)} s (per question), "
            f"ratio {sum(ref_s) / sum(ours_s):.2f}x, token-identical: {same}, load {load_average()}"
        )
    recorder.close()

    first_ours = statistics.median(run[0] for run in ours_runs)
    first_ref = statistics.median(run[0] for run in ref_runs)
    all_ours = statistics.median(sum(run) / len(run) for run in ours_runs)
    all_ref = statistics.median(sum(run) / len(run) for run in ref_runs)
    print()
    print(f"load average at the end: {load_average()}")
    print(f"answers token-identical (every turn of every question and run): {identical}")
    # paths that ran next to each other saw the same machine: per-run ratios are the steadier figure
    first_ratios = [ref[0] / ours[0] for ours, ref in zip(ours_runs, ref_runs, strict=True)]
    mean_ratios = [sum(ref) / sum(ours) for ours, ref in zip(ours_runs, ref_runs, strict=True)]
    print(
        f"per-run ratios: first question {', '.join(f'{r:.2f}x' for r in first_ratios)} "
        f"(median {statistics.median(first_ratios):.2f}x); all questions {', '.join(f'{r:.2f}x' for r in mean_ratios)} "
        f"(median {statistics.median(mean_ratios):.2f}x)"
    )
    print(
        ratio_line(
            "wall time per 3-turn question (first on the video)",
            first_ours,
            first_ref,
            unit=" s",
            target=TARGET,
            fmt="{:.2f}",
        )
    )
    if len(questions) > 1:
        print(
            ratio_line(
                f"wall time per 3-turn question (mean of {len(questions)} on one video)",
                all_ours,
                all_ref,
                unit=" s",
                target=TARGET,
                fmt="{:.2f}",
            )
        )
    write_json(
        args.json,
        {"ours": ours_runs, "reference": ref_runs, "token_identical": identical, "load_average": load_average()},
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
