"""The love_r1_* lmms-eval tasks: SPEC 2 prompts, video locations, scoring (SPEC 3c), MVBench re-encoding, needle data.

Documents below are hand-made in each benchmark's real lmms-eval schema. Prompt strings
are typed from SPEC.md section 2, not built with the code under test.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import av
import lmms_eval.tasks  # noqa: F401  # imported once here: it takes ~10 s (transformers, evaluate)
import numpy as np
import pytest
from PIL import Image

from lover1_plugin.config import PRESETS
from lover1_plugin.errors import ConfigError, VideoDecodeError
from lover1_plugin.synthetic import make_test_video, read_frame_index

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
MC = "\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."  # SPEC 2 suffix
LVB_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
LVBENCH_SUFFIX = "Respond with only the letter (A, B, C, or D) of the correct option."
MVBENCH_SUBTASKS = (
    "action_antonym", "action_count", "action_localization", "action_prediction", "action_sequence",
    "character_order", "counterfactual_inference", "egocentric_navigation", "episodic_reasoning",
    "fine_grained_action", "fine_grained_pose", "moving_attribute", "moving_count", "moving_direction",
    "object_existence", "object_interaction", "object_shuffle", "scene_transition", "state_change",
    "unexpected_action",
)  # fmt: skip
LOVE_R1_TASKS = {
    "love_r1_videomme",
    "love_r1_mlvu",
    "love_r1_longvideobench",
    "love_r1_lvbench",
    "love_r1_mvbench",
    "love_r1_needle",
} | {f"love_r1_mvbench_{s}" for s in MVBENCH_SUBTASKS}


def _load_utils():
    """Load tasks/utils.py from its path, the way lmms-eval's ``!function`` does."""
    spec = importlib.util.spec_from_file_location("love_r1_task_utils_under_test", TASKS_DIR / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_tasks_package():
    """tasks/__init__.py (installed as lover1_plugin.tasks; loaded by path in a source checkout)."""
    spec = importlib.util.spec_from_file_location("love_r1_tasks_package", TASKS_DIR / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


utils = _load_utils()
scoring, benchmarks, media = utils.scoring, utils.benchmarks, utils.media


def _yaml(name: str) -> dict:
    from lmms_eval.utils import load_yaml_config

    return load_yaml_config(str(TASKS_DIR / name), mode="simple")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _frames(path: Path) -> tuple[list[np.ndarray], float]:
    """All frames (RGB) of a video and its average frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], float(stream.average_rate)


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """A private $HF_HOME (where lmms-eval unpacks benchmark videos) and $LOVER1_CACHE."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("LOVER1_CACHE", str(tmp_path / "lover1-cache"))
    monkeypatch.delenv("LOVER1_NEEDLE_DIR", raising=False)
    return home


# ---------------------------------------------------------------------------------------
# Hand-made documents in each benchmark's schema

VIDEOMME_DOC = {
    "video_id": "001",
    "duration": "short",
    "domain": "Knowledge",
    "sub_category": "Humanity & History",
    "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
    "videoID": "fFjv93ACGo8",
    "question_id": "001-1",
    "task_type": "Counting Problem",
    "question": "When demonstrating the Germany modern Christmas tree is initially decorated with apples, candles and berries, which kind of the decoration has the largest number?",
    "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."],
    "answer": "C",
}
MLVU_DOC = {
    "video_name": "needle_32.mp4",
    "duration": 467.1,
    "question": "What does the hand coming out of the computer do?\n(A) Delivers a product\n(B) Shakes the woman's hand\n(C) Takes the woman's credit card\n(D) Points at the screen",
    "candidates": [
        "Delivers a product",
        "Shakes the woman's hand",
        "Takes the woman's credit card",
        "Points at the screen",
    ],
    "answer": "A",
    "task_type": "needle",
    "question_id": "needle_32_0",
}
LONGVIDEOBENCH_DOC = {
    "video_id": "86CxyhFV9MI",
    "question": "In the video, which subtitles appear at the same time as the man with black hair?",
    "question_wo_referring_query": "Which subtitles appear at the same time?",
    "candidates": None,
    "correct_choice": 4,
    "position": [158, 256],
    "topic_category": "NP-News-Programs",
    "question_category": "TOS",
    "level": "L2-Relation",
    "id": "86CxyhFV9MI_0",
    "video_path": "86CxyhFV9MI.mp4",
    "subtitle_path": "86CxyhFV9MI_en.json",
    "duration_group": 600,
    "starting_timestamp_for_subtitles": 0,
    "duration": 527.0,
    "view_count": 10,
    "option0": "promote the government",
    "option1": "the 2022 mid-terms",
    "option2": "the party's nominee",
    "option3": "the economy is bad",
    "option4": "that it has to be fixed",
}
LVBENCH_DOC = {
    "key": "6-pB5l8Qvhc",
    "type": "documentary",
    "video_path": "6-pB5l8Qvhc.mp4",
    "uid": "1289",
    "question": "What year appears in the opening caption of the video?\n(A) 1636\n(B) 1366\n(C) 1363\n(D) 1633",
    "answer": "D",
    "question_type": ["key information retrieval"],
    "time_reference": "00:15-00:19",
}
MVBENCH_DOC = {
    "video": "video_9486.mp4",
    "question": "What is the action performed by the person in the video?",
    "candidates": ["Not sure", "Scattering something down", "Piling something up"],
    "answer": "Piling something up",
}


def _needle_docs() -> list[dict]:
    return json.loads((TASKS_DIR / "needle.json").read_text())


# ---------------------------------------------------------------------------------------
# doc_to_text: the SPEC 2 question text, exactly


def test_videomme_prompt_is_spec_text():
    expected = (
        "When demonstrating the Germany modern Christmas tree is initially decorated with apples, candles and "
        "berries, which kind of the decoration has the largest number?\n"
        "A. Apples.\nB. Candles.\nC. Berries.\nD. The three kinds are of the same number.\n"
        "\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
    )
    assert utils.videomme_doc_to_text(VIDEOMME_DOC, {}) == expected
    assert utils.videomme_doc_to_target(VIDEOMME_DOC) == "C"


def test_mlvu_prompt_drops_the_options_the_dataset_appends_to_the_question():
    expected = (
        "What does the hand coming out of the computer do?\nOptions:\n(A) Delivers a product\n"
        "(B) Shakes the woman's hand\n(C) Takes the woman's credit card\n(D) Points at the screen" + MC
    )
    assert utils.mlvu_doc_to_text(MLVU_DOC) == expected
    # the same question stored without embedded options, answer given as text
    plain = {
        **MLVU_DOC,
        "question": "What does the hand coming out of the computer do?",
        "answer": "Points at the screen",
    }
    assert utils.mlvu_doc_to_text(plain) == expected
    assert utils.mlvu_doc_to_target(plain) == "D"
    # options embedded as "Options:" + "A. ..." lines, answer written "(B)"
    dotted = "What does the hand coming out of the computer do?\nOptions:\n" + "\n".join(
        f"{letter}. {text}" for letter, text in zip("ABCD", MLVU_DOC["candidates"], strict=True)
    )
    assert utils.mlvu_doc_to_text({**MLVU_DOC, "question": dotted, "answer": "(B)"}) == expected
    assert utils.mlvu_doc_to_target({**MLVU_DOC, "question": dotted, "answer": "(B)"}) == "B"


def test_longvideobench_prompt_lists_five_options_with_letters():
    expected = (
        "In the video, which subtitles appear at the same time as the man with black hair?\n"
        "A. promote the government\nB. the 2022 mid-terms\nC. the party's nominee\nD. the economy is bad\n"
        "E. that it has to be fixed\nAnswer with the option's letter from the given choices directly."
    )
    assert utils.longvideobench_doc_to_text(LONGVIDEOBENCH_DOC) == expected
    assert utils.longvideobench_doc_to_target(LONGVIDEOBENCH_DOC) == "E"
    four = {**LONGVIDEOBENCH_DOC, "option4": "N/A", "correct_choice": 1}
    assert utils.longvideobench_doc_to_text(four).endswith("D. the economy is bad" + LVB_SUFFIX)


def test_lvbench_prompt_keeps_the_options_inside_the_question():
    expected = (
        "What year appears in the opening caption of the video?\n(A) 1636\n(B) 1366\n(C) 1363\n(D) 1633\n"
        "Respond with only the letter (A, B, C, or D) of the correct option."
    )
    assert utils.lvbench_doc_to_text(LVBENCH_DOC) == expected
    # a document with a separate options list gets them appended, as the built-in task does
    separate = {**LVBENCH_DOC, "question": "What year appears in the opening caption of the video?",
                "options": ["1636", "1366", "1363", "1633"]}  # fmt: skip
    assert utils.lvbench_doc_to_text(separate) == expected


def test_mvbench_prompt_uses_the_mlvu_layout():
    expected = (
        "What is the action performed by the person in the video?\nOptions:\n(A) Not sure\n"
        "(B) Scattering something down\n(C) Piling something up" + MC
    )
    assert utils.mvbench_doc_to_text(MVBENCH_DOC, {"sub_task": "action_antonym"}) == expected
    assert utils.mvbench_doc_to_target(MVBENCH_DOC) == "C"


def test_needle_prompt_uses_the_default_preset_format():
    doc = _needle_docs()[0]
    words = [option.split(". ", 1)[1] for option in doc["options"]]
    expected = (
        doc["question"]
        + "\nOptions:\n"
        + "\n".join(f"({letter}) {w}" for letter, w in zip("ABCD", words, strict=True))
        + MC
    )
    assert utils.needle_doc_to_text(doc) == expected


def test_malformed_document_fails_before_inference():
    with pytest.raises(ValueError, match="neither a letter nor one of the options"):
        utils.mvbench_doc_to_text({**MVBENCH_DOC, "answer": "Jumping"}, {"sub_task": "action_antonym"})


# ---------------------------------------------------------------------------------------
# doc_to_visual: the built-in tasks' video locations under $HF_HOME


def test_video_paths_follow_the_builtin_layout(hf_home):
    expected = {
        "videomme": _touch(hf_home / "videomme" / "data" / "fFjv93ACGo8.mp4"),
        "mlvu": _touch(hf_home / "mlvu" / "needle_32.mp4"),
        "longvideobench": _touch(hf_home / "datasets" / "longvideobench" / "videos" / "86CxyhFV9MI.mp4"),
        "lvbench": _touch(hf_home / "lvbench" / "6-pB5l8Qvhc.mp4"),
        "mvbench": _touch(hf_home / "mvbench_video" / "ssv2_video_mp4" / "video_9486.mp4"),
    }
    assert utils.videomme_doc_to_visual(VIDEOMME_DOC) == [str(expected["videomme"])]
    assert utils.mlvu_doc_to_visual(MLVU_DOC) == [str(expected["mlvu"])]
    assert utils.longvideobench_doc_to_visual(LONGVIDEOBENCH_DOC) == [str(expected["longvideobench"])]
    assert utils.lvbench_doc_to_visual(LVBENCH_DOC) == [str(expected["lvbench"])]
    # an mp4 with no clip bound is handed over untouched (no re-encoding)
    assert utils.mvbench_doc_to_visual(MVBENCH_DOC, {"sub_task": "action_antonym"}) == [str(expected["mvbench"])]


def test_video_path_fallbacks(hf_home):
    mkv = _touch(hf_home / "videomme" / "data" / "fFjv93ACGo8.mkv")
    assert utils.videomme_doc_to_visual(VIDEOMME_DOC) == [str(mkv)]
    nested = _touch(hf_home / "mlvu" / "needle" / "needle_32.mp4")  # <task_type>/<video_name>
    assert utils.mlvu_doc_to_visual(MLVU_DOC) == [str(nested)]
    late = _touch(hf_home / "mvbench_video" / "data0613" / "star" / "Charades_segment" / "EDXBD.mp4")
    doc = {**MVBENCH_DOC, "video": "EDXBD.mp4", "start": 3.0, "end": 12.5}
    # Charades_segment clips are already cut to the bound: no second cut
    assert utils.mvbench_doc_to_visual(doc, {"sub_task": "action_sequence"}) == [str(late)]


def test_missing_video_names_the_path_and_the_fix(hf_home):
    with pytest.raises(VideoDecodeError) as info:
        utils.lvbench_doc_to_visual(LVBENCH_DOC)
    assert info.value.path == str(hf_home / "lvbench" / "6-pB5l8Qvhc.mp4")
    assert "lvbench" in info.value.cause and "HF_HOME" in info.value.cause


def test_mvbench_frame_folder_source_is_reencoded_through_doc_to_visual(hf_home):
    folder = hf_home / "mvbench_video" / "tvqa" / "video_fps3_hq_segment" / "s01e01_seg01_clip_00"
    folder.mkdir(parents=True)
    for index in range(6):
        Image.new("RGB", (64, 48), (40 * index, 0, 0)).save(folder / f"{index + 1:05d}.jpg")
    doc = {**MVBENCH_DOC, "video": "s01e01_seg01_clip_00"}
    [path] = utils.mvbench_doc_to_visual(doc, {"sub_task": "episodic_reasoning"})
    assert Path(path).parent == Path(os.environ["LOVER1_CACHE"]) / "mvbench"
    frames, fps = _frames(Path(path))
    assert (len(frames), fps) == (6, 3.0)


# ---------------------------------------------------------------------------------------
# process_results + aggregation (SPEC 3c)


def test_videomme_scores_right_wrong_and_empty_with_duration_subsets():
    right = utils.videomme_process_results(VIDEOMME_DOC, ["C"])
    assert right["videomme_perception_score"]["score"] == 1.0
    assert right["reference_acc"]["score"] == 1.0
    assert right["reference_acc_short"]["score"] == 1.0
    assert right["reference_acc_long"] == {}  # a short video is not in the long subset
    wrong = utils.videomme_process_results(VIDEOMME_DOC, ["The answer is B."])
    assert wrong["reference_acc"]["pred_answer"] == "B" and wrong["reference_acc"]["score"] == 0.0
    empty = utils.videomme_process_results(VIDEOMME_DOC, [""])
    assert empty["reference_acc"]["score"] == 0.0 and empty["videomme_perception_score"]["score"] == 0.0
    long_doc = {**VIDEOMME_DOC, "duration": "long", "question_id": "300-1"}
    items = [right, wrong, empty, utils.videomme_process_results(long_doc, ["C"])]
    assert utils.accuracy_percent([r["reference_acc"] for r in items]) == 50.0
    assert utils.accuracy_percent([r["reference_acc_short"] for r in items]) == pytest.approx(100 / 3)
    assert utils.accuracy_percent([r["reference_acc_long"] for r in items]) == 100.0
    assert utils.accuracy_percent([r["reference_acc_medium"] for r in items]) is None  # no medium video


def test_json_prediction_scores_the_answer_and_logs_the_trace():
    trace = {
        "rounds": [{"round": 1, "raw": "I need to zoom in on the video.\n\n\\boxed{[10, 40]}"}],
        "intervals": [[5, 45]],
    }
    result = utils.videomme_process_results(VIDEOMME_DOC, [json.dumps({"answer": "C", "trace": trace})])
    assert result["reference_acc"]["score"] == 1.0
    assert result["love_r1"] == {"doc_id": "001-1", "answer": "C", "trace": trace}
    plain = utils.videomme_process_results(VIDEOMME_DOC, ["C"])
    assert plain["love_r1"] == {"doc_id": "001-1", "answer": "C", "trace": None}


def test_mlvu_reference_takes_the_character_before_the_bracket():
    # "(A) ..." -> "A": right for both rules
    both = utils.mlvu_process_results(MLVU_DOC, ["(A) Delivers a product"])
    assert both["reference_acc"]["score"] == 1.0 and both["mlvu_percetion_score"]["score"] == 1.0
    # "A. ..." has no ")": the reference compares the whole text and misses; lmms-eval's extractor finds A
    dotted = utils.mlvu_process_results(MLVU_DOC, ["A. Delivers a product"])
    assert dotted["reference_acc"]["score"] == 0.0 and dotted["mlvu_percetion_score"]["score"] == 1.0
    empty = utils.mlvu_process_results(MLVU_DOC, [""])
    assert empty["reference_acc"]["score"] == 0.0 and empty["mlvu_percetion_score"]["score"] == 0.0


def test_mlvu_mean_over_tasks_with_and_without_order():
    order_doc = {**MLVU_DOC, "task_type": "order", "question_id": "order_1"}
    count_doc = {**MLVU_DOC, "task_type": "count", "question_id": "count_1"}
    results = [
        utils.mlvu_process_results(MLVU_DOC, ["A"]),  # needle 1/1
        utils.mlvu_process_results(order_doc, ["B"]),  # order 0/1
        utils.mlvu_process_results(count_doc, ["A"]),  # count 1/2
        utils.mlvu_process_results(count_doc, ["C"]),
    ]
    assert utils.mlvu_mean_over_tasks([r["reference_acc"] for r in results]) == pytest.approx(50.0)
    assert utils.mlvu_mean_over_tasks_wo_order([r["reference_acc_wo_order"] for r in results]) == pytest.approx(75.0)
    assert utils.mlvu_mean_over_tasks([r["mlvu_percetion_score"] for r in results]) == pytest.approx(50.0)


def test_longvideobench_scores_letter_e_and_groups_by_duration():
    right = utils.longvideobench_process_results(LONGVIDEOBENCH_DOC, ["E"])
    assert right["reference_acc"]["score"] == 1.0 and right["lvb_acc"]["score"] == 1.0
    assert right["reference_acc_600"]["score"] == 1.0 and right["reference_acc_15"] == {}
    wrong = utils.longvideobench_process_results(LONGVIDEOBENCH_DOC, ["Best option: (B)"])
    assert wrong["reference_acc"]["pred_answer"] == "B"
    short_doc = {**LONGVIDEOBENCH_DOC, "id": "x_1", "duration_group": 15}
    results = [right, wrong, utils.longvideobench_process_results(short_doc, ["E"])]
    assert utils.accuracy_percent([r["reference_acc"] for r in results]) == pytest.approx(200 / 3)
    assert utils.accuracy_percent([r["reference_acc_600"] for r in results]) == 50.0
    assert utils.accuracy_fraction([r["lvb_acc_15"] for r in results]) == 1.0  # lmms-eval's scale: [0, 1]


def test_longvideobench_official_fallback_is_a_reproducible_random_choice():
    four = {**LONGVIDEOBENCH_DOC, "option4": "N/A", "correct_choice": 0}
    picks = {utils.longvideobench_process_results(four, ["no idea"])["lvb_acc"]["pred_answer"] for _ in range(3)}
    assert len(picks) == 1 and picks <= set("ABCD")  # same pick every time, among the 4 options
    assert utils.longvideobench_process_results(four, ["no idea"])["reference_acc"]["pred_answer"] == ""


def test_lvbench_scores():
    right = utils.lvbench_process_results(LVBENCH_DOC, ["(D) 1633"])
    wrong = utils.lvbench_process_results(LVBENCH_DOC, ["B"])
    empty = utils.lvbench_process_results(LVBENCH_DOC, [""])
    assert [r["reference_acc"]["score"] for r in (right, wrong, empty)] == [1.0, 0.0, 0.0]
    assert utils.accuracy_fraction([r["lvbench_score"] for r in (right, wrong, empty)]) == pytest.approx(1 / 3)


def test_mvbench_empty_prediction_is_wrong_and_counted():
    right = utils.mvbench_process_results(MVBENCH_DOC, ["(C) Piling something up"])
    wrong = utils.mvbench_process_results(MVBENCH_DOC, ["B"])
    empty = utils.mvbench_process_results(MVBENCH_DOC, [""])
    assert [r["reference_acc"]["score"] for r in (right, wrong, empty)] == [1.0, 0.0, 0.0]
    assert [r["empty_predictions"] for r in (right, wrong, empty)] == [0, 0, 1]
    results = (right, wrong, empty)
    assert utils.accuracy_percent([r["reference_acc"] for r in results]) == pytest.approx(100 / 3)
    assert utils.count([r["empty_predictions"] for r in results]) == 1
    # lmms-eval's own MVBench accuracy leaves empty predictions out of the count
    assert utils.mvbench_official_accuracy([r["mvbench_accuracy"] for r in results]) == 50.0
    assert utils.sum_over_subtasks([1, 0, 2], [200, 200, 200], True) == 3


def test_needle_scores_the_letter_and_the_zoom_onto_the_needle():
    doc = _needle_docs()[0]
    t0, t1 = doc["needle_span"]
    hit = json.dumps({"answer": doc["answer"], "trace": {"intervals": [[max(0, t0 - 5), t0 + 5]]}})
    miss = json.dumps({"answer": "A" if doc["answer"] != "A" else "B", "trace": {"intervals": [[t1 + 10, t1 + 20]]}})
    results = [utils.needle_process_results(doc, [hit]), utils.needle_process_results(doc, [miss])]
    assert [r["needle_acc"]["score"] for r in results] == [1.0, 0.0]
    assert [r["needle_zoom_hit"]["score"] for r in results] == [1.0, 0.0]
    assert utils.needle_process_results(doc, [doc["answer"]])["needle_zoom_hit"]["score"] == 0.0  # no trace


# ---------------------------------------------------------------------------------------
# Reference extraction rules (SPEC 3c), one line per case


@pytest.mark.parametrize(
    "prediction, letters, expected",
    [
        ("C", "ABCD", "C"),
        ("The best answer is D.", "ABCD", "D"),  # prefix removed first
        ("Best option: C", "ABCD", "C"),  # "Best option:" would otherwise give B
        ("E", "ABCD", ""),  # E is not a Video-MME / LVBench letter
        ("E", "ABCDE", "E"),  # but a LongVideoBench one
        ("the person puts the cup on the table and then walks to the door", "ABCD", ""),  # >10 words, no letter
        ("", "ABCD", ""),
    ],
)
def test_reference_letter(prediction, letters, expected):
    assert scoring.reference_letter(prediction, letters) == expected


@pytest.mark.parametrize(
    "prediction, expected",
    [("B", True), ("b.", True), ("(B)", True), ("B) cup", True), (" (b). the cup", True), ("A", False),
     ("", False), ("   ", False), ("Because", False)],
)  # fmt: skip
def test_mvbench_reference_rule(prediction, expected):
    assert scoring.mvbench_reference_correct(prediction, "B") is expected


def test_non_json_or_incomplete_json_predictions_are_scored_as_text():
    assert scoring.split_prediction('{"answer": "B"}') == ('{"answer": "B"}', None)
    assert scoring.split_prediction("{not json") == ("{not json", None)
    assert scoring.split_prediction({"answer": "A", "trace": []}) == ("A", [])


# ---------------------------------------------------------------------------------------
# MVBench re-encoding (SPEC 3c): gif/webm -> mp4, frame folder -> 3 fps mp4, bound cut


def _write_animation(path: Path, suffix: str) -> Path:
    """Six 33x21 frames (odd sides) at 10 fps, frame i of red level 40 * i."""
    frames = [np.full((21, 33, 3), (40 * i, 20, 200 - 30 * i), np.uint8) for i in range(6)]
    if suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    else:  # webm (VP8)
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libvpx", rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 20, "yuv420p"
            for i, f in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:20, :32]), format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("suffix", [".gif", ".webm"])
