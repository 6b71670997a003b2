"""Training records and sample builders (SPEC 4), on planned views only (no video is decoded)."""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter

import pytest

from lover1_plugin.errors import ViewError
from lover1_plugin.train.samples import (
    SFT_VIEW_CONFIG,
    SampleSpec,
    build_grpo_step1,
    build_grpo_step2,
    build_sft_sample,
    clue_intervals,
    drop_overlong,
    grpo_question,
    merge_intervals,
    random_intervals,
    recentre_short,
    round_intervals,
    sample_tokens,
    sft_slow_intervals,
)
from lover1_plugin.train.schema import (
    DataError,
    GRPORecord,
    SFTRecord,
    load_grpo_records,
    load_sft_records,
    parse_grpo_record,
    parse_sft_record,
)
from lover1_plugin.video import VideoInfo

# SPEC 2 strings, verbatim (the test must not borrow them from the code under test).
ZOOM = (
    "Based on the video and the user question, determine whether the visual content is sufficient to answer the "
    "question. If you have enough information, reason using the visual content and provide your final answer "
    "within \\boxed{}. Otherwise, you may zoom in a specific interval of the video related to the question for "
    "more details based on your reasoning. Also provide the time span of the interval in seconds within "
    "\\boxed{[start_time, end_time]}."
)
MC = "\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."

HOUR = VideoInfo(path="hour.mp4", num_frames=108_000, fps=30.0, width=1280, height=720)  # D = 3600
TEN_MIN = VideoInfo(path="ten.mp4", num_frames=18_000, fps=30.0, width=1280, height=720)  # D = 600
HUNDRED = VideoInfo(path="hundred.mp4", num_frames=3_000, fps=30.0, width=1280, height=720)  # D = 100
FORTY = VideoInfo(path="forty.mp4", num_frames=1_200, fps=30.0, width=1280, height=720)  # D = 40


class ScriptedRandom(random.Random):
    """A Random whose ``random()`` and ``randint()`` replay given values (checked against the bounds)."""

    def __init__(self, draws=(), ints=()):
        super().__init__(0)
        self.draws, self.ints = list(draws), list(ints)

    def random(self):
        return self.draws.pop(0)

    def randint(self, a, b):
        value = self.ints.pop(0)
        if not a <= value <= b:
            raise AssertionError(f"scripted randint {value} outside [{a}, {b}]")
        return value


def sft(question="What is on the sign?", target="B", **fields) -> SFTRecord:
    return SFTRecord(source="t.jsonl", index=0, video="v.mp4", question=question, target=target, **fields)


def user_texts(spec: SampleSpec) -> list[str]:
    return [part["text"] for part in spec.messages[1]["content"] if part["type"] == "text"]


def slow(spec: SampleSpec):
    return spec.views[1:]


# --------------------------------------------------------------------------- schema


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


SFT_RAW = {
    "video": "clips/a.mp4",
    "messages": [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "<video>\nWhat is on the sign?\n"},
        {"role": "assistant", "content": "I get the answer.\n\n\\boxed{B}"},
    ],
    "zoomin_intervals": [[100.4, 130.6]],
    "cot_data": {"step": 2},
}


def test_load_sft_records_jsonl_and_json(tmp_path):
    records = load_sft_records(write_jsonl(tmp_path / "s2.jsonl", [SFT_RAW, {**SFT_RAW, "cot_data": None}]))
    first = records[0]
    assert first.question == "What is on the sign?"  # <video> marker and surrounding whitespace removed
    assert first.target == "I get the answer.\n\n\\boxed{B}"  # the assistant turn, untouched
    assert first.zoomin_intervals == ((100.4, 130.6),) and first.cot
    assert not records[1].cot and records[1].index == 1
    assert first.where == f"{tmp_path / 's2.jsonl'}#0"
    (tmp_path / "s1.json").write_text(json.dumps([{**SFT_RAW, "tgt": [3.7, 9.2]}]), encoding="utf-8")
    (only,) = load_sft_records(tmp_path / "s1.json", video_root="/data")
    assert only.tgt == ((3.7, 9.2),)  # one [s, e] pair is one clue
    assert only.video == "/data/clips/a.mp4"  # relative paths join video_root


