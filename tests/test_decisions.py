"""SPEC 3 steps 1-4: reading boxes, intervals, answers; IoU."""

from __future__ import annotations

import time

import pytest

from lover1_plugin.decisions import Decision, iou, last_boxed, parse_answer, parse_decision, parse_interval

# ---- last_boxed ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no box", None),  # no box at all
        ("", None),
        ("\\boxed{A}", "A"),
        ("\\boxed{A} and later \\boxed{B}", "B"),  # the last box wins
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces balanced
        ("\\boxed{ [1, 2] } tail", " [1, 2] "),  # not stripped
        ("\\boxed{[1, 2", "[1, 2"),  # unbalanced: to the end of the text
        ("\\boxed{a{b}", "a{b}"),  # unbalanced after a nested pair
        ("\\boxed{}", ""),
        ("\\boxed{A}}}", "A"),  # extra closing braces after the box are ignored
        ("\\boxed {A}", None),  # a space breaks the marker, as in the reference
        ("\\boxed{\\boxed{C}}", "C"),  # the last marker is the inner one
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_last_boxed_non_string_is_none():
    assert last_boxed(None) is None
    assert last_boxed(b"\\boxed{A}") is None


# ---- parse_interval, reference rule ----


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[100, 110]", (100, 110)),
        ("  [100,110]  ", (100, 110)),  # stripped first
        ("[110, 100]", (100, 110)),  # reversed order sorted
        ("[30, 10, 20]", (10, 20)),  # two smallest of three
        ("[-5, 10]", (-5, 10)),  # negative start kept (the policy clamps it)
        ("[ +7 , 1_0 ]", (7, 10)),  # int() accepts sign, underscores, spaces
        ("[\u0661\u0662, \u0663\u0660]", (12, 30)),  # Arabic-Indic digits, as int() reads them
        ("[5]", None),  # one number
        ("[]", None),
        ("[", None),
        ("[12.5, 30]", None),  # decimals are not int()
        ("[12 s, 30 s]", None),  # units are not int()
        ("[start_time, end_time]", None),
        ("[1, , 2]", None),  # an empty part
        ("(10, 20)", None),  # must start with "["
        ("10, 20]", None),
        ("[10, 20", (2, 10)),  # unclosed: the last character dropped anyway, as the reference
        ("[nan, inf]", None),
    ],
)
def test_parse_interval_reference_rule(content, expected):
    assert parse_interval(content) == expected


def test_parse_interval_reference_quirk_trailing_text_breaks_the_last_part():
    # "[10, 20] s" loses only "s": " 20] " cannot go through int()
    assert parse_interval("[10, 20] s") is None


def test_parse_interval_huge_numbers():
    assert parse_interval(f"[0, {'9' * 4000}]") == (0, int("9" * 4000))
    assert parse_interval(f"[0, {'9' * 5000}]") is None  # over int()'s 4300-digit limit


# ---- parse_interval, lenient ----


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[100, 110]", (100, 110)),  # everything strict accepts, same result
        ("[ +7 , 1_0 ]", (7, 10)),
        ("[12.5, 30]", (12, 30)),
        ("[12.5, 30.2]", (12, 31)),  # start rounded down, end up
        ("[12 s, 30 s]", (12, 30)),
        ("[12s-30s]", (12, 30)),
        ("12-30", (12, 30)),  # a dash between numbers is a range
        ("[-5, 10]", (-5, 10)),  # a leading minus is a sign
        ("[-2.5, 10]", (-3, 10)),
        ("from 12 to 30 seconds", (12, 30)),
        ("[1:05, 1:30]", (65, 90)),  # clock times
        ("[1:02:03, 1:02:33.5]", (3723, 3754)),
        ("[30, 12.0]", (12, 30)),
        ("[12]", None),  # one number
        ("[start_time, end_time]", None),
        ("[nan, inf]", None),
        ("[1e3, 2e3]", (1, 2)),  # exponents are not numbers: 1, 3, 2, 3 -> two smallest
        (f"[0.{'5' * 10}, {'9' * 400}.5]", None),  # the end overflows a float -> rejected
        (f"[0, {'9' * 5000}]", None),  # too long to convert
    ],
)
def test_parse_interval_lenient(content, expected):
    assert parse_interval(content, lenient=True) == expected


def test_parse_interval_non_string_is_none():
    assert parse_interval(None) is None
    assert parse_interval(["[1, 2]"], lenient=True) is None


# ---- parse_decision ----


def test_decision_zoom():
    decision = parse_decision("I need to zoom in on the video.\n\nThe cup appears late. \\boxed{[100, 110]}")
    assert decision == Decision("zoom", None, (100, 110), "zoom in on [100, 110]")


def test_decision_answer_is_stripped_content():
    decision = parse_decision("I get the answer.\n\nIt is red. \\boxed{ B }")
    assert (decision.kind, decision.answer, decision.interval) == ("answer", "B", None)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("I get the answer. B", "no \\boxed{}"),  # no box
        ("\\boxed{}", "empty"),  # empty box
        ("\\boxed{   }", "empty"),  # blank box is empty after stripping
        ("\\boxed{[12 s, 30 s]}", "cannot read the zoom interval"),  # strict: units rejected
        ("\\boxed{[start_time, end_time]}", "cannot read"),
    ],
)
def test_decision_invalid(text, reason_part):
    decision = parse_decision(text)
    assert decision.kind == "invalid"
    assert decision.answer is None and decision.interval is None
    assert reason_part in decision.reason


def test_decision_lenient_only_changes_interval_reading():
    assert parse_decision("\\boxed{[12 s, 30 s]}", lenient=True).interval == (12, 30)
    # an answer without "[" stays an answer even if it looks like a range
    decision = parse_decision("\\boxed{12-30}", lenient=True)
    assert (decision.kind, decision.answer) == ("answer", "12-30")


def test_decision_uses_the_last_box():
    decision = parse_decision("\\boxed{[1, 2]} no wait \\boxed{C}")
    assert (decision.kind, decision.answer) == ("answer", "C")


def test_decision_reason_quotes_long_boxes_briefly():
    decision = parse_decision("\\boxed{[" + "x" * 10_000 + "]}")
    assert decision.kind == "invalid"
    assert len(decision.reason) < 200 and "10002 characters" in decision.reason


def test_decision_rejects_malformed_fields():
    with pytest.raises(ValueError, match="kind"):
        Decision("maybe")
    with pytest.raises(ValueError, match="two integers"):
        Decision("zoom", interval=(1.5, 3))


def test_parse_decision_non_string_is_invalid():
    assert parse_decision(None).kind == "invalid"


# ---- parse_answer ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is \\boxed{ C }.", " C "),  # not stripped
        ("C", ""),  # no box
        ("\\boxed{A} \\boxed{D}", "D"),
        ("\\boxed{[1, 2]}", "[1, 2]"),  # a forced answer is whatever the box holds
        ("\\boxed{A", "A"),
        (None, ""),
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


# ---- iou ----


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 10), (0, 10), 1.0),
        ((0, 10), (5, 15), 5 / 15),
        ((0, 10), (10, 20), 0.0),  # touching closed intervals: zero-length intersection
        ((0, 10), (20, 30), 0.0),
        ((90, 120), (95, 115), 20 / 30),  # nested
        ((10, 0), (5, 15), 5 / 15),  # reversed input read sorted
        ((5, 5), (5, 5), 0.0),  # zero-length union
        ((float("nan"), 5), (0, 10), 0.0),
        ((0, float("inf")), (0, 10), 0.0),
        ((0, 10**400), (0, 10), 0.0),  # too large for a float
    ],
)
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)  # symmetric


# ---- size and time ----


def test_megabyte_inputs_parse_in_linear_time():
    started = time.perf_counter()
    # a box of 4 MB of nested braces, a reply of 4 MB of commas, of digits, of "\boxed{"
    assert last_boxed("\\boxed{" + "{" * 2_000_000 + "}" * 2_000_000 + "}") == "{" * 2_000_000 + "}" * 2_000_000
    assert parse_decision("\\boxed{[" + "1," * 2_000_000 + "0]}").interval == (0, 1)
    assert parse_decision("\\boxed{[" + "1," * 2_000_000 + "0]}", lenient=True).interval == (0, 1)
    assert parse_decision("\\boxed{[" + "7" * 4_000_000 + ", 1]}", lenient=True).kind == "invalid"
    assert parse_decision("\\boxed{" * 500_000).kind == "invalid"  # unbalanced empty last box
    assert parse_answer("x" * 4_000_000) == ""
    assert time.perf_counter() - started < 10
