"""Tokenizer reconstruction error on VAE latents (paper Table I).

For each clip, the frozen VAE latent z [T, D] is tokenized and decoded back:
ẑ = decode_latents(encode_latents(z)). The error of a clip is

    MSE(z, ẑ) = mean over the clip's T x D entries of (ẑ - z)^2      (primary, --error mse)
    L1(z, ẑ)  = mean over the clip's T x D entries of |ẑ - z|        (also reported)

A data set's error is the mean over its clips (each clip weighs the same);
"average" is the mean of the data sets' errors, like the paper's Average
column. A zero-bit baseline row, `mean latent`, predicts every frame of a data
set by that data set's mean latent vector (an oracle constant, computed from
the evaluated clips): a tokenizer that does not beat it conveys nothing about
the clips beyond their average (VAE latents can have large constant offsets,
so `energy` alone flatters every tokenizer). The paper (VQ+FM 0.636 vs VQ+MSE 0.700 on ESC-50 / VCTK / FMA) does
not say whether its error is MSE or L1; we make MSE primary because VQ+MSE is
trained on that loss, and report L1 beside it. `energy` = mean z^2 is
reported per data set so an error can be read against predicting zeros
(`relative_mse = mse / energy`).

Flow-matching decoders sample: clip i is decoded with generator seed
`seed + i`, so numbers do not depend on clip order or on other tokenizers.

    python -m eval.reconstruction --tokenizer vqfm=checkpoints/tok_fm --tokenizer vqmse=checkpoints/tok_mse \\
        --manifest manifest.jsonl --audio-root /data --categories speech,music,environment --per-category 100 --out reports/recon
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from eval.common import (
    cli_logging,
    environment,
    environment_md,
    markdown_table,
    named_value,
    new_figure,
    read_manifest,
    save_figure,
    write_result,
)

log = logging.getLogger(__name__)


class LatentTokenizer(Protocol):
    """What this tool needs from a tokenizer (lmmsn.tokenizer.model.AudioTokenizer has it)."""

    def encode_latents(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor: ...

    def decode_latents(self, codes: torch.Tensor, steps: int | None = None, temperature: float | None = None, generator: torch.Generator | None = None, mask: torch.Tensor | None = None) -> torch.Tensor: ...


def clip_errors(z: torch.Tensor, z_hat: torch.Tensor) -> dict[str, float]:
    """MSE, L1 and energy of one clip; z, z_hat: [T, D]."""
    if z.shape != z_hat.shape:
        raise ValueError(f"reconstruction shape {tuple(z_hat.shape)} != latent shape {tuple(z.shape)}")
    diff = z_hat.double() - z.double()
    return {"mse": float(diff.pow(2).mean()), "l1": float(diff.abs().mean()), "energy": float(z.double().pow(2).mean()), "frames": int(z.shape[0])}


def load_tokenizers(paths: dict[str, str], device: str | None = None) -> dict[str, Any]:
    """Exported tokenizers by name, all sharing the first one's VAE (they must reference the same one).

    Raises:
        ValueError: two tokenizers reference different VAEs (architecture, checkpoint or seed), so
            their latents would not be comparable.
    """
    from lmmsn.tokenizer.model import AudioTokenizer, read_tokenizer_config

    first_name, first_vae = None, None
    for name, path in paths.items():
        vae_config = read_tokenizer_config(path).vae
        if first_vae is None:
            first_name, first_vae = name, vae_config
        elif vae_config != first_vae:
            raise ValueError(f"tokenizer {name!r} ({path}) references VAE {vae_config}, but {first_name!r} references {first_vae}: "
                             "a reconstruction table compares tokenizers on the same latents")
    out: dict[str, Any] = {}
    vae = None
    for name, path in paths.items():
        out[name] = AudioTokenizer.from_pretrained(path, device=device, vae=vae).eval()
        vae = out[name].vae
    return out


@torch.no_grad()
def reconstruct(tokenizer: LatentTokenizer, latents: Sequence[torch.Tensor], *, steps: int | None = None, temperature: float | None = None, seed: int = 0) -> list[dict[str, float]]:
    """Per-clip errors of `tokenizer` on `latents` (each [T, D]); batch size 1."""
    from tqdm import tqdm

    from lmmsn.seeding import generator

    out = []
    for i, z in enumerate(tqdm(latents, desc="reconstructing", leave=False)):
        z = z.float()
        codes = tokenizer.encode_latents(z[None])  # [1, T]
        z_hat = tokenizer.decode_latents(codes, steps=steps, temperature=temperature, generator=generator(seed + i))  # [1, T, D]
        out.append(clip_errors(z, z_hat[0].to(z.dtype)))
    return out


def _average(row: dict[str, Any]) -> dict[str, float]:
    """A table row's errors averaged over its data sets (the paper's Average column)."""
    return {k: float(np.mean([d[k] for d in row["datasets"].values()])) for k in ("mse", "l1", "relative_mse")}


def aggregate(per_clip: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean over clips of each error (each clip weighs the same)."""
    agg = {k: float(np.mean([c[k] for c in per_clip])) for k in ("mse", "l1", "energy")}
    agg["relative_mse"] = agg["mse"] / agg["energy"] if agg["energy"] > 0 else float("nan")
    agg["clips"] = len(per_clip)
    agg["frames"] = int(sum(c["frames"] for c in per_clip))
    return agg