def test_sft_content_parts_are_joined():
    raw = {
        **SFT_RAW,
        "messages": [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
        ],
    }
    record = parse_sft_record(raw)
    assert (record.question, record.target) == ("Q?", "A")


@pytest.mark.parametrize(
    "change, field, problem",
    [
        ({"video": ""}, "video", "non-empty string"),
        ({"messages": "Q"}, "messages", "list of chat messages"),
        ({"messages": [{"role": "assistant", "content": "A"}]}, "messages", "one user turn then one assistant"),
        ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "A"}]}, "messages", "content"),
        (
            {"messages": [{"role": "user", "content": "<video>"}, {"role": "assistant", "content": "A"}]},
            "messages",
            "no question text",
        ),
        ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": " "}]}, "messages", "empty"),
        ({"zoomin_intervals": [[10, "x"]]}, "zoomin_intervals", "item 0 must be a [start, end] pair"),
        ({"zoomin_intervals": [[30, 10]]}, "zoomin_intervals", "0 <= start <= end"),
        ({"zoomin_intervals": [[-1, 10]]}, "zoomin_intervals", "0 <= start <= end"),
        ({"zoomin_intervals": [[0, 1]] * 4}, "zoomin_intervals", "at most 3"),
        ({"tgt": {"s": 1}}, "tgt", "list of [start, end] pairs"),
        (
            {"messages": [{"role": "user", "content": "Q\n" + ZOOM}, {"role": "assistant", "content": "A"}]},
            "messages",
            "already holds the zoom instruction",
        ),
    ],
)
def test_sft_validation_names_file_record_and_field(tmp_path, change, field, problem):
    path = write_jsonl(tmp_path / "bad.jsonl", [SFT_RAW, SFT_RAW, {**SFT_RAW, **change}])
    with pytest.raises(DataError, match=re.escape(problem)) as caught:
        load_sft_records(path)
    assert (caught.value.source, caught.value.index, caught.value.field) == (str(path), 2, field)
    assert str(caught.value).startswith(f"{path}: record 2: field {field!r}: ")


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="cannot read the file"):
        load_sft_records(tmp_path / "missing.jsonl")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(SFT_RAW) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="record 1: line 3 is not valid JSON"):
        load_sft_records(broken)
    (tmp_path / "obj.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="must hold a list of records"):
        load_sft_records(tmp_path / "obj.json")
    (tmp_path / "num.json").write_text("[3]", encoding="utf-8")
    with pytest.raises(DataError, match="record 0: a record must be a JSON object"):
        load_sft_records(tmp_path / "num.json")


GRPO_RAW = {
    "path": "clips/b.mp4",
    "problem": "What does the sign say?\n",
    "options": ["A. stop", "B. go"],
    "problem_type": "multiple choice",
    "solution": "<answer>B</answer>",
    "zoomin_intervals": [[100, 130]],
}


def test_load_grpo_records(tmp_path):
    grounding = {**GRPO_RAW, "tgt": [[200, 220]], "solution": None}
    qa, ground = load_grpo_records(write_jsonl(tmp_path / "rl.jsonl", [GRPO_RAW, grounding]))
    assert (qa.answer, qa.options, qa.tgt, qa.is_grounding) == ("B", ("A. stop", "B. go"), None, False)
    assert (ground.tgt, ground.answer, ground.is_grounding) == (((200.0, 220.0),), "", True)
    ocr = parse_grpo_record({**GRPO_RAW, "problem_type": "ocr", "solution": "<answer> EXIT 3 </answer>"})
    assert (ocr.problem_type, ocr.answer) == ("OCR", "EXIT 3")  # canonical type, answer stripped


@pytest.mark.parametrize(
    "change, field, problem",
    [
        ({"path": None}, "path", "non-empty string"),
        ({"problem": ""}, "problem", "non-empty string"),
        ({"problem_type": "essay"}, "problem_type", "must be one of multiple choice"),
        ({"options": []}, "options", "needs its options"),
        ({"options": ["A", 2]}, "options", "list of strings"),
        ({"solution": "B"}, "solution", "<answer>X</answer>"),
        ({"solution": "<answer> </answer>"}, "solution", "<answer>X</answer>"),
        ({"solution": None}, "solution", "non-empty string"),  # QA samples need a solution
        ({"tgt": []}, "tgt", "at least one interval"),
        ({"zoomin_intervals": [[5]]}, "zoomin_intervals", "item 0"),
    ],
)
def test_grpo_validation_names_file_record_and_field(tmp_path, change, field, problem):
    path = write_jsonl(tmp_path / "rl.jsonl", [{**GRPO_RAW, **change}])
    with pytest.raises(DataError, match=re.escape(problem)) as caught:
        load_grpo_records(path)
    assert (caught.value.index, caught.value.field) == (0, field)


# --------------------------------------------------------------------------- interval rules


def test_interval_helpers_hand_worked():
    assert round_intervals([(100.4, 130.6), (2.5, 3.5)]) == [(100, 131), (2, 4)]  # round half to even
    assert recentre_short((100, 102), 600) == (98.0, 104.0)  # 2 s < 5 s: [mid - 3, mid + 3], mid 101
    assert recentre_short((0, 2), 600) == (0.0, 4.0)  # clamped at 0
    assert recentre_short((598, 600), 600) == (596.0, 600.0)  # clamped at D
    assert recentre_short((100, 105), 600) == (100, 105)  # 5 s is not shorter than 5 s
    assert merge_intervals([(30, 40), (0, 10), (5, 12), (12, 15)]) == [(0, 15), (30, 40)]


def test_clue_intervals_truncate_merge_cap_and_widen():
    tgt = [(300, 310), (10.9, 20.9), (20.5, 30.2), (100.7, 110.2), (200, 210)]
    # int(): (10, 20) (20, 30) (100, 110) (200, 210) (300, 310); merged: (10, 30) ...; first 3 kept
    rng = ScriptedRandom(ints=[5, 0, 3, 5, 1, 2])  # start/end widening, clue by clue
    assert clue_intervals(tgt, 600, rng) == [(5, 30), (97, 115), (199, 212)]
    assert clue_intervals([(2.9, 598.1)], 600, ScriptedRandom(ints=[5, 5])) == [(0, 600)]  # clamped to [0, D]


def test_random_intervals_counts_and_lengths():
    rng = random.Random(7)
    for duration, most in [(20.0, 1), (100.0, 2), (179.9, 2), (180.0, 3), (3600.0, 3)]:
        counts = Counter()
        for _ in range(400):
            clips = random_intervals(duration, rng)
            counts[len(clips)] += 1
            for start, end in clips:
                assert 0 <= start < end <= duration
                span = end - start
                assert span == min(duration - start, max(16, span))  # at least 16 s unless the video ends
                assert span <= max(duration // 8, 16)
        assert sorted(counts) == list(range(most + 1)), duration  # D < 30: 0-1, D < 180: 0-2, else 0-3
    # a 10 s video: the 16 s clip is cut to the video
    assert random_intervals(10.0, ScriptedRandom(ints=[1, 0, 0])) == [(0, 10.0)]
    # D = 3600: 2 clips of max(randint(0, 450), 16) s
    assert random_intervals(3600.0, ScriptedRandom(ints=[2, 300, 1000, 5, 7])) == [(1000, 1300), (7, 23)]


# --------------------------------------------------------------------------- stage-1 proportions


def branch(clips):
    return "whole" if clips is None else "intervals" if clips else "none"


def test_stage1_with_clues_is_60_20_20():
    rng, record = random.Random(1234), sft(tgt=((100.0, 120.0),))
    counts = Counter(branch(sft_slow_intervals(record, 600.0, rng)) for _ in range(20_000))
    assert counts["intervals"] / 20_000 == pytest.approx(0.6, abs=0.015)
    assert counts["whole"] / 20_000 == pytest.approx(0.2, abs=0.015)
    assert counts["none"] / 20_000 == pytest.approx(0.2, abs=0.015)


def test_stage1_without_clues_is_90_10():
    rng, record = random.Random(99), sft()
    outcomes = [sft_slow_intervals(record, 600.0, rng) for _ in range(20_000)]
    whole = sum(o is None for o in outcomes) / 20_000
    assert whole == pytest.approx(0.9, abs=0.01)
    counts = Counter(len(o) for o in outcomes if o is not None)  # the 10%: 0-3 random clips on a 600 s video
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(n / sum(counts.values()) == pytest.approx(0.25, abs=0.05) for n in counts.values())


def test_sampling_is_seeded_and_leaves_the_global_rng_alone():
    random.seed(5)
    state = random.getstate()
    record = sft(tgt=((100.0, 120.0),))
    first = [build_sft_sample(record, TEN_MIN, random.Random(s)) for s in range(20)]
    again = [build_sft_sample(record, TEN_MIN, random.Random(s)) for s in range(20)]
    assert first == again
    assert len({spec.views for spec in first}) > 1  # the seeds do pick different views
    assert random.getstate() == state


# --------------------------------------------------------------------------- SFT samples


def test_cot_sample_views_prompt_and_target():
    record = sft(target="I need to zoom in...", zoomin_intervals=((100.4, 130.6),), cot=True)
    spec = build_sft_sample(record, TEN_MIN, ScriptedRandom())  # CoT samples draw nothing
    fast, (clip,) = spec.views[0], slow(spec)
    assert fast.kind == "fast" and fast.num_frames == 768 and (fast.height, fast.width) == (112, 196)
    assert clip.kind == "slow" and clip.label == (100, 131)  # int(round()): 100.4 -> 100, 130.6 -> 131
    assert clip.num_frames == 32 and (clip.frame_ids[0], clip.frame_ids[-1]) == (3000, 3930)
    assert (clip.height, clip.width) == (336, 588)  # 256 * 28 * 28 budget
    assert user_texts(spec) == [
        "Full video [0, 600]:",
        "Subset zoom-in video clip [100, 131]:",
        "What is on the sign?\n" + ZOOM,
    ]
    assert spec.target == "I need to zoom in..." and spec.assistant_prefix is None
    assert spec.full_messages()[-1] == {"role": "assistant", "content": [{"type": "text", "text": spec.target}]}
    assert spec.messages[0]["content"][0]["text"].startswith("You are a helpful assistant.")


@pytest.mark.parametrize("count, frames", [(1, 32), (2, 24), (3, 16)])
def test_cot_slow_frames_by_number_of_views(count, frames):
    clips = ((400.0, 440.0), (10.0, 50.0), (200.0, 240.0))[:count]  # unsorted on purpose
    spec = build_sft_sample(sft(zoomin_intervals=clips, cot=True), TEN_MIN, ScriptedRandom())
    assert [p.num_frames for p in slow(spec)] == [frames] * count
    assert spec.slow_labels == sorted((int(s), int(e)) for s, e in clips)  # slow views sorted by start
    assert user_texts(spec)[1:-1] == [f"Subset zoom-in video clip [{s}, {e}]:" for s, e in spec.slow_labels]


@pytest.mark.parametrize("count, frames", [(1, 32), (2, 16), (3, 16)])
def test_other_samples_slow_frames_and_no_instruction(count, frames):
    clips = ((10.0, 50.0), (200.0, 240.0), (400.0, 440.0))[:count]
    spec = build_sft_sample(sft(zoomin_intervals=clips), TEN_MIN, ScriptedRandom())
    assert [p.num_frames for p in slow(spec)] == [frames] * count
    assert user_texts(spec)[-1] == "What is on the sign?"  # zoom instruction only on CoT samples


def test_short_clips_recentred_on_cot_samples_only():
    cot = build_sft_sample(sft(zoomin_intervals=((100.0, 102.4),), cot=True), TEN_MIN, ScriptedRandom())
    # rounded (100, 102), 2 s < 5 s: [101 - 3, 101 + 3]; 6 s of clip gives min(int(6 * 2), 32) = 12 frames
    assert cot.slow_labels == [(98, 104)] and slow(cot)[0].num_frames == 12
    other = build_sft_sample(sft(zoomin_intervals=((100.0, 102.4),)), TEN_MIN, ScriptedRandom())
    assert other.slow_labels == [(100, 102)] and slow(other)[0].num_frames == 4


def test_sft_factor_applies_to_the_fast_view_below_120_s():
    spec = build_sft_sample(sft(zoomin_intervals=((10.0, 40.0),), cot=True), HUNDRED, ScriptedRandom())
    fast, (clip,) = spec.views[0], slow(spec)
    assert (fast.num_frames, fast.height, fast.width) == (200, 168, 280)  # 2 * 32 * 28 * 28 budget (D < 120)
    assert (clip.height, clip.width) == (336, 588)  # slow views never get the factor in SFT
    long = build_sft_sample(sft(zoomin_intervals=((10.0, 40.0),), cot=True), TEN_MIN, ScriptedRandom())
    assert (long.views[0].height, long.views[0].width) == (112, 196)  # D >= 120: factor 1


def test_stage1_branches():
    record = sft(tgt=((100.2, 120.9), (110, 130)))
    clues = build_sft_sample(record, TEN_MIN, ScriptedRandom(draws=[0.59], ints=[2, 4]))
    assert clues.slow_labels == [(98, 134)]  # merged (100, 130), widened by 2 and 4
    assert slow(clues)[0].num_frames == 32 and user_texts(clues)[-1] == "What is on the sign?"
    whole = build_sft_sample(record, TEN_MIN, ScriptedRandom(draws=[0.6]))
    (clip,) = slow(whole)
    assert clip.label == (0, 600) and clip.num_frames == 32 and (clip.height, clip.width) == (336, 588)
    none = build_sft_sample(record, TEN_MIN, ScriptedRandom(draws=[0.8]))
    assert len(none.views) == 1 and user_texts(none) == ["Full video [0, 600]:", "What is on the sign?"]
    three = build_sft_sample(sft(), TEN_MIN, ScriptedRandom(draws=[0.95], ints=[2, 40, 100, 16, 300]))
    # no clues, 10% branch: 2 random clips of max(randint(0, 75), 16) s: 40 s at 100, 16 s at 300
    assert three.slow_labels == [(100, 140), (300, 316)] and [p.num_frames for p in slow(three)] == [16, 16]


def test_unplannable_clip_is_a_data_error_naming_the_record():
    with pytest.raises(DataError, match="t.jsonl: record 0: field 'zoomin_intervals': cannot plan the clip"):
        build_sft_sample(sft(zoomin_intervals=((700.0, 730.0),), cot=True), TEN_MIN, ScriptedRandom())


# --------------------------------------------------------------------------- token budget


def test_drop_overlong_counts_text_plus_planned_visual_tokens(caplog):
    def five_thousand(messages):
        assert messages[-1]["role"] == "assistant"  # the target is counted too
        return 5_000

    one = build_sft_sample(sft(zoomin_intervals=((100.0, 130.0),), cot=True), TEN_MIN, ScriptedRandom())
    two = build_sft_sample(
        SFTRecord("s2.jsonl", 7, "v.mp4", "Q", "T", ((100.0, 130.0), (300.0, 330.0)), cot=True),
        TEN_MIN,
        ScriptedRandom(),
    )
    # 768 fast frames of 112x196: 384 * 4 * 7 = 10,752; 32 slow frames of 336x588: 16 * 12 * 21 = 4,032
    assert sample_tokens(one, five_thousand) == 5_000 + 10_752 + 4_032  # 19,784 <= 20,500
    # two clips of 24 frames: 2 * 12 * 12 * 21 = 6,048 -> 21,800 > 20,500
    assert sample_tokens(two, five_thousand) == 5_000 + 10_752 + 6_048
    with caplog.at_level(logging.WARNING):
        kept = drop_overlong([one, two, one], five_thousand)
    assert kept == [one, one]  # dropped, not replaced
    assert "s2.jsonl#7" in caplog.text and "21800 tokens > 20500" in caplog.text
    exact = drop_overlong([one], lambda m: 20_500 - one.visual_tokens)
    assert exact == [one]  # exactly at the limit is kept


# --------------------------------------------------------------------------- GRPO samples


def grpo(problem_type="multiple choice", options=("A. stop", "B. go"), **fields) -> GRPORecord:
    base = dict(
        source="rl.jsonl",
        index=3,
        video="v.mp4",
        problem="What does the sign say?\n",
        options=options,
        problem_type=problem_type,
        answer="B",
    )
    return GRPORecord(**{**base, **fields})


@pytest.mark.parametrize(
    "problem_type, expected_suffix",
    [
        ("numerical", "\nProvide the numerical value (e.g., 42 or 3.14) without units as the answer."),
        ("regression", "\nProvide the numerical value (e.g., 42 or 3.14) without units as the answer."),
        ("free-form", "\nProvide your text answer."),
        ("OCR", " \nTranscribe text from the image/video clearly and provide your text answer."),
        ("temporal localization", "\nProvide the answer in list format, ie, [start_time, end_time]."),
    ],
)
def test_grpo_question_suffixes(problem_type, expected_suffix):
    record = grpo(problem_type, options=())
    assert grpo_question(record) == "What does the sign say?\n" + expected_suffix


def test_grpo_multiple_choice_prompt():
    expected = "What does the sign say?\nOptions:\nA. stop\nB. go\n" + MC
    assert grpo_question(grpo()) == expected
    spec = build_grpo_step1(grpo(zoomin_intervals=((100.0, 130.0),)), TEN_MIN)
    assert user_texts(spec)[-1] == expected + "\n" + ZOOM


def test_grpo_qa_steps():
    record = grpo(zoomin_intervals=((300.0, 330.0),))
    step1 = build_grpo_step1(record, TEN_MIN)
    assert step1.slow_labels == [(300, 330)] and slow(step1)[0].num_frames == 16
    assert step1.target is None and step1.assistant_prefix is None
    step2 = build_grpo_step2(record, TEN_MIN, (200, 215))  # the valid step-1 zoom, as given
    assert step2.slow_labels == [(200, 215), (300, 330)]  # sorted by start
    assert [p.num_frames for p in slow(step2)] == [16, 16]
    assert user_texts(step2)[1:3] == ["Subset zoom-in video clip [200, 215]:", "Subset zoom-in video clip [300, 330]:"]
    invalid = build_grpo_step2(record, TEN_MIN, None)
    assert len(invalid.views) == 1  # an invalid zoom: no slow view at all


def test_grpo_grounding_steps():
    record = grpo(zoomin_intervals=((300.0, 330.0),), tgt=((305.0, 320.0),))
    step1 = build_grpo_step1(record, TEN_MIN)
    assert len(step1.views) == 1 and step1.assistant_prefix == "I need to zoom in on the video.\n\n"
    step2 = build_grpo_step2(record, TEN_MIN)
    assert step2.slow_labels == [(300, 330)] and step2.assistant_prefix is None
    with pytest.raises(ValueError, match="own zoomin_intervals"):
        build_grpo_step2(record, TEN_MIN, (10, 20))


def test_grpo_factor_is_fast_only_below_60_s():
    short = build_grpo_step2(grpo(), FORTY, (10, 25))
    fast, (clip,) = short.views[0], slow(short)
    assert (fast.num_frames, fast.height, fast.width) == (80, 168, 280)  # factor 2 (D < 60)
    assert clip.num_frames == 16 and (clip.height, clip.width) == (336, 588)  # slow never doubled
    assert (clip.frame_ids[0], clip.frame_ids[-1]) == (300, 750)
    assert build_grpo_step1(grpo(), HUNDRED).views[0].height == 112  # D >= 60: factor 1 (SFT would double)
    assert SFT_VIEW_CONFIG.factor(100) == 2


def test_whole_hour_video_fast_view_matches_spec_example():
    spec = build_sft_sample(sft(zoomin_intervals=((1000.0, 1030.0),), cot=True), HOUR, ScriptedRandom())
    assert spec.views[0].visual_tokens == 10_752 and slow(spec)[0].visual_tokens == 4_032  # SPEC 1 example


def test_views_follow_the_prompt_order_when_labels_tie():
    record = grpo(zoomin_intervals=((10.7, 15.0), (10.2, 20.0)))  # labels (10, 15) and (10, 20)
    spec = build_grpo_step1(record, TEN_MIN)
    assert user_texts(spec)[1:3] == ["Subset zoom-in video clip [10, 15]:", "Subset zoom-in video clip [10, 20]:"]
    assert [p.label for p in slow(spec)] == [(10, 15), (10, 20)]  # view i is the clip of label i
    assert slow(spec)[0].frame_ids[0] == 321  # int(10.7 * 30): the (10.7, 15) clip


def test_a_valid_zoom_without_frames_raises_view_error():
    # [600, 601] passes the format check on a 600 s video (ends by D + 1) but holds no frame:
    # the trainer masks the rollout as a video that failed to decode
    with pytest.raises(ViewError, match="starts after the video ends"):
        build_grpo_step2(grpo(), TEN_MIN, (600, 601))
