"""Learning-rate schedules shared by the training modules."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate: linear warm-up to 1, then cosine decay to `min_ratio` at `total`.

    `min_ratio = 1` gives warm-up then constant.
    """
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


__all__ = ["warmup_cosine"]