def test_animation_becomes_a_cached_deterministic_mp4(tmp_path, suffix):
    source = _write_animation(tmp_path / f"clip{suffix}", suffix)
    first = media.prepare_mvbench_video(source, cache_dir=tmp_path / "cache-a")
    assert first.suffix == ".mp4" and first.parent == tmp_path / "cache-a"
    frames, fps = _frames(first)
    assert (len(frames), fps, frames[0].shape) == (6, 10.0, (20, 32, 3))  # odd sides cropped to even
    reds = [int(f[10, 16, 0]) for f in frames]
    assert reds == sorted(reds) and reds[-1] - reds[0] > 150  # frame order kept
    mtime = first.stat().st_mtime_ns
    assert media.prepare_mvbench_video(source, cache_dir=tmp_path / "cache-a") == first
    assert first.stat().st_mtime_ns == mtime  # served from the cache, not re-encoded
    second = media.prepare_mvbench_video(source, cache_dir=tmp_path / "cache-b")
    assert second.read_bytes() == first.read_bytes()  # deterministic


def test_frame_folder_becomes_3fps_mp4_in_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(1, 11):  # frame1 ... frame10: "frame10" must come last, not second
        Image.new("RGB", (40, 30), (25 * index, 0, 0)).save(folder / f"frame{index}.png")
    out = media.prepare_mvbench_video(folder, cache_dir=tmp_path / "cache")
    frames, fps = _frames(out)
    assert (len(frames), fps) == (10, 3.0)
    reds = [int(f[15, 20, 0]) for f in frames]
    assert all(abs(r - 25 * (i + 1)) <= 8 for i, r in enumerate(reds)), reds


