"""How good is the mel-hifigan frontend's own round trip? Resynthesis vs a shuffled-frame baseline, per category.

    python bench/frontend_resynthesis.py --manifest /work/data/corpus-split/heldout.jsonl --root /work/corpus \\
        --per-category 10 [--yamnet]

For each clip (cut to --max-seconds): encode -> decode with the frozen frontend,
then the log-mel L1 of the resynthesis against the original (the HiFi-GAN
analysis, floor 1e-5), beside the L1 of the original against itself with its
frames shuffled in time (same spectra, no temporal structure): ratio =
resynthesis / shuffled. Also the projection-only error (log-mel rebuilt from the
64-dim latent, no vocoder), encode and decode seconds per audio second, and
with --yamnet the top-1 agreement of the resynthesis with the original.
Prints one line per category and the mean; writes --json if given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.common import read_manifest
from lmmsn.audio import load_audio
from lmmsn.tokenizer.vae import VAEConfig, build_vae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--per-category", type=int, default=10)
    parser.add_argument("--categories", default=None, help="comma-separated (default: every category with enough rows)")
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--yamnet", action="store_true", help="also YAMNet top-1 agreement (eval extra)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    cats = args.categories.split(",") if args.categories else sorted(c for c, n in counts.items() if n >= args.per_category)
    items = read_manifest(args.manifest, args.root, categories=cats, per_category=args.per_category, min_duration_s=args.min_seconds)
    frontend = build_vae(VAEConfig(architecture="mel-hifigan"))
    judge = None
    if args.yamnet:
        from eval.judges import YamNet

        judge = YamNet.load(threads=args.threads)
    gen = torch.Generator().manual_seed(0)
    per_cat: dict[str, dict[str, list[float]]] = {}
    enc_s = dec_s = audio_s = 0.0
    for it in items:
        wav, sr = load_audio(it.path, frontend.sample_rate, 1, duration_s=args.max_seconds)
        if wav.shape[-1] < frontend.downsampling_ratio:
            continue
        t0 = time.perf_counter()
        z = frontend.encode(wav[None], sr)
        t1 = time.perf_counter()
        out = frontend.decode(z)[0]
        t2 = time.perf_counter()
        enc_s, dec_s, audio_s = enc_s + t1 - t0, dec_s + t2 - t1, audio_s + out.shape[-1] / frontend.sample_rate
        original = frontend.mel(wav[None])
        resynth = frontend.mel(out[None])
        rebuilt = frontend.latents_to_mel(z)
        shuffled = original[..., torch.randperm(original.shape[-1], generator=gen)]
        stats = per_cat.setdefault(it.category, {"resynthesis": [], "shuffled": [], "projection": [], "yamnet_agree": []})
        stats["resynthesis"].append(float((resynth - original).abs().mean()))
        stats["shuffled"].append(float((shuffled - original).abs().mean()))
        stats["projection"].append(float((rebuilt - original).abs().mean()))
        if judge is not None:
            stats["yamnet_agree"].append(float(judge.top1(out, frontend.sample_rate)[0] == judge.top1(wav, frontend.sample_rate)[0]))
    table = {}
    print(f"{'category':18s} {'clips':>5s} {'resynth':>8s} {'shuffled':>8s} {'ratio':>6s} {'proj':>6s} {'yamnet':>6s}")
    for cat, s in per_cat.items():
        row = {k: float(np.mean(v)) if v else None for k, v in s.items()}
        row["ratio"] = row["resynthesis"] / row["shuffled"]
        row["clips"] = len(s["resynthesis"])
        table[cat] = row
        agree = f"{row['yamnet_agree']:.2f}" if row["yamnet_agree"] is not None else "-"
        print(f"{cat:18s} {row['clips']:5d} {row['resynthesis']:8.3f} {row['shuffled']:8.3f} {row['ratio']:6.3f} {row['projection']:6.3f} {agree:>6s}")
    mean_ratio = float(np.mean([r["ratio"] for r in table.values()]))
    print(f"mean ratio {mean_ratio:.3f}; categories at <= 0.3x: {sum(r['ratio'] <= 0.3 for r in table.values())} of {len(table)}; "
          f"encode {enc_s / audio_s * 1000:.1f} ms and decode {dec_s / audio_s:.2f} s per audio second ({args.threads} thread(s))")
    if args.json:
        Path(args.json).write_text(json.dumps({"categories": table, "mean_ratio": mean_ratio,
                                               "encode_s_per_audio_s": enc_s / audio_s, "decode_s_per_audio_s": dec_s / audio_s,
                                               "settings": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
