"""Overfitting check: VQ+FM and VQ+MSE both drive the reconstruction error of a handful of clips far down.

Slow on 2 busy CPU cores (minutes), so marked slow; also a script that prints the numbers:

    .venv/bin/python -m tests.tokenizer.test_overfit            # FM 1000 steps, MSE 300 steps
"""

from __future__ import annotations

import time

import pytest
import torch

from lmmsn.tokenizer.flow import FlowConfig
from lmmsn.tokenizer.model import build_tokenizer, masked_mse, tokenizer_config


def reconstruction_error(model, latents: torch.Tensor) -> float:
    """MSE of encode_latents -> decode_latents (fixed noise) against the clips."""
    model.eval()
    codes = model.encode_latents(latents)
    recon = model.decode_latents(codes, generator=torch.Generator().manual_seed(0))
    model.train()
    return masked_mse(recon, latents, None).item()


def overfit(objective: str, steps: int, lr: float = 3e-3, seed: int = 0) -> tuple[float, float]:
    """Train the tiny tokenizer on 4 random clips [32, 8]; return (error before, error after)."""
    torch.manual_seed(seed)
    model = build_tokenizer(tokenizer_config("tiny", flow=FlowConfig(objective=objective)), with_vae=False)
    latents = torch.randn(4, 32, 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    start = reconstruction_error(model, latents)
    for _ in range(steps):
        loss = model.compute_loss(latents).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return start, reconstruction_error(model, latents)


@pytest.mark.slow
@pytest.mark.parametrize("objective, steps", [("cfm", 1000), ("mse", 300)])
def test_overfits_a_handful_of_clips(objective, steps):
    start, end = overfit(objective, steps)
    print(f"{objective}: reconstruction MSE {start:.4f} -> {end:.4f} after {steps} steps")
    assert end < 0.2 * start


if __name__ == "__main__":
    torch.set_num_threads(1)
    for objective, steps in (("cfm", 1000), ("mse", 300)):
        t0 = time.time()
        start, end = overfit(objective, steps)
        print(f"{objective}: reconstruction MSE {start:.4f} -> {end:.4f} after {steps} steps ({time.time() - t0:.0f} s)")
