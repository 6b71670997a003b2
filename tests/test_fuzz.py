"""Property tests: adversarial model replies never crash the parser or the loop rules.

About 11,500 generated replies/intervals per run (the ``max_examples`` below), with both
``lenient`` settings. Invariants checked on every example:
- ``last_boxed`` returns exactly the text after the last marker, up to its balancing brace;
- the reference interval rule equals a naive re-implementation of SPEC 3 step 4, and
  the lenient rule agrees with it wherever it succeeds;
- ``parse_decision`` is consistent with the box; ``parse_answer`` is the unstripped box;
- a ``Zoom`` lies within ``[0, int(D)]``, is sorted, is at least ``min_width_s`` wide,
  covers the padded proposal and overlaps no zoomed interval by more than ``iou_stop``.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lover1_plugin.config import LoopConfig, get_preset
from lover1_plugin.decisions import BOX_OPEN, Decision, iou, last_boxed, parse_answer, parse_decision, parse_interval
from lover1_plugin.policy import Answer, ForceAnswer, Zoom, next_step
from lover1_plugin.prompts import ANSWER_PREFIX, ZOOM_PREFIX


def fuzz(max_examples: int) -> settings:
    # database=None: nothing written into the repository; deadline off: timings vary on 2 cores
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- strategies: pieces of what a model might write inside and around a box ----

NON_ASCII_DIGITS = (
    "\u0660\u0661\u0662\u0663\u0669\u0966\u0967\u0968\uff10\uff11\uff19"  # Arabic-Indic, Devanagari, fullwidth
)
numbers = st.one_of(
    st.integers(-1000, 5000).map(str),
    st.integers(-(10**40), 10**40).map(str),  # huge
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # '12.5', 'nan', 'inf', '1e+300'
    st.floats(0, 5000, allow_nan=False).map(lambda x: f"{x:.2f}"),
    st.text(alphabet="0123456789" + NON_ASCII_DIGITS, min_size=1, max_size=6),
    st.sampled_from(
        ["nan", "inf", "-inf", "NaN", "1e3", "1_000", "+5", "-0", "", " ", "0x10", "1:05", "00:01:02.5", "\ud800"]
    ),
)
units = st.sampled_from(["", "", "", " s", "s", " sec", " seconds", "\u79d2"])
separators = st.sampled_from([",", ", ", " , ", "-", " - ", " to ", ";", ",,", "", "\n"])
openers = st.sampled_from(["[", "[", "[", " [", "(", "", "[[", "{"])
closers = st.sampled_from(["]", "]", "]", "] ", ")", "", "]]", "}", "] s"])
junk = st.one_of(st.just(""), st.text(max_size=8), st.sampled_from(["start_time", "A", "(B)", "The answer is "]))


@st.composite
def box_contents(draw) -> str:
    """Something like ``[12, 30]``, ``[12.5 s - 30 s]``, ``[nan]``, ``(30, 1e3``, ``A``."""
    values = draw(st.lists(st.tuples(numbers, units), max_size=4))
    body = "".join((draw(separators) if i else "") + number + unit for i, (number, unit) in enumerate(values))
    return draw(junk) + draw(openers) + body + draw(closers) + draw(junk)


@st.composite
def plausible_intervals(draw) -> str:
    """What the model is trained to write, give or take: ``[95, 120]``, ``[12.5 s, 30 s]``, ``[30-12]``."""
    start, end = draw(st.integers(-50, 4000)), draw(st.integers(-50, 4000))
    if draw(st.booleans()):
        start, end = f"{start}.{draw(st.integers(0, 99))}", f"{end}.5"
    unit = draw(st.sampled_from(["", "", "", " s", "s"]))
    separator = draw(st.sampled_from([", ", ",", " - ", "-", " to "]))
    return f"[{start}{unit}{separator}{end}{unit}]"


@st.composite
def replies(draw) -> str:
    """A model reply: openings, text, zero or more boxes (closed, unclosed, nested)."""
    pieces = [draw(st.sampled_from(["", ANSWER_PREFIX, ZOOM_PREFIX, "I get", "\\boxed"]))]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["text", "box", "box", "interval", "interval", "unclosed", "nested", "braces"]))
        if kind == "text":
            pieces.append(draw(st.text(max_size=30)))
        elif kind == "box":
            pieces.append(BOX_OPEN + draw(box_contents()) + "}")
        elif kind == "interval":
            pieces.append(BOX_OPEN + draw(plausible_intervals()) + "}")
        elif kind == "unclosed":
            pieces.append(BOX_OPEN + draw(box_contents()))
        elif kind == "nested":
            depth = draw(st.integers(1, 4))
            closing = draw(st.integers(0, depth + 2))
            pieces.append(BOX_OPEN + "{" * depth + draw(box_contents()) + "}" * closing)
        else:
            pieces.append(draw(st.text(alphabet="{}[]\\boxed,0123456789 -.", max_size=40)))
    return "".join(pieces)


any_reply = st.one_of(replies(), st.text(max_size=200))
# replies whose last box is a plausible interval, so the zoom branch is well exercised
zoom_replies = st.builds(
    lambda head, interval, tail: f"{ZOOM_PREFIX}{head}{BOX_OPEN}{interval}}}{tail}",
    replies(),
    plausible_intervals(),
    st.sampled_from(["", ".", " done", "}", "\\boxed"]),
)

durations = st.one_of(
    st.floats(0, 100_000, allow_nan=False),
    st.integers(0, 100_000),
    st.sampled_from([0.0, 0.5, 2.99, 3.0, 3.5, 59.9, 60.0, 600.0, 600.9, 3600.0]),
)
pairs = st.tuples(st.integers(-100, 100_000), st.integers(-100, 100_000)).map(lambda t: (min(t), max(t)))
zoomed_lists = st.lists(pairs, max_size=3)
loop_configs = st.one_of(
    st.sampled_from([LoopConfig(), get_preset("longvideobench").loop]),
    st.builds(
        LoopConfig,
        pad_s=st.integers(0, 10),
        min_width_s=st.one_of(st.integers(0, 10), st.floats(0, 10)),
        widen=st.booleans(),
        widen_max_s=st.floats(0, 100),
        widen_fraction=st.floats(0, 1),
        iou_stop=st.floats(0, 1),
    ),
)


# ---- oracles and invariant checks ----


def reference_interval(content: str) -> tuple[int, int] | None:
    """SPEC 3 step 4 written as plainly as possible."""
    content = content.strip()
    if not content.startswith("["):
        return None
    try:
        values = sorted(int(part) for part in content[1:-1].split(","))
    except ValueError:
        return None
    return (values[0], values[1]) if len(values) >= 2 else None


def check_box(text: str, box: str | None) -> None:
    marker = text.rfind(BOX_OPEN)
    if marker < 0:
        assert box is None
        return
    rest = text[marker + len(BOX_OPEN) :]
    assert box is not None and rest.startswith(box)
    depth = 1
    for char in box:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 1  # the box never closes early
    if box == rest:  # unbalanced: ran to the end
        assert depth >= 1
    else:  # balanced: the next character closes it
        assert depth == 1 and rest[len(box)] == "}"


def check_step(step, decision: Decision, zoomed, duration: float, cfg: LoopConfig) -> None:
    if decision.kind == "answer":
        assert step == Answer(decision.answer)
        return
    if decision.kind == "invalid":
        assert isinstance(step, ForceAnswer) and step.reason
        return
    assert isinstance(step, (Zoom, ForceAnswer))
    if isinstance(step, ForceAnswer):
        assert step.reason
        return
    s, e = step.interval
    assert type(s) is int and type(e) is int
    assert 0 <= s < e <= int(duration)  # inside the video, sorted, not empty
    assert e - s >= cfg.min_width_s
    a, b = decision.interval
    assert s <= max(a - cfg.pad_s, 0) and min(b + cfg.pad_s, int(duration)) <= e  # covers the padded ask
    assert all(iou(step.interval, previous) <= cfg.iou_stop for previous in zoomed)


# ---- properties ----


@fuzz(2500)
@given(text=any_reply)
def test_last_boxed_and_parse_answer(text):
    box = last_boxed(text)
    check_box(text, box)
    assert parse_answer(text) == ("" if box is None else box)


@fuzz(2500)
@given(content=st.one_of(box_contents(), st.text(max_size=60)))
def test_parse_interval_is_the_reference_rule_and_lenient_extends_it(content):
    strict = parse_interval(content)
    assert strict == reference_interval(content)
    lenient = parse_interval(content, lenient=True)
    if strict is not None:
        assert lenient == strict
    for interval in (strict, lenient):
        if interval is not None:
            assert type(interval[0]) is int and type(interval[1]) is int and interval[0] <= interval[1]


@fuzz(2500)
@given(text=any_reply, lenient=st.booleans())
def test_parse_decision_is_consistent_with_the_box(text, lenient):
    decision = parse_decision(text, lenient=lenient)
    box = last_boxed(text)
    content = None if box is None else box.strip()
    if not content:
        assert decision.kind == "invalid"
    elif not content.startswith("["):
        assert (decision.kind, decision.answer) == ("answer", content)
    else:
        assert decision.kind in ("zoom", "invalid")
        assert decision.interval == parse_interval(content, lenient=lenient)
    assert (decision.answer is not None) == (decision.kind == "answer")
    assert (decision.interval is not None) == (decision.kind == "zoom")


@fuzz(3000)
@given(
    text=st.one_of(any_reply, zoom_replies, zoom_replies),
    lenient=st.booleans(),
    zoomed=zoomed_lists,
    duration=durations,
    cfg=loop_configs,
)
def test_next_step_on_generated_replies(text, lenient, zoomed, duration, cfg):
    decision = parse_decision(text, lenient=lenient)
    step = next_step(decision, zoomed, duration, cfg)
    event(f"{decision.kind} -> {type(step).__name__}")  # shown by --hypothesis-show-statistics
    check_step(step, decision, zoomed, duration, cfg)


@fuzz(1000)
@given(
    start=st.one_of(st.integers(-200, 4000), st.integers(-(10**30), 10**30)),
    end=st.one_of(st.integers(-200, 4000), st.integers(-(10**30), 10**30)),
    lenient=st.booleans(),
    zoomed=zoomed_lists,
    duration=durations,
    cfg=loop_configs,
)
def test_next_step_on_proposed_intervals(start, end, lenient, zoomed, duration, cfg):
    # any integer pair in either order, the way the model writes it
    decision = parse_decision(f"I need to zoom in on the video.\n\n\\boxed{{[{start}, {end}]}}", lenient=lenient)
    assert decision.interval == (min(start, end), max(start, end))
    step = next_step(decision, zoomed, duration, cfg)
    event(f"{decision.kind} -> {type(step).__name__}")
    check_step(step, decision, zoomed, duration, cfg)


def test_a_box_of_megabytes():
    started = time.perf_counter()
    big = "\\boxed{[" + "12.5 s, " * 400_000 + "30]}"  # 3.2 MB of decimals with units
    assert parse_decision(big).kind == "invalid"
    lenient = parse_decision(big, lenient=True)
    assert lenient.interval == (12, 13)  # the two smallest numbers: 12.5 and 12.5
    step = next_step(lenient, [], 600.0, LoopConfig())
    check_step(step, lenient, [], 600.0, LoopConfig())
    nested = "I get the answer.\n\n\\boxed{" + "{[" * 1_000_000  # 2 MB, never closed
    assert parse_answer(nested) == "{[" * 1_000_000
    assert parse_decision(nested, lenient=True).kind == "answer"
    assert time.perf_counter() - started < 10