BASELINE = "mean latent (0 bit/s baseline)"


def mean_latent_baseline(datasets: dict[str, Sequence[torch.Tensor]]) -> dict[str, Any]:
    """Errors of predicting every frame by its data set's mean latent vector (same shape as a tokenizer row)."""
    row: dict[str, Any] = {"datasets": {}, "baseline": True}
    for dname, lat in datasets.items():
        mean = torch.cat([z.double() for z in lat]).mean(0)  # [D]
        per_clip = [clip_errors(z.double(), mean.expand_as(z)) for z in lat]
        row["datasets"][dname] = {**aggregate(per_clip), "per_clip": per_clip}
    row["average"] = _average(row)
    return row


def evaluate_reconstruction(tokenizers: dict[str, LatentTokenizer], datasets: dict[str, Sequence[torch.Tensor]], *, steps: int | None = None, temperature: float | None = None, seed: int = 0, error: str = "mse") -> dict[str, Any]:
    """Table I: errors of every tokenizer on every data set, plus the average over data sets."""
    if error not in ("mse", "l1"):
        raise ValueError(f"error must be 'mse' or 'l1', got {error!r}")
    table: dict[str, dict] = {}
    for tname, tok in tokenizers.items():
        row: dict[str, Any] = {"datasets": {}}
        for dname, lat in datasets.items():
            per_clip = reconstruct(tok, lat, steps=steps, temperature=temperature, seed=seed)
            row["datasets"][dname] = {**aggregate(per_clip), "per_clip": per_clip}
        row["average"] = _average(row)
        table[tname] = row
    table[BASELINE] = mean_latent_baseline(datasets)
    return {
        "error": error,
        "error_definition": "per clip: mean over T x D latent entries of (z_hat - z)^2 (mse) or |z_hat - z| (l1); data set: mean over clips; average: mean over data sets",
        "steps": steps,
        "temperature": temperature,
        "seed": seed,
        "tokenizers": table,
        "paper_reference": {"VQ+FM": 0.636, "VQ+MSE": 0.700, "note": "paper Table I averages over ESC-50/VCTK/FMA; metric (MSE or L1) not stated"},
    }


def summary_md(result: dict, title: str = "Reconstruction error (Table I)") -> str:
    err = result["error"]
    names = list(next(iter(result["tokenizers"].values()))["datasets"])
    rows = [[t, *(row["datasets"][d][err] for d in names), row["average"][err]] for t, row in result["tokenizers"].items()]
    rows_other = [[t, *(row["datasets"][d]["l1" if err == "mse" else "mse"] for d in names), row["average"]["l1" if err == "mse" else "mse"]] for t, row in result["tokenizers"].items()]
    first = next(iter(result["tokenizers"].values()))["datasets"]
    counts = ", ".join(f"{d}: {first[d]['clips']} clips / {first[d]['frames']} frames, energy {first[d]['energy']:.4g}" for d in names)
    return "\n\n".join(
        [
            f"# {title}",
            f"Error **{err.upper()}** between VAE latents and tokenizer reconstructions ({result['error_definition']}). "
            f"Decoder steps {result['steps']}, temperature {result['temperature']}, seed {result['seed']} (clip i uses seed+i).",
            markdown_table(["tokenizer", *names, "average"], rows),
            f"Other error ({'L1' if err == 'mse' else 'MSE'}):",
            markdown_table(["tokenizer", *names, "average"], rows_other),
            f"Data: {counts}. `{BASELINE}` predicts every frame by the data set's mean latent: a tokenizer must beat it to carry information. "
            "Paper (different data, full-size models): VQ+FM 0.636, VQ+MSE 0.700 average.",
            environment_md(result["environment"]),
        ]
    )


