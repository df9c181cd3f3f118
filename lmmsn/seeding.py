"""Seeding for reproducible runs.

Lightning's `seed_everything` seeds Python, NumPy and torch (all devices) and
exports PL_GLOBAL_SEED so dataloader workers are seeded too; `generator`
gives an isolated torch.Generator for sampling that must not disturb (or be
disturbed by) the global stream.
"""

from __future__ import annotations

import torch
from lightning.fabric.utilities.seed import seed_everything as _lightning_seed_everything


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch on every device; returns the seed."""
    return _lightning_seed_everything(seed, workers=True, verbose=False)


def generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on `device`, seeded with `seed` (None: from entropy)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen
