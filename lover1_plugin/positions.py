"""3-D rotary position ids of Qwen2.5-VL, as the LOVE-R1 checkpoints were trained (SPEC 1b).

The checkpoints were trained with transformers 4.49.0, and later releases changed how
text after a video is placed (several 5.x releases put it at ``start + max(h, w) / 2``
instead of after the video's last temporal position). We compute the 4.49 positions
ourselves and the backend always passes them to the model explicitly.

Rule: text tokens take ``(p, p, p)`` with ``p`` growing by one; a video block with
merged grid ``(t, h, w)`` starting at ``p0`` gives its token ``(i, j, k)`` (time-major,
then row, then column) the position
``(p0 + int(i * second_per_grid_t * tokens_per_second), p0 + j, p0 + k)``; the text
after a block starts at ``max(all positions so far) + 1``.

Worked example (SPEC 1b): 3 text tokens, a video with processor grid ``(4, 4, 6)``
(merged ``(4, 2, 3)``) at 0.5 fps (``second_per_grid_t = 4``), 2 text tokens:

>>> V = 151656
>>> ids = torch.tensor([1, 2, 3] + [V] * 24 + [4, 5])
>>> pos = rope_position_ids(ids, [[4, 4, 6]], [4.0])
>>> pos[0].tolist()[:4], pos[0].tolist()[9], pos[0].tolist()[-3:]
([0, 1, 2, 3], 11, [27, 28, 29])
>>> pos[1].tolist()[3:9], pos[2].tolist()[3:9]
([3, 3, 3, 4, 4, 4], [3, 4, 5, 3, 4, 5])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

VIDEO_TOKEN_ID = 151656  # <|video_pad|>
SPATIAL_MERGE_SIZE = 2  # 2x2 vision patches merge into one language-model token
TOKENS_PER_SECOND = 2  # vision_config.tokens_per_second of Qwen2.5-VL


def rope_position_ids(
    input_ids: torch.Tensor | Sequence[int],
    video_grid_thw: torch.Tensor | Sequence[Sequence[int]] | None,
    second_per_grid_ts: torch.Tensor | Sequence[float] | None,
    *,
    video_token_id: int = VIDEO_TOKEN_ID,
    spatial_merge_size: int = SPATIAL_MERGE_SIZE,
    tokens_per_second: int = TOKENS_PER_SECOND,
) -> torch.LongTensor:
    """SPEC 1b position ids of one sequence, shape ``(3, L)`` (temporal, height, width).

    Args:
        input_ids: the token ids, shape ``(L,)`` or ``(1, L)``; each video is one
            contiguous run of ``video_token_id`` tokens, in the order of ``video_grid_thw``.
        video_grid_thw: per video, the processor's grid ``(T / 2, H / 14, W / 14)``.
        second_per_grid_ts: per video, ``2 / sample_fps`` seconds per temporal grid step.
        video_token_id: id of ``<|video_pad|>``.
        spatial_merge_size: ``vision_config.spatial_merge_size`` (2).
        tokens_per_second: ``vision_config.tokens_per_second`` (2 for Qwen2.5-VL).

    The temporal index is computed in float32 (``arange(t) * second_per_grid_t *
    tokens_per_second`` then truncated), exactly as transformers 4.49 did with the
    processor's float32 ``second_per_grid_ts`` tensor, so rates such as 1.27 fps give
    the trained positions even where float64 arithmetic would round differently.

    Raises:
        ValueError: the video token count or layout does not match the grids.
    """
    ids = torch.as_tensor(input_ids)
    if ids.ndim == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.ndim != 1:
        raise ValueError(f"input_ids must have shape (L,) or (1, L), got {tuple(ids.shape)}")
    length = ids.shape[0]
    grids = _as_grids(video_grid_thw)
    seconds = _as_seconds(second_per_grid_ts, len(grids))

    merged = grids.clone()
    merged[:, 1:] //= spatial_merge_size  # (V, 3) merged (t, h, w)
    counts = merged.prod(dim=1).tolist()
    video_index = (ids == video_token_id).nonzero().flatten().tolist()
    if sum(counts) != len(video_index):
        raise ValueError(
            f"{len(video_index)} video tokens in input_ids but the grids {grids.tolist()} need {sum(counts)}"
        )

    positions = torch.arange(length, dtype=torch.long).expand(3, length).clone()  # (3, L), text: p = index
    offset = 0  # text token at index n sits at n + offset
    first = 0
    for number, ((t, h, w), second, count) in enumerate(zip(merged.tolist(), seconds, counts, strict=True)):
        start = video_index[first]
        if video_index[first + count - 1] - start != count - 1:
            raise ValueError(f"the tokens of video {number} are not one contiguous block (it starts at index {start})")
        first += count
        p0 = start + offset
        block = _video_block(t, h, w, second, tokens_per_second) + p0  # (3, count)
        positions[:, start : start + count] = block
        new_offset = int(block.max()) + 1 - (start + count)
        positions[:, start + count :] += new_offset - offset
        offset = new_offset
    return positions


def _video_block(t: int, h: int, w: int, second: torch.Tensor, tokens_per_second: int) -> torch.Tensor:
    """Positions of one video relative to its start, ``(3, t * h * w)``, time-major order."""
    temporal = (torch.arange(t) * second * tokens_per_second).long()  # float32 product, truncated
    grid = torch.meshgrid(temporal, torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack(grid).reshape(3, -1)


def _as_grids(video_grid_thw) -> torch.Tensor:
    if video_grid_thw is None:
        return torch.zeros((0, 3), dtype=torch.long)
    grids = torch.as_tensor(video_grid_thw, dtype=torch.long)
    if grids.numel() == 0:
        return torch.zeros((0, 3), dtype=torch.long)
    if grids.ndim != 2 or grids.shape[1] != 3:
        raise ValueError(f"video_grid_thw must have shape (num_videos, 3), got {tuple(grids.shape)}")
    return grids


def _as_seconds(second_per_grid_ts, num_videos: int) -> list[torch.Tensor]:
    if num_videos == 0:
        return []
    if second_per_grid_ts is None:
        raise ValueError("second_per_grid_ts is required when there are videos")
    # float32, as the processor's BatchFeature tensor that 4.49 multiplied with
    seconds = torch.as_tensor(second_per_grid_ts, dtype=torch.float32).reshape(-1)
    if seconds.shape[0] != num_videos:
        raise ValueError(f"{seconds.shape[0]} second_per_grid_ts for {num_videos} videos")
    return list(seconds)


__all__ = ["SPATIAL_MERGE_SIZE", "TOKENS_PER_SECOND", "VIDEO_TOKEN_ID", "rope_position_ids"]
