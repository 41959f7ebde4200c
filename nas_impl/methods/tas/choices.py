"""TAS's candidate widths per conv and candidate depths per stage (tas.md §3)."""

from __future__ import annotations

WIDTH_RATIOS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def width_choices(max_channels: int) -> list[int]:
    """Ratios 0.3..1.0 of `max_channels`, int()-truncated, de-duplicated, sorted.

    16 -> [4, 6, 8, 9, 11, 12, 14, 16]. Zero (ratios of tiny layers) is dropped.
    """
    return sorted({c for c in (int(r * max_channels) for r in WIDTH_RATIOS) if c > 0})


def depth_choices(num_blocks: int) -> list[int]:
    """Candidate numbers of kept blocks in a stage of `num_blocks` blocks.

    Up to 3 blocks: every depth; more: the odd depths 1, 3, 5, ... plus the full depth.
    """
    if num_blocks < 1:
        raise ValueError(f"a stage needs at least one block, got {num_blocks}")
    if num_blocks <= 3:
        return list(range(1, num_blocks + 1))
    return sorted(set(range(1, num_blocks + 1, 2)) | {num_blocks})