def test_bound_cuts_the_clip_at_the_source_rate(tmp_path):
    source = make_test_video(tmp_path / "long.mp4", duration_s=4, fps=10, size=(64, 128))
    out = media.prepare_mvbench_video(source, bound=(1.0, 2.5), cache_dir=tmp_path / "cache")
    frames, fps = _frames(out)
    assert fps == 10.0
    assert [read_frame_index(f) for f in frames] == list(range(10, 25))  # seconds 1.0 up to 2.5
    end_past = media.prepare_mvbench_video(source, bound=(3.5, 9.0), cache_dir=tmp_path / "cache")
    assert [read_frame_index(f) for f in _frames(end_past)[0]] == list(range(35, 40))  # clamped to the video


def test_reencoding_errors_are_typed(tmp_path):
    source = make_test_video(tmp_path / "short.mp4", duration_s=1, fps=10, size=(64, 128))
    assert media.prepare_mvbench_video(source) == source  # mp4, no bound: untouched
    with pytest.raises(VideoDecodeError, match="holds no frame"):
        media.prepare_mvbench_video(source, bound=(5.0, 8.0), cache_dir=tmp_path / "cache")
    with pytest.raises(VideoDecodeError, match="end must be after start"):
        media.prepare_mvbench_video(source, bound=(2.0, 1.0), cache_dir=tmp_path / "cache")
    with pytest.raises(VideoDecodeError, match="no such file"):
        media.prepare_mvbench_video(tmp_path / "missing.webm", cache_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoDecodeError, match="frames in the folder"):
        media.prepare_mvbench_video(tmp_path / "empty", cache_dir=tmp_path / "cache")
    corrupt = tmp_path / "corrupt.webm"
    corrupt.write_bytes(b"\x1a\x45\xdf\xa3 not a real webm")
    with pytest.raises(VideoDecodeError):
        media.prepare_mvbench_video(corrupt, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.mp4"))  # nothing half-written left behind


# ---------------------------------------------------------------------------------------
# Needle data


def test_needle_json_is_what_the_generator_makes():
    docs = _needle_docs()
    assert docs == media.build_needle_docs(num_questions=4, duration_s=150.0, fps=1.0, seed=0)
    assert len(docs) == 4 and all(doc["duration"] <= 180 for doc in docs)  # small enough for a CPU run


def test_needle_video_is_generated_once_into_the_needle_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LOVER1_NEEDLE_DIR", str(tmp_path / "needle"))
    doc = _needle_docs()[1]
    [path] = utils.needle_doc_to_visual(doc)
    assert Path(path) == tmp_path / "needle" / doc["video"]
    frames, fps = _frames(Path(path))
    assert (len(frames), fps) == (150, 1.0)
    mtime = Path(path).stat().st_mtime_ns
    assert utils.needle_doc_to_visual(doc) == [path] and Path(path).stat().st_mtime_ns == mtime
    assert sorted(p.name for p in (tmp_path / "needle").glob("*.mp4")) == [d["video"] for d in _needle_docs()]


def test_needle_default_location_is_the_package_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("LOVER1_NEEDLE_DIR", raising=False)
    monkeypatch.setenv("LOVER1_CACHE", str(tmp_path))
    assert media.needle_directory(_needle_docs()[0]) == tmp_path / "needle" / "seed0-n4-d150-fps1"


def test_planted_corrupt_needle_video_is_handed_over_as_is(tmp_path, monkeypatch):
    monkeypatch.setenv("LOVER1_NEEDLE_DIR", str(tmp_path))
    doc = _needle_docs()[0]
    (tmp_path / doc["video"]).write_bytes(b"not a video")
    assert utils.needle_doc_to_visual(doc) == [str(tmp_path / doc["video"])]
    assert (tmp_path / doc["video"]).read_bytes() == b"not a video"


def test_stale_needle_document_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LOVER1_NEEDLE_DIR", str(tmp_path))
    doc = {**_needle_docs()[0], "duration": 20.0, "num_questions": 1}  # not what these parameters give
    with pytest.raises(ConfigError, match="rebuild needle.json"):
        utils.needle_doc_to_visual(doc)
    assert not list(tmp_path.glob("*.mp4"))


# ---------------------------------------------------------------------------------------
# YAML files: same data as the built-in tasks, SPEC generation settings


BUILTIN_YAML = {
    "love_r1_videomme.yaml": "videomme/videomme.yaml",
    "love_r1_mlvu.yaml": "mlvu/mlvu_dev.yaml",
    "love_r1_longvideobench.yaml": "longvideobench/longvideobench_val_v.yaml",
    "love_r1_lvbench.yaml": "lvbench/lvbench.yaml",
    **{f"love_r1_mvbench_{s}.yaml": f"mvbench/mvbench_{s}.yaml" for s in MVBENCH_SUBTASKS},
}
EXPECTED_PRESET = {"videomme": "videomme", "mlvu": "mlvu", "longvideobench": "longvideobench", "lvbench": "lvbench"}


@pytest.mark.parametrize("ours, builtin", sorted(BUILTIN_YAML.items()))
def test_dataset_source_matches_the_builtin_task(ours, builtin):
    import lmms_eval

    theirs = _yaml_from(Path(lmms_eval.__file__).parent / "tasks" / builtin)
    mine = _yaml(ours)
    for key in ("dataset_path", "dataset_name", "test_split", "dataset_kwargs"):
        assert mine.get(key) == theirs.get(key), key
    benchmark = ours.removeprefix("love_r1_").removesuffix(".yaml")
    benchmark = "mvbench" if benchmark.startswith("mvbench") else benchmark
    assert mine["dataset_kwargs"]["cache_dir"] == benchmarks.VIDEO_CACHE_DIRS[benchmark]
    generation = mine["generation_kwargs"]
    assert generation == {"max_new_tokens": 2048, "do_sample": False, "until": [],
                          "love_r1_preset": EXPECTED_PRESET.get(benchmark, benchmark)}  # fmt: skip
    assert generation["love_r1_preset"] in PRESETS


def _yaml_from(path: Path) -> dict:
    from lmms_eval.utils import load_yaml_config

    return load_yaml_config(str(path), mode="simple")


def test_needle_yaml_uses_the_default_preset_and_local_json():
    config = _yaml("love_r1_needle.yaml")
    assert config["generation_kwargs"]["love_r1_preset"] == "default"
    assert config["dataset_path"] == "json"
    assert Path(config["dataset_kwargs"]["data_files"]) == TASKS_DIR / "needle.json"  # resolved next to the YAML


def test_mvbench_folders_and_group_match_the_builtin():
    from lmms_eval.tasks.mvbench.utils import DATA_LIST

    assert dict(benchmarks.MVBENCH_FOLDERS) == DATA_LIST
    import lmms_eval

    builtin_group = _yaml_from(Path(lmms_eval.__file__).parent / "tasks" / "mvbench" / "mvbench.yaml")
    group = _yaml("love_r1_mvbench.yaml")
    assert group["task"] == [name.replace("mvbench_", "love_r1_mvbench_", 1) for name in builtin_group["task"]]
    assert [m["metric"] for m in group["aggregate_metric_list"]] == [
        "mvbench_accuracy",
        "reference_acc",
        "empty_predictions",
    ]


def test_mvbench_group_sums_empty_predictions_over_subtasks():
    from lmms_eval.utils import load_yaml_config

    group = load_yaml_config(str(TASKS_DIR / "love_r1_mvbench.yaml"), mode="full")
    empty = next(m for m in group["aggregate_metric_list"] if m["metric"] == "empty_predictions")
    assert empty["aggregation"]([2, 0, 1], [200, 200, 200], False) == 3


def test_every_metric_is_produced_by_process_results(hf_home):
    cases = {
        "love_r1_videomme.yaml": utils.videomme_process_results(VIDEOMME_DOC, ["C"]),
        "love_r1_mlvu.yaml": utils.mlvu_process_results(MLVU_DOC, ["A"]),
        "love_r1_longvideobench.yaml": utils.longvideobench_process_results(LONGVIDEOBENCH_DOC, ["E"]),
        "love_r1_lvbench.yaml": utils.lvbench_process_results(LVBENCH_DOC, ["D"]),
        "love_r1_mvbench_action_antonym.yaml": utils.mvbench_process_results(MVBENCH_DOC, ["C"]),
        "love_r1_needle.yaml": utils.needle_process_results(_needle_docs()[0], ["C"]),
    }
    for name, result in cases.items():
        metrics = [m["metric"] for m in _yaml(name)["metric_list"]]
        assert set(result) == set(metrics) | {"love_r1"}, name


# ---------------------------------------------------------------------------------------
# lmms-eval's TaskManager


def test_task_manager_lists_the_tasks_and_loads_needle_docs_offline(tmp_path, monkeypatch):
    from lmms_eval.tasks import TaskManager, get_task_dict

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # data_files must resolve next to the YAML, not against the cwd
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    assert set(manager.all_tasks) == LOVE_R1_TASKS
    assert "love_r1_mvbench" in manager.all_groups
    task = get_task_dict(["love_r1_needle"], manager)["love_r1_needle"]
    docs = list(task.test_docs())
    assert [doc["id"] for doc in docs] == [doc["id"] for doc in _needle_docs()]
    assert task.config.generation_kwargs["love_r1_preset"] == "default"
    assert task.doc_to_text(docs[0]) == utils.needle_doc_to_text(_needle_docs()[0])


def test_tasks_sit_beside_the_builtin_ones_without_clashing():
    from lmms_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR))  # with lmms-eval's own tasks too
    assert LOVE_R1_TASKS <= set(manager.all_tasks)
    assert set(_load_tasks_package().TASK_NAMES) <= set(manager.all_tasks)
    assert "tasks/videomme/" in manager.task_index["videomme"]["yaml_path"]  # the built-in task is untouched


