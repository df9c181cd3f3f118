"""Train the two tiny tokenizers (VQ+FM and VQ+MSE) used by the example report.

Not a recipe: a few minutes of CPU training so `eval.reconstruction` has
something real to compare. Both tokenizers use the same tiny, random-weight
VAE (16 kHz stereo, 8-dim latents; seeded with --vae-seed, the same seed the
report's `reconstruction.vae_seed` uses) and are trained on clips of the
report's categories that are NOT among the evaluated clips (drawn with
another seed, evaluated keys excluded). The loop calls
`AudioTokenizer.compute_loss` with AdamW directly; the Lightning recipe does
the same at scale, but needs shards this example does not write.

    PYTHONPATH=. .venv/bin/python docs/eval-example/train_tiny_tokenizers.py --out /tmp/eval-example --steps 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from eval.common import read_manifest
from lmmsn.audio import load_audio
from lmmsn.seeding import seed_everything
from lmmsn.tokenizer.flow import FlowConfig
from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config
from lmmsn.tokenizer.vae import VAEConfig, build_vae


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", default="/work/shared/corpus/manifest-dev.jsonl", help="corpus manifest")
    p.add_argument("--audio-root", default="/work/corpus", help="folder the manifest paths are relative to")
    p.add_argument("--categories", default="speech,music_instrument,environment", help="training categories")
    p.add_argument("--train-per-category", type=int, default=40, help="training clips per category")
    p.add_argument("--eval-per-category", type=int, default=20, help="the report's per_category (these clips are excluded)")
    p.add_argument("--eval-seed", type=int, default=0, help="the report's seed (its draw is excluded)")
    p.add_argument("--min-seconds", type=float, default=0.5, help="the report's min_seconds")
    p.add_argument("--max-seconds", type=float, default=5.0, help="cut training clips to this length")
    p.add_argument("--vae-seed", type=int, default=0, help="seed of the random-weight tiny VAE")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per tokenizer")
    p.add_argument("--crop", type=int, default=64, help="latent frames per training crop")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--out", required=True, help="folder for tok_fm/ and tok_mse/ (exported tokenizers)")
    args = p.parse_args()
    torch.set_num_threads(2)
    cats = args.categories.split(",")
    common = dict(categories=cats, min_duration_s=args.min_seconds, skip_missing=True)
    held_out = {it.key for it in read_manifest(args.manifest, args.audio_root, per_category=args.eval_per_category, seed=args.eval_seed, **common)}
    pool = [it for it in read_manifest(args.manifest, args.audio_root, per_category=args.train_per_category + args.eval_per_category, seed=args.eval_seed + 1, **common) if it.key not in held_out]
    train = [it for c in cats for it in [x for x in pool if x.category == c][: args.train_per_category]]
    seed_everything(args.vae_seed)
    vae = build_vae(VAEConfig(architecture="tiny"))
    lat = []
    with torch.no_grad():
        for it in train:
            wav, sr = load_audio(it.path, vae.sample_rate, vae.channels, duration_s=args.max_seconds)
            lat.append(vae.encode(wav[None], sr)[0].T)  # [T, D]
    flat = torch.cat(lat)
    scale = float(1.0 / flat.std())
    out = Path(args.out)
    log = {"train_clips": len(train), "train_frames": int(flat.shape[0]), "latent_std": float(flat.std()), "latent_scale": scale, "args": vars(args), "runs": {}}
    for name, objective in (("tok_fm", "cfm"), ("tok_mse", "mse")):
        seed_everything(1)
        cfg = tokenizer_config("tiny", flow=FlowConfig(objective=objective), latent_scale=scale)
        tok = build_tokenizer(cfg, vae=vae)
        opt = torch.optim.AdamW([p for n, p in tok.named_parameters() if not n.startswith("vae.")], lr=args.lr)
        g = torch.Generator().manual_seed(2)
        t0, losses = time.time(), []
        tok.train()
        for _ in range(args.steps):
            batch, mask = torch.zeros(args.batch_size, args.crop, vae.latent_dim), torch.zeros(args.batch_size, args.crop, dtype=torch.bool)
            for b in range(args.batch_size):
                z = lat[int(torch.randint(len(lat), (1,), generator=g))]
                start = int(torch.randint(max(1, z.shape[0] - args.crop + 1), (1,), generator=g))
                piece = z[start : start + args.crop]
                batch[b, : piece.shape[0]], mask[b, : piece.shape[0]] = piece, True
            loss = tok.compute_loss(batch, mask).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        tok.eval().save_pretrained(out / name)
        log["runs"][name] = {"objective": objective, "seconds": time.time() - t0, "first_loss": losses[0], "last_10_mean_loss": sum(losses[-10:]) / 10}
        print(name, log["runs"][name], flush=True)
    (out / "training.json").write_text(json.dumps(log, indent=2))


if __name__ == "__main__":
    main()