def plot(result: dict, path) -> None:
    """Grouped bars: one group per data set (+ average), one bar per tokenizer."""
    err = result["error"]
    fig, ax = new_figure()
    toks = list(result["tokenizers"])
    names = [*next(iter(result["tokenizers"].values()))["datasets"], "average"]
    width = 0.8 / max(len(toks), 1)
    for i, t in enumerate(toks):
        row = result["tokenizers"][t]
        vals = [row["datasets"][d][err] for d in names[:-1]] + [row["average"][err]]
        style = {"color": "lightgray", "hatch": "//"} if row.get("baseline") else {}
        ax.bar(np.arange(len(names)) + i * width, vals, width, label=t, **style)
    ax.set_xticks(np.arange(len(names)) + width * (len(toks) - 1) / 2, names)
    ax.set_ylabel(f"latent {err.upper()}")
    ax.set_title("Tokenizer reconstruction error")
    ax.legend()
    save_figure(fig, path)


@torch.no_grad()
def latents_from_audio(vae, files: Sequence[Path], max_seconds: float | None) -> list[torch.Tensor]:
    """VAE latents [T, D] of audio files (posterior mean; resampled to the VAE's rate and channels)."""
    from tqdm import tqdm

    from lmmsn.audio import load_audio

    out = []
    for f in tqdm(files, desc="VAE encoding", leave=False):
        wav, sr = load_audio(f, vae.sample_rate, vae.channels, duration_s=max_seconds)  # [C, N]
        out.append(vae.encode(wav[None], sr)[0].T.contiguous())  # [T, D]
    return out


def latents_from_shards(spec: str, limit: int | None) -> list[torch.Tensor]:
    """Latents [T, D] (true length) from webdataset shards (lmmsn.data.loader)."""
    from lmmsn.data.loader import list_shards, shard_samples

    out = []
    for sample in shard_samples(list_shards(spec)):
        out.append(sample.latent[: sample.num_frames].float())
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise ValueError(f"shards {spec!r}: no samples")
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.reconstruction", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", action="append", type=named_value, required=True, help="NAME=DIR of an exported tokenizer (AudioTokenizer.from_pretrained); repeat to compare (VQ+FM vs VQ+MSE)")
    parser.add_argument("--shards", action="append", type=named_value, default=[], help="NAME=SPEC: a data set of precomputed latents in webdataset shards; repeat per data set")
    parser.add_argument("--manifest", default=None, help="JSON-lines manifest (path, category, label, caption): data sets = categories, latents from the first tokenizer's VAE")
    parser.add_argument("--audio-root", default=None, help="folder the manifest paths are relative to")
    parser.add_argument("--categories", default=None, help="comma-separated manifest categories (the data sets)")
    parser.add_argument("--per-category", type=int, default=100, help="clips per data set (paper: 100); seeded draw from the manifest, first N from shards")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="cut audio to this length before VAE encoding (paper: 10 s)")
    parser.add_argument("--steps", type=int, default=None, help="ODE steps of the flow-matching decoder (default: the tokenizer's config)")
    parser.add_argument("--temperature", type=float, default=None, help="CFM sampling temperature (default: the tokenizer's config)")
    parser.add_argument("--error", choices=("mse", "l1"), default="mse", help="primary error of the table (both are always computed)")
    parser.add_argument("--min-seconds", type=float, default=None, help="skip manifest rows shorter than this (by duration_s)")
    parser.add_argument("--skip-missing", action="store_true", help="leave out manifest rows whose audio file is absent (logged with a count)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip draw and of the decoder noise (clip i: seed+i)")
    parser.add_argument("--out", required=True, help="output folder for reconstruction.json/.md/.png")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    tokenizers = load_tokenizers(dict(args.tokenizer))
    vae = next(iter(tokenizers.values())).vae
    datasets: dict[str, list[torch.Tensor]] = {n: latents_from_shards(s, args.per_category) for n, s in args.shards}
    if args.manifest:
        if not (args.audio_root and args.categories):
            parser.error("--manifest needs --audio-root and --categories")
        cats = args.categories.split(",")
        items = read_manifest(args.manifest, args.audio_root, categories=cats, per_category=args.per_category, seed=args.seed, min_duration_s=args.min_seconds, skip_missing=args.skip_missing)
        for c in cats:
            datasets[c] = latents_from_audio(vae, [it.path for it in items if it.category == c], args.max_seconds)
    if not datasets:
        parser.error("give --shards and/or --manifest")
    result = evaluate_reconstruction(tokenizers, datasets, steps=args.steps, temperature=args.temperature, seed=args.seed, error=args.error)
    result.update(settings=vars(args) | {"tokenizer": dict(args.tokenizer), "shards": dict(args.shards)}, environment=environment(seed=args.seed, device="cpu", dtype="float32", batch_size=1))
    write_result(args.out, "reconstruction", result, summary_md(result))
    plot(result, Path(args.out) / "reconstruction.png")
    return result


if __name__ == "__main__":
    main()
