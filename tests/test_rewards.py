"""Stage-3 GRPO rewards (SPEC 4): one line per case, each with its reason."""

from __future__ import annotations

import math

import pytest

from lover1_plugin.train.rewards import (
    Reward,
    accuracy_reward,
    first_box,
    format_reward,
    grounding_accuracy_reward,
    grounding_reward,
    group_advantages,
    is_masked,
    qa_reward,
    reply_kind,
    valid_zoom,
    zoom_rejection,
)

A = "I get the answer.\n\n"  # SPEC 2 answer opening, verbatim
Z = "I need to zoom in on the video.\n\n"  # SPEC 2 zoom opening, verbatim


def box(content: str) -> str:
    return "\\boxed{" + content + "}"


@pytest.mark.parametrize(
    "reply, duration, zoomed, expected",
    [
        (A + "It is " + box("B"), 600, (), 1.0),  # answer with a box
        (A + "It is B", 600, (), 0.0),  # direct answer without a box
        (A + box(""), 600, (), 1.0),  # an empty box is still a box (accuracy will be 0)
        ("The answer is " + box("B"), 600, (), 1.0),  # neither opening: format 1
        ("", 600, (), 1.0),  # empty reply has neither opening
        (" " + Z + box("[100, 130]"), 600, (), 1.0),  # a leading space breaks the opening: "other"
        (Z + box("[100, 130]"), 600, (), 1.0),  # valid zoom
        (Z + box("[130, 100]"), 600, (), 1.0),  # ends are sorted, as the reference parse does
        (Z + box("[1, 2]") + " no, " + box("[100, 130]"), 600, (), 1.0),  # the last box is the zoom
        (Z + "somewhere around 100 s", 600, (), 0.0),  # zoom without a box
        (Z + box("[100.5, 130]"), 600, (), 0.0),  # decimals do not parse (reference rule)
        (Z + box("100, 130"), 600, (), 0.0),  # no bracket does not parse
        (Z + box("[100]"), 600, (), 0.0),  # one number does not parse
        (Z + box("[-1, 20]"), 600, (), 0.0),  # starts before 0
        (Z + box("[0, 20]"), 600, (), 1.0),  # starts at 0
        (Z + box("[70, 101]"), 100, (), 1.0),  # ends at D + 1: allowed
        (Z + box("[71, 102]"), 100, (), 0.0),  # ends past D + 1
        (Z + box("[100, 160]"), 600, (), 1.0),  # 60 s = min(300, 60): allowed
        (Z + box("[100, 161]"), 600, (), 0.0),  # 61 s > min(300, 60)
        (Z + box("[10, 60]"), 100, (), 1.0),  # 50 s = min(D / 2, 60) for D = 100
        (Z + box("[10, 61]"), 100, (), 0.0),  # 51 s > D / 2
        (Z + box("[100, 101]"), 600, (), 1.0),  # 1 s: allowed
        (Z + box("[100, 100]"), 600, (), 0.0),  # 0 s < 1 s
        (Z + box("[100, 121]"), 600, [(100, 130)], 1.0),  # IoU 21/30 = 0.7 is not > 0.7
        (Z + box("[100, 122]"), 600, [(100, 130)], 0.0),  # IoU 22/30 = 0.73 > 0.7
        (Z + box("[100, 122]"), 600, [(0, 30), (100, 130)], 0.0),  # any zoomed interval counts
        (Z + box("[300, 330]"), 600, [(100, 130)], 1.0),  # no overlap with what was zoomed
    ],
)
def test_format_reward(reply, duration, zoomed, expected):
    assert format_reward([reply], duration=duration, zoomed=[zoomed]) == [expected]


def test_format_reward_takes_columns_and_conversational_completions():
    completions = [
        [{"role": "assistant", "content": A + box("C")}],  # TRL conversational form
        [{"role": "assistant", "content": [{"type": "text", "text": Z + box("[5, 10]")}]}],  # content parts
        A + "C",  # plain text, no box
    ]
    # the zoom is 5 s on a 12 s video (at most D / 2 = 6 s): valid; the third reply has no box
    assert format_reward(completions, duration=[600, 12, 600], zoomed=None) == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="duration has 2 values for 3 completions"):
        format_reward(completions, duration=[600, 12])