def test_needle_task_end_to_end_through_lmms_eval(tmp_path, monkeypatch):
    """A scripted model answers 3 of 4 needle questions right through lmms-eval's own evaluator."""
    from lmms_eval.api.model import lmms
    from lmms_eval.evaluator import evaluate
    from lmms_eval.tasks import TaskManager, get_task_dict

    monkeypatch.setenv("LOVER1_NEEDLE_DIR", str(tmp_path / "needle"))
    answers = {doc["id"]: doc["answer"] for doc in _needle_docs()}
    wrong_id = _needle_docs()[3]["id"]

    class ScriptedModel(lmms):
        def generate_until(self, requests):
            replies = []
            for request in requests:
                context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
                doc = self.task_dict[task][split][doc_id]
                [video] = doc_to_visual(doc)
                assert Path(video).is_file() and gen_kwargs["love_r1_preset"] == "default"
                answer = answers[doc["id"]]
                if doc["id"] == wrong_id:
                    answer = "ABCD"[("ABCD".index(answer) + 1) % 4]  # the next letter: wrong
                trace = {"intervals": [list(doc["needle_span"])] if doc["id"] != wrong_id else []}
                replies.append(json.dumps({"answer": answer, "trace": trace}))
            return replies

        def loglikelihood(self, requests):
            raise NotImplementedError

        def generate_until_multi_round(self, requests):
            raise NotImplementedError

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    task_dict = get_task_dict(["love_r1_needle"], manager)
    model = ScriptedModel()
    model.task_dict = {name: task.dataset for name, task in task_dict.items()}
    output = evaluate(model, task_dict, bootstrap_iters=0, log_samples=True, process_docs_parallel=1)
    metrics = output["results"]["love_r1_needle"]
    assert metrics["needle_acc,none"] == 75.0
    assert metrics["needle_zoom_hit,none"] == 75.0
    samples = output["samples"]["love_r1_needle"]
    assert {s["love_r1"]["doc_id"] for s in samples} == set(answers)
    assert all("intervals" in s["love_r1"]["trace"] for s in samples)
