"""SPEC section 2 (and 3b, 4): every prompt string, typed again from SPEC.md, and the message layout."""

from __future__ import annotations

import pytest

from lover1_plugin import prompts
from lover1_plugin.errors import ConfigError
from lover1_plugin.prompts import (
    build_conversation,
    format_question,
    render_user_text,
    to_single_pass,
)

# Typed from SPEC.md (not copied from prompts.py), so a drift in either shows up here.
SPEC_SYSTEM = (
    "You are a helpful assistant. The red numbers on each frame represent the timestamp in seconds and "
    "you can refer them during temporal grounding."
)
SPEC_ZOOM = (
    r"Based on the video and the user question, determine whether the visual content is sufficient to answer "
    r"the question. If you have enough information, reason using the visual content and provide your final "
    r"answer within \boxed{}. Otherwise, you may zoom in a specific interval of the video related to the "
    r"question for more details based on your reasoning. Also provide the time span of the interval in "
    r"seconds within \boxed{[start_time, end_time]}."
)
SPEC_MC = "\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
SPEC_LVBENCH = "Respond with only the letter (A, B, C, or D) of the correct option."
SPEC_LONGVIDEOBENCH = "Answer with the option's letter from the given choices directly."


def test_system_prompt_is_verbatim():
    assert prompts.SYSTEM_PROMPT == SPEC_SYSTEM


def test_zoom_instruction_is_one_verbatim_line_with_single_backslashes():
    assert prompts.ZOOM_INSTRUCTION == SPEC_ZOOM
    assert "\n" not in prompts.ZOOM_INSTRUCTION
    assert prompts.ZOOM_INSTRUCTION.count("\\boxed{") == 2
    assert "\\\\" not in prompts.ZOOM_INSTRUCTION


def test_assistant_openings_are_verbatim():
    assert prompts.ANSWER_PREFIX == "I get the answer.\n\n"
    assert prompts.ZOOM_PREFIX == "I need to zoom in on the video.\n\n"


def test_multiple_choice_suffix_is_verbatim():
    assert prompts.MC_SUFFIX == SPEC_MC


def test_lvbench_suffix_is_verbatim():
    assert prompts.LVBENCH_SUFFIX == SPEC_LVBENCH


def test_longvideobench_suffix_is_verbatim():
    assert prompts.LONGVIDEOBENCH_SUFFIX == "\n" + SPEC_LONGVIDEOBENCH


def test_training_suffixes_are_verbatim():
    assert prompts.NUMERICAL_SUFFIX == "\nProvide the numerical value (e.g., 42 or 3.14) without units as the answer."
    assert prompts.FREE_FORM_SUFFIX == "\nProvide your text answer."
    # the OCR suffix starts with a space before its newline
    assert prompts.OCR_SUFFIX == " \nTranscribe text from the image/video clearly and provide your text answer."
    assert prompts.TEMPORAL_GROUNDING_SUFFIX == "\nProvide the answer in list format, ie, [start_time, end_time]."


# ---- format_question, one case per benchmark, expected text written out in full ----


def test_videomme_zoom_mode_has_blank_line_before_suffix():
    text = format_question("Why?", ["A. red", "B. blue", "C. green", "D. grey"], "videomme")
    assert text == (
        "Why?\nA. red\nB. blue\nC. green\nD. grey\n"
        "\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
    )


def test_videomme_single_pass_drops_the_leading_newline_of_the_suffix():
    text = format_question("Why?", ["A. red", "B. blue"], "videomme", single_pass=True)
    assert (
        text == "Why?\nA. red\nB. blue\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
    )


def test_videomme_bare_candidates_get_their_letter():
    assert format_question("Q", ["red", "(B) blue"], "videomme").startswith("Q\nA. red\nB. blue\n\n")


@pytest.mark.parametrize("question_format", ["mlvu", "mvbench"])
def test_mlvu_and_mvbench_use_options_block_without_trailing_newline(question_format):
    text = format_question("What happens?", ["a cat jumps", "a dog runs", "nothing"], question_format)
    assert text == (
        "What happens?\nOptions:\n(A) a cat jumps\n(B) a dog runs\n(C) nothing"
        "\nProvide only the single option letter (e.g., A, B, C, D, etc.) as the answer."
    )


def test_mlvu_strips_letter_prefixes_already_present():
    text = format_question("Q", ["(A) one", "B. two", "C.three", "A. four"], "mlvu")
    # own-letter "(A) " and "B. " go; "C.three" (no space) and a wrong letter stay
    assert text.split("\n")[2:6] == ["(A) one", "(B) two", "(C) C.three", "(D) A. four"]