def test_zoom_rejection_says_why():
    assert zoom_rejection(box("[x, 10]"), 600) == "zoom box does not parse"
    assert zoom_rejection(box("[0, 700]"), 600) == "[0, 700] is outside [0, D + 1]"
    assert zoom_rejection(box("[0, 90]"), 600) == "longer than min(D / 2, 60) s"
    assert zoom_rejection(box("[5, 5]"), 600) == "shorter than 1 s"
    assert zoom_rejection(box("[0, 30]"), 600, [(0, 30)]) == "IoU > 0.7 with an interval already zoomed"
    assert zoom_rejection(box("[0, 30]"), 600) is None


def test_valid_zoom_is_the_interval_as_given():
    assert valid_zoom(Z + "... " + box("[200, 215]"), 600) == (200, 215)  # no padding, no widening
    assert valid_zoom(Z + box("[200, 200]"), 600) is None  # rejected by the format check
    assert valid_zoom(A + box("[200, 215]"), 600) is None  # an answer opening is not a zoom


def test_reply_kind_and_first_box():
    assert reply_kind(A + "x") == "answer"
    assert reply_kind(Z + "x") == "zoom"
    assert reply_kind("I get the answer.\n" + "x") == "other"  # one newline is not the opening
    assert first_box(box("C") + " then " + box("B")) == "C"
    assert first_box(box("{x} y") + box("B")) == "{x} y"  # braces inside are balanced
    assert first_box("no box") is None


@pytest.mark.parametrize(
    "step1, step2, answer, expected",
    [
        (A + box("B"), None, "B", (1.0, 1.0)),  # correct direct answer: 1 + 1
        (A + "It is " + box(" B. a dog "), None, "B", (1.0, 1.0)),  # first character of the stripped box
        (A + box("C"), None, "B", (0.0, 1.0)),  # wrong answer keeps its format point
        (A + box("B") + " or " + box("C"), None, "B", (1.0, 1.0)),  # the FIRST box counts
        (A + box("C") + " or " + box("B"), None, "B", (0.0, 1.0)),  # ... even when a later box is right
        (A + "B", None, "B", (0.0, 0.0)),  # direct answer without a box
        (A + box(""), None, "B", (0.0, 1.0)),  # empty box: no first character
        ("So " + box("B"), None, "B", (0.0, 1.0)),  # step 1 must open with "I get the answer."
        (A + box("42"), None, "42", (1.0, 1.0)),  # a longer answer must equal the whole box
        (A + box("4"), None, "42", (0.0, 1.0)),  # ... its first character is not enough
        (Z + box("[100, 130]"), A + box("B"), "B", (1.0, 1.0)),  # a valid zoom earns step 2's accuracy
        (Z + box("[100, 130]"), "So " + box("B"), "B", (1.0, 1.0)),  # step 2 needs no opening
        (Z + box("[100, 130]"), A + box("C"), "B", (0.0, 1.0)),  # zoom then a wrong answer
        (Z + box("[100, 130]"), A + "B", "B", (0.0, 1.0)),  # zoom then no box at step 2
        (Z + box("[100, 100]"), A + box("B"), "B", (0.0, 0.0)),  # invalid zoom: format 0, accuracy forced 0
        (Z + box("[100.5, 130]"), A + box("B"), "B", (0.0, 0.0)),  # unparsable zoom: same
    ],
)
def test_qa_reward(step1, step2, answer, expected):
    reward = qa_reward(step1, step2, answer=answer, duration=600)
    assert (reward.accuracy, reward.format) == expected
    assert reward.total == sum(expected)  # reward = accuracy + format
    assert not reward.masked


def test_qa_zoom_checks_overlap_with_the_samples_zoomin_intervals():
    reward = qa_reward(Z + box("[100, 125]"), A + box("B"), answer="B", duration=600, zoomed=[(100, 130)])
    assert reward == Reward(0.0, 0.0, False, "IoU > 0.7 with an interval already zoomed")  # 25/30 > 0.7


def test_qa_masking():
    again = qa_reward(Z + box("[100, 130]"), Z + box("[140, 150]"), answer="B", duration=600)
    assert again.masked  # step 2 zoomed again
    after_invalid = qa_reward(Z + box("[1, 1]"), Z + box("[140, 150]"), answer="B", duration=600)
    assert after_invalid.masked  # step 2 of an invalid zoom zooms again: masked too
    broken = qa_reward(A + box("B"), None, answer="B", duration=600, decode_failed=True)
    assert broken.masked  # video failed to decode
    assert not is_masked(A + box("B"))  # step 2 answered
    assert not is_masked(None)  # no step 2 (step 1 answered)
    assert is_masked(None, decode_failed=True)


def test_qa_valid_zoom_without_step2_is_a_caller_error():
    with pytest.raises(ValueError, match="step-2 reply"):
        qa_reward(Z + box("[100, 130]"), None, answer="B", duration=600)


def test_accuracy_reward_columns():
    completions = [A + box("B"), Z + box("[10, 40]"), Z + box("[10, 40]"), "no opening " + box("B")]
    step2 = [None, A + box("B"), A + box("D"), None]
    assert accuracy_reward(completions, answer="B", duration=600, step2_completions=step2) == [1.0, 1.0, 0.0, 0.0]
    assert accuracy_reward([A + box("C")], answer=["C"], duration=[600]) == [1.0]  # per-completion answers


@pytest.mark.parametrize(
    "reply, zoomed, expected",
    [
        (Z + box("[210, 240]"), (), (1.0, 1.0)),  # overlaps the clue [200, 220]
        (Z + box("[150, 201]"), (), (1.0, 1.0)),  # 1 s of overlap is enough (IoU > 0)
        (Z + box("[220, 240]"), (), (0.0, 1.0)),  # touching at 220 s: IoU 0
        (Z + box("[400, 420]"), (), (0.0, 1.0)),  # valid but elsewhere
        (Z + box("[150, 250]"), (), (0.0, 0.0)),  # overlaps, but 100 s > 60 s: format 0 forces accuracy 0
        (Z + box("[205, 225]"), [(205, 225)], (0.0, 0.0)),  # step 2: repeats a zoomed interval (IoU 1 > 0.7)
        (Z + box("[215, 200]"), (), (1.0, 1.0)),  # reversed ends are sorted: [200, 215]
        (A + box("[210, 240]"), (), (0.0, 1.0)),  # an answer is no zoom proposal
        ("Near " + box("[210, 240]"), (), (0.0, 1.0)),  # neither opening: format 1, accuracy 0
    ],
)
def test_grounding_reward(reply, zoomed, expected):
    reward = grounding_reward(reply, tgt=[(200, 220), (300, 310)], duration=600, zoomed=zoomed)
    assert (reward.accuracy, reward.format) == expected


def test_grounding_accuracy_reward_columns():
    completions = [Z + box("[305, 320]"), Z + box("[0, 10]")]
    tgt = [[(300, 310)], [(5, 8)]]
    assert grounding_accuracy_reward(completions, tgt=tgt, duration=600) == [1.0, 1.0]
    assert grounding_accuracy_reward(completions, tgt=[[(0, 1)], [(50, 60)]], duration=600) == [0.0, 0.0]


def test_group_advantages_hand_worked():
    # mean 1, sample std sqrt((1 + 0 + 0 + 1) / 3) = 0.8165
    advantages = group_advantages([2.0, 1.0, 1.0, 0.0], [False] * 4)
    expected = 1 / (math.sqrt(2 / 3) + 1e-4)  # 1.22459
    assert advantages == pytest.approx([expected, 0.0, 0.0, -expected])
    assert expected == pytest.approx(1.22459, abs=1e-5)


def test_group_advantages_leave_masked_rollouts_out():
    # the masked reward (100) is ignored: mean 0.5 and std sqrt(0.5) over the two others
    advantages = group_advantages([100.0, 1.0, 0.0], [True, False, False])
    assert advantages[0] is None
    assert advantages[1:] == pytest.approx([0.5 / (math.sqrt(0.5) + 1e-4), -0.5 / (math.sqrt(0.5) + 1e-4)])
    assert group_advantages([None, 2.0], [True, False]) == [None, 0.0]  # one unmasked: std := 1 -> 0


def test_group_advantages_edge_cases():
    assert group_advantages([1.5], [False]) == [0.0]  # a single rollout: (1.5 - 1.5) / (1 + 1e-4)
    assert group_advantages([1.0, 1.0, 1.0], [False] * 3) == [0.0, 0.0, 0.0]  # equal rewards: std 0 -> 0
    assert group_advantages([1.0, 2.0], [True, True]) == [None, None]  # all masked
    with pytest.raises(ValueError, match="2 rewards but 1 mask"):
        group_advantages([1.0, 2.0], [False])
    with pytest.raises(ValueError, match="no reward"):
        group_advantages([None, 2.0], [False, False])
