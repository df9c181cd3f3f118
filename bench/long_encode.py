"""Encoding a whole long file: the causal encoder in one pass vs chunked with its KV cache (CPU).

`AudioTokenizer.encode(chunk_frames=N)` runs the encoder chunked (`CausalEncoder.forward_chunked`,
N frames at a time, the same codes). This bench measures what that costs and saves against
one causal pass (the default) on random latents of a long file: the paper-size encoder
(12 causal blocks of width 64) or the demo one, 30 minutes of latents by default (38,760
frames at 21.53 frames/s). Each side runs in its own subprocess; the peak is the
resident-set high-water mark added by the encode (`/proc/self/clear_refs`, Linux), and
the codes of both sides are compared.

    python bench/long_encode.py                    # paper encoder, 30 minutes
    python bench/long_encode.py --minutes 5 --size demo
    python bench/long_encode.py --tiny             # seconds, plumbing only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loss_memory import _status_kb  # the memory benches share one reader of /proc/self/status


def child(args: argparse.Namespace) -> dict[str, object]:
    import torch

    from lmmsn.tokenizer.model import SIZES, build_tokenizer

    torch.manual_seed(0)
    model = build_tokenizer(SIZES[args.size], with_vae=False).eval()
    frames = max(2, round(args.minutes * 60 * model.frame_rate))
    latents = torch.randn(1, frames, model.latent_dim)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status_kb("VmRSS")
    start = time.perf_counter()
    with torch.no_grad():
        codes = model.encode_latents(latents, chunk_frames=args.chunk if args.side == "chunked" else None)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM") - base
    return {"frames": frames, "seconds": seconds, "peak_mb": peak / 1024,
            "codes_sha1": hashlib.sha1(codes.numpy().tobytes()).hexdigest()}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--size", choices=["paper", "demo", "tiny"], default="paper")
    parser.add_argument("--chunk", type=int, default=1024, help="frames per chunk")
    parser.add_argument("--tiny", action="store_true", help="the tiny encoder on 0.5 minutes")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--child", choices=["one-pass", "chunked"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.minutes, args.chunk = "tiny", 0.5, 64
    args.side = args.child
    if args.child:
        print(json.dumps(child(args)))
        return {}
    results = {}
    for side in ("one-pass", "chunked"):
        cmd = [sys.executable, __file__, "--child", side, "--minutes", str(args.minutes), "--size", args.size,
               "--chunk", str(args.chunk)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{side} side failed:\n{done.stderr[-2000:]}")
        results[side] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[side]
        print(f"{side:<9} {r['frames']} frames  peak +{r['peak_mb']:.0f} MB  {r['seconds']:.2f} s")
    same = results["one-pass"]["codes_sha1"] == results["chunked"]["codes_sha1"]
    mem = results["chunked"]["peak_mb"] / max(results["one-pass"]["peak_mb"], 1e-9)
    speed = results["one-pass"]["seconds"] / max(results["chunked"]["seconds"], 1e-9)
    print(f"long_encode: {args.size} encoder, {args.minutes:g} min, chunk {args.chunk}: peak memory chunked / one pass "
          f"{mem:.3f}, speed chunked / one pass {speed:.2f}x, codes {'identical' if same else 'DIFFER'}")
    summary = {"size": args.size, "minutes": args.minutes, "chunk": args.chunk, **results,
               "memory_ratio": mem, "speed_ratio": speed, "codes_identical": same}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
