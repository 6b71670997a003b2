"""lmms-eval end to end: the love_r1 model found through its entry point, on the offline needle task.

- ``simple_evaluate`` in this process (chat interface by default, simple with ``force_simple``),
  compared with running the LOVE-R1 graph directly on the same documents;
- the real ``lmms-eval`` console command in a subprocess, checked by the files it writes;
- ``lover1 eval``'s runner (:func:`run_lmms_eval`): its exit code when lmms-eval fails
  but exits 0, and the merge of a user's ``--include_path``.

The tiny random model rambles, so every run is shrunk (each shrunk argument says why).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lover1_plugin.cli import tasks_path
from lover1_plugin.evaluation import DOCUMENT_FAILED
from lover1_plugin.evaluation.cli import (
    OutputScanner,
    build_command,
    expected_output_path,
    new_results_files,
    run_lmms_eval,
    take_option,
)

TASK = "love_r1_needle"
MODEL_ARGS = ",".join(
    [
        "pretrained=tiny",
        "max_new_tokens=16",  # random weights never stop on their own: 16 tokens a turn keeps a document ~2 s of compute
        "num_fast=32",  # 32 fast-view frames instead of 300: decoding and the vision tower dominate on CPU
        "num_slow=4",  # 4 frames per zoom / whole-video clip instead of 32, for the same reason
        "slow_res=16",  # 16 patches per slow frame instead of 256, for the same reason
    ]
)
LIMIT = 2  # two documents: enough to see per-document traces and the scores aggregate


def offline_env() -> dict[str, str]:
    """The environment of lmms-eval subprocesses: no hub access, this session's package cache."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def parse_prediction(sample: dict) -> dict:
    """The model's ``{"answer", "trace"}`` prediction of one logged sample."""
    prediction = sample["filtered_resps"]
    prediction = prediction[0] if isinstance(prediction, list) else prediction
    return json.loads(prediction)


# --------------------------------------------------------------------------- simple_evaluate


