"""SPEC 3 loop rules, each branch with numbers worked by hand."""

from __future__ import annotations

import dataclasses

import pytest

from lover1_plugin.config import LoopConfig, get_preset
from lover1_plugin.decisions import Decision, parse_decision
from lover1_plugin.policy import Answer, ForceAnswer, Zoom, add_interval, forced_answer_intervals, next_step

DEFAULT = LoopConfig()
NO_WIDEN = get_preset("longvideobench").loop


def zoom(a: int, b: int) -> Decision:
    return Decision("zoom", interval=(a, b), reason="zoom")


def test_invalid_forces_the_answer_with_its_reason():
    step = next_step(parse_decision("no box"), [], 600.0, DEFAULT)
    assert step == ForceAnswer("no \\boxed{} in the reply")


def test_answer_is_returned():
    assert next_step(parse_decision("\\boxed{ B }"), [], 600.0, DEFAULT) == Answer("B")


def test_narrow_box_is_padded_then_widened_to_30s():
    # D=600: [100, 110] -> padded (95, 115), width 20 < min(30, 600/8=75) = 30
    # -> mid 105, w 30 -> (int(90.0), int(120.0)) = (90, 120)
    assert next_step(zoom(100, 110), [], 600.0, DEFAULT) == Zoom((90, 120))


def test_longvideobench_preset_does_not_widen():
    assert NO_WIDEN.widen is False
    # padded (95, 115) and kept
    assert next_step(zoom(100, 110), [], 600.0, NO_WIDEN) == Zoom((95, 115))


def test_wide_box_is_only_padded():
    # [100, 200] -> (95, 205), width 110 >= 30: no widening
    assert next_step(zoom(100, 200), [], 600.0, DEFAULT) == Zoom((95, 205))


def test_short_video_widens_to_an_eighth_of_its_duration():
    # D=100: w = min(30, 12.5) = 12.5; [50, 50] -> (45, 55) width 10 < 12.5
    # -> mid 50 -> (int(43.75), int(56.25)) = (43, 56)
    assert next_step(zoom(50, 50), [], 100.0, DEFAULT) == Zoom((43, 56))


def test_widening_is_clamped_at_the_start():
    # D=600: [0, 2] -> (0, 7), width 7 < 30 -> mid 3.5 -> (int(max(-11.5, 0)), int(18.5)) = (0, 18)
    assert next_step(zoom(0, 2), [], 600.0, DEFAULT) == Zoom((0, 18))


def test_widening_is_clamped_at_the_end_by_the_float_duration():
    # D=600.9, int(D)=600: [598, 600] -> (593, 600), width 7 < 30 -> mid 596.5
    # -> s = int(581.5) = 581, e = int(min(611.5, 600.9)) = 600
    assert next_step(zoom(598, 600), [], 600.9, DEFAULT) == Zoom((581, 600))


def test_end_is_clamped_to_int_duration():
    # D=600.9: [500, 700] -> (495, min(705, 600)) = (495, 600)
    assert next_step(zoom(500, 700), [], 600.9, DEFAULT) == Zoom((495, 600))


def test_negative_start_is_clamped_to_zero():
    # parse "[-20, 40]" -> (-20, 40) -> (max(-25, 0), 45) = (0, 45), width 45 >= 30
    decision = parse_decision("\\boxed{[-20, 40]}")
    assert decision.interval == (-20, 40)
    assert next_step(decision, [], 600.0, DEFAULT) == Zoom((0, 45))


def test_reversed_order_is_sorted_by_the_parser():
    # "[200, 100]" -> (100, 200) -> (95, 205)
    assert next_step(parse_decision("\\boxed{[200, 100]}"), [], 600.0, DEFAULT) == Zoom((95, 205))


def test_reversed_interval_in_a_hand_built_decision_is_sorted():
    assert next_step(zoom(200, 100), [], 600.0, DEFAULT) == Zoom((95, 205))


def test_one_number_forces_the_answer():
    step = next_step(parse_decision("\\boxed{[100]}"), [], 600.0, DEFAULT)
    assert isinstance(step, ForceAnswer) and "cannot read" in step.reason


def test_interval_past_the_end_is_narrower_than_3s():
    # D=600: [700, 800] -> (695, 600): width -95 < 3
    step = next_step(zoom(700, 800), [], 600.0, DEFAULT)
    assert isinstance(step, ForceAnswer) and "narrower than 3 s" in step.reason


