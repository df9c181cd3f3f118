"""What `eval.reconstruction` measures on latents: the reference systems and the latent errors.

- The tokenizer protocol the tool needs (`LatentTokenizer`: `encode_latents` / `decode_latents`).
- Reference systems: `KMeansCodebook` (a per-frame k-means codebook of the tokenizer's size,
  `fit_kmeans` on `training_frames`, cached by `cached_kmeans`), `Resynthesis` (ẑ = z) and
  `mean_latent_baseline` (every frame is its data set's mean latent); their row names
  `BASELINE` and `RESYNTHESIS`.
- Per-clip errors: `reconstruct` (a tokenizer's round trip of each clip), `clip_errors` (MSE,
  L1, energy of one clip), `aggregate` (mean over clips), `_average` (mean over data sets).
- `codebook_usage`: entries used and perplexity of the code histogram.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)

BASELINE = "mean latent (0 bit/s baseline)"
RESYNTHESIS = "resynthesis (frontend ceiling)"
MEAN_DECODE = "conditional mean (1 Euler step, T=0)"
"Row suffix of a flow-matching tokenizer decoded by `ConditionalMean`."


class LatentTokenizer(Protocol):
    """What this tool needs from a tokenizer (lmmsn.tokenizer.model.AudioTokenizer has it)."""

    def encode_latents(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor: ...

    def decode_latents(self, codes: torch.Tensor, steps: int | None = None, temperature: float | None = None, generator: torch.Generator | None = None, mask: torch.Tensor | None = None) -> torch.Tensor: ...


# --------------------------------------------------------------------------- reference systems


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """[N, D], [K, D] -> [N, K] squared Euclidean distances (float32)."""
    return x.pow(2).sum(1, keepdim=True) - 2 * x @ c.T + c.pow(2).sum(1)[None]


def fit_kmeans(frames: torch.Tensor, k: int, iters: int = 20, seed: int = 0, chunk: int = 32768) -> torch.Tensor:
    """Lloyd's k-means on frames [N, D] with k-means++ seeding; returns centroids [K, D].

    Written here (not scikit-learn) because torch does the N x K distance
    chunks fast enough for 200k x 1024 on a CPU and scikit-learn is not a
    dependency. Empty clusters are re-seeded with the frames farthest from
    their centroid.
    """
    x = frames.float()
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means: {n} frames cannot seed {k} centroids")
    gen = torch.Generator().manual_seed(seed)
    centroids = torch.empty(k, x.shape[1])
    centroids[0] = x[torch.randint(n, (1,), generator=gen)]
    nearest = (x - centroids[0]).pow(2).sum(1)  # [N]
    for i in range(1, k):  # k-means++: next centroid drawn with probability ~ squared distance
        centroids[i] = x[torch.multinomial(nearest.clamp_min(0) + 1e-12, 1, generator=gen)]
        nearest = torch.minimum(nearest, (x - centroids[i]).pow(2).sum(1))
    for _ in range(iters):
        sums = torch.zeros_like(centroids)
        counts = torch.zeros(k)
        best = torch.empty(n)
        for start in range(0, n, chunk):
            part = x[start : start + chunk]
            d = _sq_dist(part, centroids)
            value, index = d.min(1)
            best[start : start + chunk] = value
            sums.index_add_(0, index, part)
            counts.index_add_(0, index, torch.ones_like(value))
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            far = best.argsort(descending=True)[: int(empty.sum())]
            centroids[empty] = x[far]
    return centroids


class KMeansCodebook:
    """A per-frame k-means codebook behind the tokenizer protocol (no encoder, no context)."""

    def __init__(self, centroids: torch.Tensor) -> None:
        self.centroids = centroids.float()  # [K, D]

    @property
    def codebook_size(self) -> int:
        return int(self.centroids.shape[0])

    def encode_latents(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        flat = latents.float().reshape(-1, latents.shape[-1])
        return _sq_dist(flat, self.centroids).argmin(1).view(latents.shape[:-1])

    def decode_latents(self, codes: torch.Tensor, steps=None, temperature=None, generator=None, mask=None) -> torch.Tensor:
        return self.centroids[codes]


class ConditionalMean:
    """A flow-matching tokenizer decoded to its estimate of E[z | codes] (`lmmsn.tokenizer.flow.CONDITIONAL_MEAN`).

    The fair point estimate when the yardstick is a mean squared error: a sample's latent MSE is
    about twice the decoder's conditional variance, its mean's is that variance once.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @property
    def codebook_size(self) -> int:
        return int(self.tokenizer.codebook_size)

    def encode_latents(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.tokenizer.encode_latents(latents, mask)

    def decode_latents(self, codes: torch.Tensor, steps=None, temperature=None, generator=None, mask=None) -> torch.Tensor:
        from lmmsn.tokenizer.flow import CONDITIONAL_MEAN

        return self.tokenizer.decode_latents(codes, mask=mask, **CONDITIONAL_MEAN)


class Resynthesis:
    """ẑ = z: the frontend's own round trip, the ceiling of any tokenizer on this frontend."""

    def encode_latents(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return latents

    def decode_latents(self, codes: torch.Tensor, steps=None, temperature=None, generator=None, mask=None) -> torch.Tensor:
        return codes


def training_frames(spec: str, max_frames: int = 200_000, seed: int = 0) -> torch.Tensor:
    """Valid latent frames [N, D] of training shards (a seeded draw of at most `max_frames`)."""
    from lmmsn.data.loader import list_shards, shard_samples

    frames = [s.latent[: s.num_frames].float() for s in shard_samples(list_shards(spec), even="none") if s.latent is not None]
    if not frames:
        raise ValueError(f"shards {spec!r}: no latent frames to fit k-means on")
    x = torch.cat(frames)
    if x.shape[0] > max_frames:
        x = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:max_frames]]
    return x