def evaluate(**kwargs):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    return simple_evaluate(
        model="love_r1",  # resolved through the lmms_eval.models entry point, never imported here
        model_args=MODEL_ARGS,
        tasks=[TASK],
        limit=LIMIT,
        task_manager=TaskManager(include_path=str(tasks_path())),
        log_samples=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def chat_results(tiny_model_path):
    return evaluate()


@pytest.mark.slow
def test_simple_evaluate_scores_the_needle_task(chat_results):
    assert "LoveR1Chat (chat)" in chat_results["config"]["model_backend"]  # the default interface
    scores = chat_results["results"][TASK]
    assert 0.0 <= scores["needle_acc,none"] <= 100.0
    assert 0.0 <= scores["needle_zoom_hit,none"] <= 100.0


@pytest.mark.slow
def test_simple_evaluate_logs_a_trace_per_sample(chat_results):
    samples = chat_results["samples"][TASK]
    assert [s["doc_id"] for s in samples] == list(range(LIMIT))
    for sample in samples:
        prediction = parse_prediction(sample)
        trace = prediction["trace"]
        assert trace["errors"] == []
        assert trace["fast_view"]["frames"] == 32  # our model_args reached the views
        assert trace["duration"] == pytest.approx(150.0)
        assert trace["rounds"] and all("raw" in r and "decision" in r for r in trace["rounds"])
        assert isinstance(prediction["answer"], str)


@pytest.mark.slow
def test_lmms_eval_path_gives_the_graphs_answers(chat_results, tiny_backend):
    """The same documents through run_love_r1 directly: identical answers and raw texts (greedy)."""
    from lover1_plugin.config import get_preset
    from lover1_plugin.graphs.context import LoveR1Context
    from lover1_plugin.graphs.love_r1 import run_love_r1
    from lover1_plugin.tasks import utils as task_utils
    from lover1_plugin.video import ViewRenderer

    preset = get_preset("default", max_new_tokens=16, num_fast=32, num_slow=4, slow_res=16)  # as MODEL_ARGS
    context = LoveR1Context(backend=tiny_backend, preset=preset, renderer=ViewRenderer())
    for sample in chat_results["samples"][TASK]:
        question = sample["arguments"][0]  # ctx: the SPEC 2 question text from doc_to_text
        video = task_utils.needle_doc_to_visual(sample["doc"])[0]
        state = run_love_r1(video, question, question_text=question, context=context)
        logged = parse_prediction(sample)
        assert logged["answer"] == state["answer"]
        assert [r["raw"] for r in logged["trace"]["rounds"]] == [r["raw"] for r in state["rounds"]]


@pytest.mark.slow
def test_simple_evaluate_with_force_simple(tiny_model_path):
    results = evaluate(force_simple=True)
    assert "LoveR1Simple (simple)" in results["config"]["model_backend"]
    samples = results["samples"][TASK]
    assert len(samples) == LIMIT and all(parse_prediction(s)["trace"]["rounds"] for s in samples)
    assert "needle_acc,none" in results["results"][TASK]


# --------------------------------------------------------------------------- the lmms-eval console command


@pytest.mark.slow
def test_lmms_eval_console_command_writes_results_and_samples(tmp_path, tiny_model_path):
    command = shutil.which("lmms-eval") or pytest.fail("the lmms-eval console script is not installed")
    completed = subprocess.run(
        [
            command,
            "--model", "love_r1",
            "--model_args", MODEL_ARGS,
            "--tasks", TASK,
            "--include_path", str(tasks_path()),
            "--limit", "1",  # one document proves both files get written
            "--output_path", str(tmp_path),
            "--log_samples",
        ],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    output = completed.stdout[-3000:] + completed.stderr[-3000:]
    (results_file,) = tmp_path.rglob("*_results.json") or pytest.fail(f"no results file; output:\n{output}")
    results = json.loads(results_file.read_text())
    assert "needle_acc,none" in results["results"][TASK]
    (samples_file,) = tmp_path.rglob(f"*_samples_{TASK}.jsonl")
    (line,) = samples_file.read_text().splitlines()
    trace = parse_prediction(json.loads(line))["trace"]
    assert trace["rounds"] and trace["fast_view"]["frames"] == 32


# --------------------------------------------------------------------------- lover1 eval (run_lmms_eval)


@pytest.mark.slow
def test_run_lmms_eval_fails_on_a_bad_task_name(monkeypatch):
    for key, value in offline_env().items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()
    code = run_lmms_eval(
        ["--model", "love_r1", "--tasks", "love_r1_no_such_task", "--limit", "1"], tasks_path(), stdout=out, stderr=err
    )
    assert code != 0  # lmms-eval itself exits 0 here
    assert "love_r1_no_such_task" in out.getvalue() + err.getvalue()
    assert "reported an error" in err.getvalue()


@pytest.mark.slow
def test_run_lmms_eval_passes_through_a_non_zero_exit_code():
    out, err = io.StringIO(), io.StringIO()
    code = run_lmms_eval(["--no_such_flag"], tasks_path(), env=offline_env(), stdout=out, stderr=err)
    assert code == 2  # argparse's usage error, unchanged
    assert "--no_such_flag" in err.getvalue()


USER_TASK_UTILS = """
import json


def doc_to_visual(doc):
    if not doc["video"]:
        raise ValueError("this document has no video")  # a broken document: an unexpected exception
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]


def process_results(doc, results):
    prediction = json.loads(results[0])
    return {"my_acc": float(prediction["answer"] == doc["answer"])}
"""


@pytest.mark.slow
def test_lover1_eval_runs_a_user_task_beside_ours_and_survives_a_failing_document(tmp_path, tiny_model_path):
    from lover1_plugin.synthetic import make_test_video

    video = make_test_video(tmp_path / "clip.mp4", duration_s=20, fps=2)
    user_tasks = tmp_path / "my_tasks"
    user_tasks.mkdir()
    docs = [
        {"video": str(video), "question": "Which?", "answer": "B"},
        {"video": "", "question": "Which?", "answer": "A"},
    ]
    (user_tasks / "docs.json").write_text(json.dumps(docs))
    (user_tasks / "my_task_utils.py").write_text(USER_TASK_UTILS)
    (user_tasks / "my_videos.yaml").write_text(
        "task: my_videos\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {user_tasks / 'docs.json'}}}\n"
        "test_split: train\n"
        "output_type: generate_until\n"
        "generation_kwargs: {max_new_tokens: 16, until: []}\n"
        "doc_to_visual: !function my_task_utils.doc_to_visual\n"
        "doc_to_text: !function my_task_utils.doc_to_text\n"
        "doc_to_target: answer\n"
        "process_results: !function my_task_utils.process_results\n"
        "metric_list: [{metric: my_acc, aggregation: mean, higher_is_better: true}]\n"
    )
    out, err = io.StringIO(), io.StringIO()
    argv = ["--model", "love_r1", "--model_args", MODEL_ARGS, "--tasks", f"my_videos,{TASK}"]
    argv += ["--include_path", str(user_tasks)]  # the user's directory: ours must be searched too
    argv += ["--limit", "2", "--output_path", str(tmp_path / "out"), "--log_samples"]
    code = run_lmms_eval(argv, tasks_path(), env=offline_env(), stdout=out, stderr=err)
    output = out.getvalue()[-4000:] + err.getvalue()[-4000:]
    assert code == 0, output
    assert (
        DOCUMENT_FAILED in err.getvalue() and "Traceback (most recent call last):" in err.getvalue()
    )  # logged, not fatal
    (results_file,) = (tmp_path / "out").rglob("*_results.json")
    assert {"my_videos", TASK} <= set(json.loads(results_file.read_text())["results"])  # both directories searched
    (samples_file,) = (tmp_path / "out").rglob("*_samples_my_videos.jsonl")
    good, broken = sorted(
        (json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"]
    )
    assert parse_prediction(good)["trace"]["errors"] == []
    assert parse_prediction(broken)["answer"] == "" and broken["my_acc"] == 0.0
    assert parse_prediction(broken)["trace"]["errors"][0]["message"] == "this document has no video"


# --------------------------------------------------------------------------- runner pieces (fast)


def test_take_option_removes_both_spellings():
    rest, values = take_option(
        ["--tasks", "a", "--include_path=/x", "--limit", "1", "--include_path", "/y"], "--include_path"
    )
    assert rest == ["--tasks", "a", "--limit", "1"] and values == ["/x", "/y"]


def test_build_command_appends_the_tasks_dir():
    command, entries = build_command(["--", "--model", "love_r1"], "/pkg/tasks", python="py")
    assert command == ["py", "-m", "lmms_eval", "--model", "love_r1", "--include_path", "/pkg/tasks"]
    assert entries is None


def test_build_command_merges_a_user_include_path_into_a_config(tmp_path):
    argv = ["eval", "--model", "love_r1", "--include_path", "/mine", "--tasks", "t"]
    command, entries = build_command(argv, "/pkg/tasks", python="py", workdir=str(tmp_path))
    assert command[:6] == ["py", "-m", "lmms_eval", "--model", "love_r1", "--tasks"] and "--include_path" not in command
    config = Path(command[command.index("--config") + 1])
    assert yaml.safe_load(config.read_text()) == {"include_path": ["/mine", "/pkg/tasks"]} == entries[0]


def test_build_command_extends_a_user_config(tmp_path):
    user_config = tmp_path / "user.yaml"
    user_config.write_text(yaml.safe_dump([{"tasks": "a", "include_path": "/a"}, {"tasks": "b", "output_path": "/o"}]))
    workdir = tmp_path / "work"
    workdir.mkdir()
    command, entries = build_command(["--config", str(user_config)], "/pkg/tasks", python="py", workdir=str(workdir))
    assert [e["include_path"] for e in entries] == [["/a", "/pkg/tasks"], ["/pkg/tasks"]]
    assert yaml.safe_load(Path(command[-1]).read_text())[1] == {
        "tasks": "b",
        "output_path": "/o",
        "include_path": ["/pkg/tasks"],
    }
    assert expected_output_path(["--config", str(user_config)], entries) == "/o"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--tasks", "t", "--output_path", "/o"], "/o"),
        (["--tasks", "t"], None),  # nothing is written without --output_path
        (["--tasks", "list", "--output_path", "/o"], None),  # listing tasks writes no results
    ],
)
def test_expected_output_path(argv, expected):
    assert expected_output_path(argv, None) == expected


def test_new_results_files_ignores_older_runs(tmp_path):
    old = tmp_path / "model" / "2020_results.json"
    old.parent.mkdir()
    old.write_text("{}")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    started = time.time()
    assert new_results_files(tmp_path, started) == []
    new = tmp_path / "model" / "2030_results.json"
    new.write_text("{}")
    assert new_results_files(tmp_path, started) == [new]


def test_scanner_finds_lmms_eval_errors_in_coloured_chunked_output():
    scanner = OutputScanner()
    line = "\x1b[32m2026-01-01 12:00:00\x1b[0m | \x1b[31m\x1b[1mERROR   \x1b[0m | __main__:cli_evaluate:614 - Error during evaluation: Tasks not found\n"
    for start in range(0, len(line), 7):  # output arrives in arbitrary pieces
        scanner.feed(line[start : start + 7].encode())
    scanner.close()
    assert scanner.errors == [
        "2026-01-01 12:00:00 | ERROR    | __main__:cli_evaluate:614 - Error during evaluation: Tasks not found"
    ]


def test_scanner_ignores_warnings_progress_bars_and_failed_documents():
    scanner = OutputScanner()
    scanner.feed("2026-01-01 | WARNING  | lmms_eval.x:y:1 - --limit SHOULD ONLY BE USED FOR TESTING\n")
    scanner.feed("Model Responding:  50%|#####     | 1/2\rModel Responding: 100%|##########| 2/2\n")
    scanner.feed(
        f"{DOCUMENT_FAILED} (document 3 of love_r1_needle/train); it is scored as wrong and the run continues\n"
    )
    scanner.feed('Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: 3\n')
    scanner.close()
    assert scanner.errors == []
    scanner.feed("Traceback (most recent call last):\n")  # a traceback of lmms-eval itself
    assert scanner.errors == ["Traceback (most recent call last):"]


def test_the_runner_module_imports_without_lmms_eval():
    # `lover1 eval` starts fast: the runner never imports lmms-eval (or torch) itself
    code = "import sys, lover1_plugin.evaluation.cli; print('lmms_eval' in sys.modules, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]