def test_lvbench_appends_its_suffix_after_one_newline_and_ignores_options():
    question = "What is on the table?\n(A) a cup\n(B) a book\n(C) a pen\n(D) a phone"
    expected = question + "\nRespond with only the letter (A, B, C, or D) of the correct option."
    assert format_question(question, None, "lvbench") == expected
    assert format_question(question, ["x", "y"], "lvbench") == expected


def test_longvideobench_lettered_lines_then_its_sentence():
    text = format_question("Which?", ["one", "two", "three", "four", "five"], "longvideobench")
    assert text == (
        "Which?\nA. one\nB. two\nC. three\nD. four\nE. five\n"
        "Answer with the option's letter from the given choices directly."
    )


@pytest.mark.parametrize("question_format", ["videomme", "mlvu", "mvbench", "longvideobench"])
@pytest.mark.parametrize("options", [None, []])
def test_no_options_gives_the_question_alone(question_format, options):
    assert format_question("How many birds?", options, question_format) == "How many birds?"


def test_unknown_format_names_the_valid_ones():
    with pytest.raises(ConfigError, match="videomme, mlvu, mvbench, lvbench, longvideobench"):
        format_question("Q", ["a"], "egoschema")


def test_options_given_as_one_string_is_rejected():
    with pytest.raises(ValueError, match="sequence of option texts"):
        format_question("Q", "ABCD", "mlvu")


def test_more_than_26_options_is_rejected():
    with pytest.raises(ValueError, match="at most 26"):
        format_question("Q", [str(i) for i in range(27)], "mlvu")


# ---- to_single_pass ----


def test_to_single_pass_matches_format_question_single_pass():
    options = ["A. x", "B. y", "C. z"]
    zoom_text = format_question("Q?", options, "videomme")
    single_text = format_question("Q?", options, "videomme", single_pass=True)
    assert zoom_text != single_text
    assert to_single_pass(zoom_text, "videomme") == single_text
    assert to_single_pass(single_text, "videomme") == single_text  # idempotent


@pytest.mark.parametrize("question_format", ["mlvu", "mvbench", "lvbench", "longvideobench"])
def test_to_single_pass_leaves_other_benchmarks_unchanged(question_format):
    text = format_question("Q?\n(A) a\n(B) b", ["a", "b"], question_format)
    assert to_single_pass(text, question_format) == text


def test_to_single_pass_rejects_unknown_format():
    with pytest.raises(ConfigError):
        to_single_pass("Q", "nope")


# ---- build_conversation / render_user_text ----


def test_conversation_layout_matches_spec_example():
    question = format_question("Q?", ["a", "b"], "mlvu")
    messages = build_conversation(600, question, [(100, 130)])
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": SPEC_SYSTEM}]}
    assert messages[1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Full video [0, 600]:"},
            {"type": "video"},
            {"type": "text", "text": "Subset zoom-in video clip [100, 130]:"},
            {"type": "video"},
            {"type": "text", "text": question + "\n" + SPEC_ZOOM},
        ],
    }
    assert len(messages) == 2


def test_rendered_user_text_matches_spec_example():
    messages = build_conversation(600, "Q?", [(100, 130)])
    vision = "<|vision_start|><|video_pad|><|vision_end|>"
    assert render_user_text(messages) == (
        f"Full video [0, 600]:{vision}Subset zoom-in video clip [100, 130]:{vision}Q?\n{SPEC_ZOOM}"
    )


def test_zoom_clips_are_sorted_by_start_and_labels_truncated():
    messages = build_conversation(600.9, "Q", [(300.7, 330.2), (90, 120), (90, 100)])
    texts = [part["text"] for part in messages[1]["content"] if part["type"] == "text"]
    assert texts[:4] == [
        "Full video [0, 600]:",
        "Subset zoom-in video clip [90, 100]:",
        "Subset zoom-in video clip [90, 120]:",
        "Subset zoom-in video clip [300, 330]:",
    ]
    assert [part["type"] for part in messages[1]["content"]].count("video") == 4


def test_single_pass_conversation_has_question_alone():
    question = format_question("Q?", ["A. x", "B. y"], "videomme", single_pass=True)
    messages = build_conversation(125, question, [(0, 125)], zoom_instruction=False)
    assert messages[1]["content"][-1] == {"type": "text", "text": question}
    assert "Based on the video" not in render_user_text(messages)


def test_no_zoom_clips_gives_fast_view_only():
    messages = build_conversation(42, "Q")
    assert [part["type"] for part in messages[1]["content"]] == ["text", "video", "text"]


def test_malformed_zoom_label_is_rejected():
    with pytest.raises(ValueError, match="start, end"):
        build_conversation(600, "Q", [(1, 2, 3)])


def test_render_rejects_unknown_part_types():
    with pytest.raises(ValueError, match="audio"):
        render_user_text([{"role": "user", "content": [{"type": "audio"}]}])
