"""Training-step benchmark of the audio tokenizer: step time, samples/s, peak memory.

    .venv/bin/python bench/tokenizer_step.py                      # CPU: tiny config
    python bench/tokenizer_step.py --size paper --batch-size 64   # GPU: paper config, bf16 autocast

One step = AudioTokenizer.compute_loss on random latents [B, T, L] (full
length, no padding) + backward + gradient clipping + AdamW, as in the recipe.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from lmmsn.tokenizer.flow import FlowConfig
from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "paper"], default=None, help="default: paper on GPU, tiny on CPU")
    parser.add_argument("--objective", choices=["cfm", "mse"], default="cfm")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 (paper), 8 (tiny)")
    parser.add_argument("--frames", type=int, default=None, help="default: 215 (paper), 32 (tiny)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    size = args.size or ("paper" if cuda else "tiny")
    batch = args.batch_size or (64 if size == "paper" else 8)
    frames = args.frames or (215 if size == "paper" else 32)
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    model = build_tokenizer(tokenizer_config(size, flow=FlowConfig(objective=args.objective)), with_vae=False).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    latents = torch.randn(batch, frames, model.latent_dim, device=device)
    mask = torch.ones(batch, frames, dtype=torch.bool, device=device)

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = model.compute_loss(latents, mask)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return out

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        out = step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / args.steps
    if cuda:
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
        peak = f"{peak_gib:.2f} GiB (CUDA allocated)"
    else:
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak = f"{peak_gib:.2f} GiB (process max RSS)"
    counts = model.parameter_counts()
    print(f"device {device} size {size} objective {args.objective} batch {batch} x {frames} frames; params {counts}")
    print(f"step time {elapsed * 1000:.1f} ms | {batch / elapsed:.1f} samples/s | peak memory {peak}")
    print(f"codebook: perplexity {float(out.quantizer.perplexity):.1f}, used {float(out.quantizer.used_fraction):.3f}, "
          f"active {float(out.quantizer.active_fraction):.3f}")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "size": size, "batch": batch, "frames": frames,
                                         "step_ms": elapsed * 1000, "samples_per_s": batch / elapsed,
                                         "peak_gib": peak_gib, "loss": float(out.loss)}, indent=1))


if __name__ == "__main__":
    main()