def cached_kmeans(spec: str, k: int, *, seed: int = 0, max_frames: int = 100_000, iters: int = 20) -> torch.Tensor:
    """`fit_kmeans` on `training_frames(spec)`, cached as `kmeans-K<k>-seed<seed>.safetensors` beside the
    shards when they are a folder (fitting 1024 codes costs minutes on a CPU; two tokenizers of
    one data set share it). The cache records the shard index it was fitted on and is refitted
    when that changes."""
    import hashlib

    from safetensors.torch import load_file, save_file

    folder = Path(spec)
    index = folder / "index.json"
    stamp = hashlib.sha1(index.read_bytes()).hexdigest() if index.is_file() else None
    path = folder / f"kmeans-K{k}-seed{seed}-n{max_frames}.safetensors" if folder.is_dir() else None
    if path is not None and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("index_sha1") == str(stamp):
                return load_file(str(path))["centroids"]
    log.info("fitting k-means with %d codes on training latents of %s", k, spec)
    centroids = fit_kmeans(training_frames(spec, max_frames=max_frames, seed=seed), k, iters=iters, seed=seed)
    if path is not None:
        save_file({"centroids": centroids.contiguous()}, str(path), metadata={"index_sha1": str(stamp), "iters": str(iters)})
    return centroids


# --------------------------------------------------------------------------- latent errors


def clip_errors(z: torch.Tensor, z_hat: torch.Tensor) -> dict[str, float]:
    """MSE, L1 and energy of one clip; z, z_hat: [T, D]."""
    if z.shape != z_hat.shape:
        raise ValueError(f"reconstruction shape {tuple(z_hat.shape)} != latent shape {tuple(z.shape)}")
    diff = z_hat.double() - z.double()
    return {"mse": float(diff.pow(2).mean()), "l1": float(diff.abs().mean()), "energy": float(z.double().pow(2).mean()), "frames": int(z.shape[0])}


@torch.no_grad()
def reconstruct(tokenizer: LatentTokenizer, latents: Sequence[torch.Tensor], *, steps: int | None = None, temperature: float | None = None, seed: int = 0, keep: bool = False) -> list[dict[str, Any]]:
    """Per-clip errors of `tokenizer` on `latents` (each [T, D]); batch size 1.

    With `keep`, each entry also holds the reconstruction (`z_hat` [T, D]) and the codes.
    """
    from tqdm import tqdm

    from lmmsn.seeding import generator

    out = []
    for i, z in enumerate(tqdm(latents, desc="reconstructing", leave=False)):
        z = z.float()
        codes = tokenizer.encode_latents(z[None])  # [1, T]
        z_hat = tokenizer.decode_latents(codes, steps=steps, temperature=temperature, generator=generator(seed + i))  # [1, T, D]
        entry: dict[str, Any] = clip_errors(z, z_hat[0].to(z.dtype))
        if keep:
            entry["z_hat"] = z_hat[0].float().cpu()
            entry["codes"] = codes[0].cpu() if codes.dtype in (torch.int64, torch.int32) else None
        out.append(entry)
    return out


def _average(row: dict[str, Any], keys: Sequence[str] = ("mse", "l1", "relative_mse")) -> dict[str, float]:
    """A table row's numbers averaged over its data sets (the paper's Average column)."""
    out = {}
    for k in keys:
        values = [d[k] for d in row["datasets"].values() if d.get(k) is not None]
        if values:
            out[k] = float(np.mean(values))
    return out


def aggregate(per_clip: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean over clips of each error (each clip weighs the same)."""
    agg: dict[str, Any] = {k: float(np.mean([c[k] for c in per_clip])) for k in ("mse", "l1", "energy")}
    agg["relative_mse"] = agg["mse"] / agg["energy"] if agg["energy"] > 0 else float("nan")
    agg["clips"] = len(per_clip)
    agg["frames"] = int(sum(c["frames"] for c in per_clip))
    return agg


def mean_latent_baseline(datasets: dict[str, Sequence[torch.Tensor]], keep: bool = False) -> dict[str, Any]:
    """Errors of predicting every frame by its data set's mean latent vector (same shape as a tokenizer row)."""
    row: dict[str, Any] = {"datasets": {}, "baseline": True, "bits_per_frame": 0.0}
    for dname, lat in datasets.items():
        mean = torch.cat([z.double() for z in lat]).mean(0)  # [D]
        per_clip = []
        for z in lat:
            entry: dict[str, Any] = clip_errors(z.double(), mean.expand_as(z))
            if keep:
                entry["z_hat"] = mean.float().expand_as(z).clone()
            per_clip.append(entry)
        row["datasets"][dname] = {**aggregate(per_clip), "per_clip": per_clip}
    row["average"] = _average(row)
    return row


# --------------------------------------------------------------------------- codebook usage


def codebook_usage(codes: Sequence[torch.Tensor], codebook_size: int) -> dict[str, Any]:
    """Entries used, their fraction, the perplexity of the code histogram and the sorted counts."""
    counts = torch.bincount(torch.cat([c.reshape(-1) for c in codes]).long(), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    perplexity = float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))
    used = int((counts > 0).sum())
    return {"codebook_size": codebook_size, "used": used, "used_fraction": used / codebook_size,
            "perplexity": perplexity, "frames": int(counts.sum()),
            "sorted_counts": [int(c) for c in counts.sort(descending=True).values.tolist()]}
