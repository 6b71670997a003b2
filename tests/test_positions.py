"""SPEC 1b: the 3-D RoPE positions the LOVE-R1 checkpoints were trained with (transformers 4.49)."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lover1_plugin.positions import rope_position_ids

V = 151656  # <|video_pad|>
TEXT = 42  # any non-video token


def naive_positions(ids, grids, seconds, merge=2, tps=2):
    """A token-by-token transcription of the SPEC 1b rule, used as the oracle."""
    out = [[], [], []]
    next_p = 0
    video = 0
    i = 0
    while i < len(ids):
        if ids[i] != V:
            for axis in out:
                axis.append(next_p)
            next_p += 1
            i += 1
            continue
        t, h, w = grids[video][0], grids[video][1] // merge, grids[video][2] // merge
        spt = torch.tensor(seconds[video], dtype=torch.float32)  # float32, as 4.49 multiplied
        p0 = next_p
        for a in range(t):
            for b in range(h):
                for c in range(w):
                    out[0].append(p0 + int((torch.tensor(a) * spt * tps).long()))
                    out[1].append(p0 + b)
                    out[2].append(p0 + c)
        i += t * h * w
        video += 1
        next_p = max(max(axis) for axis in out) + 1
    return out


def test_spec_1b_worked_example():
    # 3 text tokens, a video with grid (4, 4, 6) (merged (4, 2, 3)) at 0.5 fps, 2 text tokens
    ids = torch.tensor([TEXT] * 3 + [V] * 24 + [TEXT] * 2)
    pos = rope_position_ids(ids, [[4, 4, 6]], [2 / 0.5])
    assert pos.dtype == torch.long and pos.shape == (3, 29)
    assert pos[0].tolist() == [0, 1, 2] + [3] * 6 + [11] * 6 + [19] * 6 + [27] * 6 + [28, 29]
    assert pos[1].tolist() == [0, 1, 2] + [3, 3, 3, 4, 4, 4] * 4 + [28, 29]
    assert pos[2].tolist() == [0, 1, 2] + [3, 4, 5, 3, 4, 5] * 4 + [28, 29]


def test_fast_then_slow_then_text_worked_by_hand():
    # 2 text | fast view: grid (2, 4, 4) -> merged (2, 2, 2) at 2 fps (1 s per step, 2 positions)
    # | 3 text | slow view: grid (1, 2, 6) -> merged (1, 1, 3) at 4 fps | 2 text
    ids = torch.tensor([TEXT] * 2 + [V] * 8 + [TEXT] * 3 + [V] * 3 + [TEXT] * 2)
    pos = rope_position_ids(ids, torch.tensor([[2, 4, 4], [1, 2, 6]]), torch.tensor([1.0, 0.5]))
    # fast view starts at 2; its last temporal position (4) exceeds its rows/cols (3)
    assert pos[0].tolist() == [0, 1] + [2] * 4 + [4] * 4 + [5, 6, 7] + [8, 8, 8] + [11, 12]
    assert pos[1].tolist() == [0, 1] + [2, 2, 3, 3] * 2 + [5, 6, 7] + [8, 8, 8] + [11, 12]
    # slow view starts at 8; its width (8, 9, 10) decides where the text goes on
    assert pos[2].tolist() == [0, 1] + [2, 3, 2, 3] * 2 + [5, 6, 7] + [8, 9, 10] + [11, 12]


def test_text_after_video_follows_its_last_temporal_position_not_its_size():
    # transformers 5.x puts the text after a video at start + max(h, w) / 2; 4.49 (the
    # trained rule) puts it after the largest position, here the last temporal one.
    ids = torch.tensor([V] * 4 + [TEXT])  # grid (4, 2, 2) -> merged (4, 1, 1), 0.25 fps: 8 s a step
    pos = rope_position_ids(ids, [[4, 2, 2]], [8.0])
    assert pos[0].tolist() == [0, 16, 32, 48, 49]
    assert pos[:, -1].tolist() == [49, 49, 49]


def test_adjacent_videos_and_three_videos():
    ids = [TEXT] + [V] * 2 + [V] * 4 + [TEXT] * 2 + [V] * 1 + [TEXT]
    grids = [[2, 2, 2], [1, 4, 4], [1, 2, 2]]
    seconds = [3.0, 1.0, 0.5]
    pos = rope_position_ids(torch.tensor(ids), grids, seconds)
    assert pos.tolist() == naive_positions(ids, grids, seconds)
    # the second video starts right after the first one's largest position (1 + 6 = 7 -> 8)
    assert pos[:, 3].tolist() == [8, 8, 8]


def test_temporal_index_uses_float32_like_transformers_4_49():
    # at 0.48 fps a step is 2 / 0.48 s; step 15 is 125 positions in exact arithmetic, but
    # 4.49 multiplied float32 tensors and truncated to 124: the checkpoints saw 124.
    ids = torch.tensor([V] * 16)  # grid (16, 2, 2) -> one token per step
    pos = rope_position_ids(ids, [[16, 2, 2]], [2 / 0.48])
    assert pos[0, 15].item() == 124
    assert pos[0, 3].item() == int(3 * (2 / 0.48) * 2)  # 25: no rounding trouble there


def test_accepts_batch_of_one_and_text_only():
    ids = torch.arange(5).unsqueeze(0)
    assert rope_position_ids(ids, None, None).tolist() == [list(range(5))] * 3
    assert rope_position_ids([7, 8], torch.zeros((0, 3), dtype=torch.long), []).tolist() == [[0, 1]] * 3


@pytest.mark.parametrize(
    ("ids", "grids", "seconds", "message"),
    [
        ([V] * 3, [[2, 2, 2]], [1.0], "need 2"),  # too many video tokens
        ([V] * 2, [[2, 2, 2], [2, 2, 2]], [1.0, 1.0], "need 4"),  # too few
        ([V, TEXT, V], [[2, 2, 2]], [1.0], "contiguous"),  # a video split by text
        ([V] * 2, [[2, 2, 2]], [1.0, 2.0], "2 second_per_grid_ts for 1"),
        ([V] * 2, [[2, 2, 2]], None, "second_per_grid_ts is required"),
    ],
)
def test_rejects_inputs_that_do_not_match_the_grids(ids, grids, seconds, message):
    with pytest.raises(ValueError, match=message):
        rope_position_ids(torch.tensor(ids), grids, seconds)


def test_twenty_thousand_tokens_are_fast():
    # a 1-hour fast view (384 x 4 x 7 = 10,752 tokens) and a 30 s zoom clip (16 x 12 x 21 = 4,032)
    ids = torch.tensor([TEXT] * 30 + [V] * 10752 + [TEXT] * 8 + [V] * 4032 + [TEXT] * 5000)
    start = time.perf_counter()
    pos = rope_position_ids(ids, [[384, 8, 14], [16, 24, 42]], [2 / 0.21, 2 / 1.07])
    assert time.perf_counter() - start < 1.0
    assert pos.shape == (3, ids.numel())
    # 384 steps of 2 / 0.21 s at 2 positions a second: the last step sits 7304 after the start
    assert pos[0, 30 + 10751].item() == 30 + int(torch.tensor(383) * torch.tensor(2 / 0.21) * 2)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),  # text tokens before the video
            st.integers(1, 3),  # grid t
            st.sampled_from([2, 4, 6]),  # grid h (before the 2x2 merge)
            st.sampled_from([2, 4, 6]),  # grid w
            st.sampled_from([0.01, 0.21, 0.48, 0.5, 1.0, 1.97, 2.0, 3.33]),  # sample fps
        ),
        max_size=3,
    ),
    st.integers(0, 3),  # trailing text
)
def test_matches_token_by_token_rule(videos, trailing):
    ids, grids, seconds = [], [], []
    for before, t, h, w, fps in videos:
        ids += [TEXT] * before + [V] * (t * (h // 2) * (w // 2))
        grids.append([t, h, w])
        seconds.append(2 / fps)
    ids += [TEXT] * trailing
    if not ids:
        ids = [TEXT]
    pos = rope_position_ids(torch.tensor(ids), grids or None, seconds or None)
    assert pos.tolist() == naive_positions(ids, grids, seconds)