def test_interval_before_the_start_is_narrower_than_3s():
    # [-100, -6] -> (0, -1): width -1 < 3
    assert isinstance(next_step(zoom(-100, -6), [], 600.0, DEFAULT), ForceAnswer)


def test_width_below_3s_stops_on_a_2s_video():
    # D=2.5, int(D)=2: [0, 2] -> (0, 2): width 2 < 3
    step = next_step(zoom(0, 2), [], 2.5, DEFAULT)
    assert step == ForceAnswer("interval [0, 2] is narrower than 3 s")


def test_width_of_exactly_3s_is_kept():
    # D=3: [0, 3] -> (0, 3): width 3 is not < 3; w = min(30, 0.375) -> no widening
    assert next_step(zoom(0, 3), [], 3.0, DEFAULT) == Zoom((0, 3))


def test_iou_above_threshold_stops():
    # new (90, 120) vs zoomed (100, 130): 20 / 40 = 0.5 > 0.3
    step = next_step(zoom(100, 110), [(100, 130)], 600.0, DEFAULT)
    assert isinstance(step, ForceAnswer)
    assert "IoU 0.50 > 0.3" in step.reason


def test_iou_at_or_below_threshold_zooms():
    # new (90, 120) vs (110, 200): 10 / 110 = 0.09 <= 0.3 -> allowed; vs (300, 330): 0
    assert next_step(zoom(100, 110), [(110, 200), (300, 330)], 600.0, DEFAULT) == Zoom((90, 120))


def test_iou_threshold_is_strict():
    # new (95, 205) vs zoomed (95, 128): 33 / 110 = 0.3 exactly, not > 0.3
    cfg = dataclasses.replace(DEFAULT, iou_stop=0.3)
    assert next_step(zoom(100, 200), [(95, 128)], 600.0, cfg) == Zoom((95, 205))
    assert isinstance(next_step(zoom(100, 200), [(95, 129)], 600.0, cfg), ForceAnswer)


def test_zero_min_width_never_yields_an_empty_interval():
    # guard beyond SPEC: pad 0, min width 0, no widening: [100, 100] -> (100, 100), 0 frames
    cfg = LoopConfig(pad_s=0, min_width_s=0, widen=False)
    step = next_step(zoom(100, 100), [], 600.0, cfg)
    assert step == ForceAnswer("interval [100, 100] is empty")
    assert next_step(zoom(100, 101), [], 600.0, cfg) == Zoom((100, 101))


def test_default_loop_config_is_used_when_omitted():
    assert next_step(zoom(100, 110), [], 600.0) == Zoom((90, 120))


@pytest.mark.parametrize("duration", [-1.0, float("nan"), float("inf"), "600"])
def test_bad_duration_is_a_caller_error(duration):
    with pytest.raises(ValueError, match="duration"):
        next_step(zoom(100, 110), [], duration, DEFAULT)


def test_add_interval_keeps_the_list_sorted_by_start():
    assert add_interval([(300, 330)], (90, 120)) == [(90, 120), (300, 330)]
    assert add_interval([], (5, 8)) == [(5, 8)]
    zoomed = [(300, 330)]
    add_interval(zoomed, (0, 30))
    assert zoomed == [(300, 330)]  # the input is not modified


def test_forced_answer_intervals():
    # no zoom yet: the whole video [0, int(D)]
    assert forced_answer_intervals([], 600.9) == [(0, 600)]
    assert forced_answer_intervals([(300, 330), (90, 120)], 600.9) == [(90, 120), (300, 330)]


def test_two_rounds_of_the_worked_example():
    # round 1: [100, 110] -> (90, 120); round 2: [400, 402] -> (386, 416)
    zoomed: list[tuple[int, int]] = []
    step = next_step(parse_decision("\\boxed{[100, 110]}"), zoomed, 600.0, DEFAULT)
    zoomed = add_interval(zoomed, step.interval)
    step = next_step(parse_decision("\\boxed{[400, 402]}"), zoomed, 600.0, DEFAULT)
    # (395, 407), width 12 -> mid 401 -> (386, 416)
    assert step == Zoom((386, 416))
    assert add_interval(zoomed, step.interval) == [(90, 120), (386, 416)]
