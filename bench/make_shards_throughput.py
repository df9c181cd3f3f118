"""Throughput of make_shards: clips/s and x real time, end to end and VAE-only.

    .venv/bin/python bench/make_shards_throughput.py --vae tiny --device cpu --clips 32 --threads 1

End to end: writes `--clips` synthetic noise+tone files of `--clip-s` seconds
at `--source-rate` (so loader workers decode *and resample*) into a temporary
folder, runs `data_prep.make_shards` on them and reports the steady-state
figure (the first VAE batch, which includes warm-up and compilation, is timed
separately). VAE-only: repeated encodes of a [batch, C, segment] tensor on
the device. With `--compile` (GPU) it also prints the largest difference
between compiled and eager latents. Numbers depend on the machine: quote them
with the command line. `--json PATH` writes the figures (gpu_check.sh rows b, c).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch


def write_clips(root: Path, clips: int, seconds: float, rate: int) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    rows = []
    for i in range(clips):
        wav = 0.1 * rng.standard_normal((t.size, 2)) + 0.3 * np.sin(2 * np.pi * (110 + 10 * i) * t)[:, None]
        soundfile.write(root / f"clip{i:05d}.flac", wav.astype(np.float32), rate, subtype="PCM_16")
        rows.append(json.dumps({"path": f"clip{i:05d}.flac", "caption": f"clip {i}", "source": "bench"}))
    (root / "manifest.jsonl").write_text("\n".join(rows))


def vae_only(args) -> dict:
    from lmmsn.tokenizer.vae import StableAudioVAE, VAEConfig

    device = torch.device(args.device)
    vae = StableAudioVAE(VAEConfig(architecture=args.vae)).to(device)
    x = torch.randn(args.batch_size, vae.channels, int(args.segment_s * vae.sample_rate), device=device) * 0.1
    encode = vae.model.encoder
    if args.compile:
        encode = torch.compile(vae.model.encoder, backend=args.compile_backend)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda")

    def step():
        with torch.no_grad(), autocast:
            out = encode(vae.prepare(x))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    step()  # warm-up (and compilation)
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        step()
    seconds = (time.perf_counter() - t0) / args.repeats
    clips_s = args.batch_size / seconds
    print(f"VAE only ({args.vae}, {device}, batch {args.batch_size}, compile={args.compile}, bf16={args.bf16}): "
          f"{1000 * seconds / args.batch_size:.2f} ms/clip, {clips_s:.2f} clips/s, "
          f"{clips_s * args.segment_s:.1f}x real time")
    result = {"vae": args.vae, "device": str(device), "batch": args.batch_size, "compile": args.compile,
              "bf16": args.bf16, "ms_per_clip": 1000 * seconds / args.batch_size, "clips_per_s": clips_s,
              "x_real_time": clips_s * args.segment_s}
    if args.compile:
        with torch.no_grad():
            eager = vae.model.encoder(vae.prepare(x)).float()  # float32 eager: the reference
        diff = (step().float() - eager).abs().max().item()
        rel = diff / eager.abs().max().item()
        print(f"compiled vs eager latents: max |diff| {diff:.3g} ({rel:.3g} of max |latent|)")
        result.update(max_latent_diff=diff, max_latent_diff_rel=rel)
    return result


def end_to_end(args) -> dict:
    from data_prep.make_shards import ShardConfig, ShardMaker

    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "audio", Path(tmp) / "shards"
        root.mkdir()
        write_clips(root, args.clips, args.clip_s, args.source_rate)
        config = ShardConfig(adapter="manifest", root=str(root), out=str(out), vae=args.vae,
                             device=args.device, batch_size=args.batch_size, num_workers=args.num_workers,
                             segment_s=args.segment_s, records_per_shard=max(1, args.clips // 4),
                             compile=args.compile, bf16=args.bf16, threads=args.threads)
        maker = ShardMaker(config)
        first = time.perf_counter()
        marks: list[float] = []
        maker.on_record = lambda index: marks.append(time.perf_counter())
        index = maker.run()
        total = time.perf_counter() - first
        per_clip = math.ceil(args.clip_s / args.segment_s)
        # steady state: from the record that completed the first VAE batch to the last record
        start = min(len(marks) - 1, max(0, math.ceil(args.batch_size / per_clip) - 1))
        steady_clips = (len(marks) - 1 - start) * per_clip
        steady_s = marks[-1] - marks[start] if len(marks) > 1 else float("nan")
        sizes = [s["bytes"] for s in index["shards"]]
        print(f"end to end ({args.vae}, {args.device}, batch {args.batch_size}, {args.num_workers} workers, "
              f"{args.clips} x {args.clip_s} s clips at {args.source_rate} Hz): {index['num_samples']} samples "
              f"in {total:.1f} s incl. warm-up ({index['num_samples'] / total:.2f} clips/s)")
        result = {"vae": args.vae, "device": args.device, "clips": args.clips, "clip_s": args.clip_s,
                  "samples": index["num_samples"], "total_s": total,
                  "x_real_time_incl_warmup": index["num_samples"] * min(args.clip_s, args.segment_s) / total}
        if steady_clips > 0:
            rate = steady_clips / steady_s
            print(f"steady state: {rate:.2f} clips/s, {rate * min(args.clip_s, args.segment_s):.1f}x real time")
            result.update(clips_per_s=rate, x_real_time=rate * min(args.clip_s, args.segment_s))
        print(f"shards: {len(sizes)}, {sum(sizes) / 1e6:.2f} MB, {sum(sizes) / max(1, index['num_samples']) / 1e3:.1f} "
              f"kB/sample; skipped {index['num_skipped']}")
        return result


def main() -> None:
    # run as a script from anywhere: data_prep is a top-level folder of the repository, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae", default="tiny", choices=["tiny", "stable-audio-open-1.0"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--clip-s", type=float, default=10.0)
    parser.add_argument("--segment-s", type=float, default=10.0)
    parser.add_argument("--source-rate", type=int, default=48000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--skip", choices=["none", "vae-only", "end-to-end"], default="none")
    parser.add_argument("--compile-backend", default="inductor", help='VAE-only torch.compile backend')
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    if args.skip != "vae-only":
        results["vae_only"] = vae_only(args)
    if args.skip != "end-to-end":
        results["end_to_end"] = end_to_end(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
