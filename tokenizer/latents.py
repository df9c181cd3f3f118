"""Batches of VAE latents for tokenizer training: crop / pad to a fixed length with a mask.

Reads shards in the `lmmsn.data.format` layout through `lmmsn.data.loader`
(DDP- and worker-aware), crops each clip to `max_frames` (a random window in
training, the start in validation), zero-pads shorter clips and marks the
valid frames in a mask. With `pack` (training only), clips shorter than a
window are concatenated end to end instead of padded, so a batch of short
clips (most of a sound-effect corpus lasts 1-3 s) holds no padding at all;
the tokenizer then also sees transitions between sounds, as in a longer
recording. Validation never packs: it measures clips alone. Training streams are endless (epoch after epoch,
reshuffled), so the step budget, not the data size, ends a run and DDP ranks
never run out at different times; validation streams are one balanced epoch.

Exact resume. A training epoch is a function of (data.seed, epoch, rank,
worker) alone (the crops' random stream restarts every epoch; packing does not
carry a remainder across epochs), and every training batch carries the data
position of its stream, `position` = (worker, epoch, windows done in that
epoch). A resumed run hands the positions back (`resume=`) and each stream
regenerates its epoch and drops the windows already trained on, so N steps +
resume + N steps read what 2N steps straight read (with DataLoader workers,
the workers' batches may interleave in another order). The cost is at most one
epoch of reading per stream.

`write_fixture_shards` writes a small synthetic set (smooth random latents)
so the tiny recipe runs on a fresh clone with no data.

Dimensions: B batch, T frames (= max_frames), L latent dim.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lmmsn.data.format import Sample, encode_sample
from lmmsn.data.loader import list_shards, shard_samples

logger = logging.getLogger(__name__)

FIXTURE_TRAIN = "fixture-train-000000.tar"
FIXTURE_VAL = "fixture-val-000000.tar"


@dataclass
class LatentDataConfig:
    """Where the latent shards are and how clips become batches."""

    train_shards: str | None = None
    "Training shards: directory, glob or brace pattern (None: use fixture_dir)."
    val_shards: str | None = None
    "Validation shards (None: no validation, unless the fixture provides them)."
    fixture_dir: str | None = None
    "If set and train_shards is None: write a small synthetic latent set here (once) and train on it."
    fixture_samples: int = 32
    "Synthetic training clips in the fixture (plus a quarter as many for validation)."
    fixture_frames: int = 48
    "Frames per synthetic clip."
    max_frames: int = 215
    "Clips are cropped / zero-padded to this many frames (paper: 10 s = 215)."
    min_frames: int = 1
    "Clips shorter than this are skipped."
    batch_size: int = 64
    "Clips per batch per device."
    num_workers: int = 2
    "DataLoader workers per device."
    shuffle_buffer: int = 1000
    "Sample shuffle buffer per worker (0: file order)."
    seed: int = 0
    "Data order seed (mixed with the epoch, rank and worker)."
    pack: bool = False
    "Training: fill each window by concatenating clips shorter than it instead of zero-padding them."
    normalize: Literal["none", "global", "per_dim"] = "none"
    "Before training, measure the training latents (up to normalize_samples clips) and set model.latent_mean (per dim) and model.latent_scale: one number (global: unit average variance, the dims keep their relative scale) or one per dim (per_dim: every dim unit variance). none: keep the config's values."
    normalize_samples: int = 2000
    "Clips read to measure the normalization."
    balance_by: str | None = None
    "In-memory training only: draw clips with probability proportional to (clips of their group)^-balance_power, the group read from this metadata key (e.g. category), so rare groups are seen as often as the evaluation weighs them (each category counts the same in a reconstruction table)."
    balance_power: float = 0.5
    "0: no balancing; 1: every group equally often; 0.5: between (temperature sampling of multilingual LMs)."
    in_memory: bool = False
    "Read this process's share of the training clips once and keep them in RAM (small data sets: a few hours of latents are tens of MB), instead of decoding the shards again every epoch."

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.batch_size < 1 or self.min_frames < 1:
            raise ValueError("data.max_frames, data.batch_size and data.min_frames must be >= 1")
        if self.balance_by is not None and not self.in_memory:
            raise ValueError("data.balance_by needs data.in_memory (it draws from the cached clips)")
        if not 0.0 <= self.balance_power <= 1.0:
            raise ValueError(f"data.balance_power must be in [0, 1], got {self.balance_power}")
        if self.num_workers < 0 or self.shuffle_buffer < 0:
            raise ValueError("data.num_workers and data.shuffle_buffer must be >= 0")
        if self.train_shards is None and self.fixture_dir is None:
            raise ValueError("data: set train_shards (latent shards) or fixture_dir (synthetic fixture)")


def crop_or_pad(
    latent: torch.Tensor, max_frames: int, rng: random.Random | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """latent [T, L] -> ([max_frames, L], mask [max_frames] bool).

    Args:
        latent: one clip.
        max_frames: output length.
        rng: random window start when the clip is longer (None: start at 0).
    """
    t = latent.shape[0]
    if t >= max_frames:
        start = rng.randint(0, t - max_frames) if rng is not None else 0
        return latent[start : start + max_frames], torch.ones(max_frames, dtype=torch.bool)
    out = latent.new_zeros(max_frames, latent.shape[1])
    out[:t] = latent
    mask = torch.zeros(max_frames, dtype=torch.bool)
    mask[:t] = True
    return out, mask


def collate(items: list[tuple]) -> dict[str, torch.Tensor]:
    """[(latent [T, L], mask [T][, position])] -> {"latents": [B, T, L], "mask": [B, T][, "position": [3]]}.

    A training batch's `position` is that of its last window (module docstring).
    """
    batch = {"latents": torch.stack([item[0] for item in items]), "mask": torch.stack([item[1] for item in items])}
    if len(items[-1]) == 3:
        batch["position"] = torch.tensor(items[-1][2], dtype=torch.long)
    return batch


class LatentClips(IterableDataset):
    """Fixed-length latent clips + masks from shards.

    Args:
        urls: shard URLs (`list_shards` output).
        config: crop length, shuffling, seed.
        latent_dim: expected L (a mismatch names the sample and shard).
        train: endless, shuffled, random crops, with positions; else one epoch, file order, crops at 0.
        resume: {worker: (epoch, windows done)} of this rank's streams when a run resumes
            (module docstring); a missing worker starts at epoch 0.
    """

    def __init__(self, urls: list[str], config: LatentDataConfig, latent_dim: int, train: bool,
                 resume: Mapping[int, tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = latent_dim
        self.train = train
        self.resume = dict(resume or {})
        self.samples = shard_samples(
            urls, shuffle_buffer=config.shuffle_buffer if train else 0, seed=config.seed, even="pad"
        )
        self._cache: list[torch.Tensor] | None = None
        self._weights: list[float] | None = None

    def _epoch(self, epoch: int, rng: random.Random | None) -> Iterator[torch.Tensor]:
        """Valid frames [T, L] of every usable clip of one epoch (training: in the epoch's order)."""
        if self.config.in_memory and self.train:
            if self._cache is None:
                self.samples.set_epoch(0)  # the cache's order is the same whatever epoch a run resumes in
                kept = [(c, s.meta.get(self.config.balance_by) if self.config.balance_by else None)
                        for s in self.samples for c in [self._clip(s)] if c is not None]
                self._cache = [c for c, _ in kept]
                if not self._cache:
                    raise RuntimeError(f"no usable latent clip in {self.samples.urls[:3]}... (all shorter than min_frames?)")
                if self.config.balance_by:
                    sizes = Counter(str(g) for _, g in kept)
                    self._weights = [sizes[str(g)] ** -self.config.balance_power for _, g in kept]
                    logger.info("balancing by %s over %d groups: %s", self.config.balance_by, len(sizes), dict(sizes))
                logger.info("holding %d latent clips (%d frames) in memory", len(self._cache),
                            sum(c.shape[0] for c in self._cache))
            if self._weights is not None:  # an epoch = as many draws as clips, with replacement
                order = rng.choices(range(len(self._cache)), weights=self._weights, k=len(self._cache))
            else:
                order = list(range(len(self._cache)))
                rng.shuffle(order)
            yield from (self._cache[i] for i in order)
            return
        self.samples.set_epoch(epoch)
        yielded = 0
        for sample in self.samples:
            clip = self._clip(sample)
            if clip is not None:
                yielded += 1
                yield clip
        if yielded == 0:
            raise RuntimeError(f"no usable latent clip in {self.samples.urls[:3]}... (all shorter than min_frames?)")

    def _clip(self, sample: Sample) -> torch.Tensor | None:
        if sample.latent is None:
            raise ValueError(f"sample {sample.key}: no latent.npy (tokenizer training needs latents)")
        if sample.latent.shape[1] != self.latent_dim:
            raise ValueError(
                f"sample {sample.key}: latent dim {sample.latent.shape[1]} != model latent dim {self.latent_dim}"
            )
        latent = sample.latent[: sample.num_frames]
        if latent.shape[0] < self.config.min_frames:
            return None
        return latent.float() if self.config.in_memory else latent

    def _windows(self, latents: Iterator[torch.Tensor], rng: random.Random | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Clips -> (window [max_frames, L], mask [max_frames]): cropped / padded, or packed (training with pack)."""
        window = self.config.max_frames
        if not (self.train and self.config.pack):
            for latent in latents:
                yield crop_or_pad(latent, window, rng)
            return
        pieces: list[torch.Tensor] = []
        have = 0
        for latent in latents:
            if latent.shape[0] >= window:  # a long clip fills a window on its own (random crop)
                yield crop_or_pad(latent, window, rng)
                continue
            pieces.append(latent)
            have += latent.shape[0]
            if have >= window:
                packed = torch.cat(pieces)  # [>= window, L]
                yield packed[:window], torch.ones(window, dtype=torch.bool)
                rest = packed[window:]
                pieces, have = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)

    def __iter__(self) -> Iterator[tuple]:
        if not self.train:
            yield from self._windows(self._epoch(0, None), None)
            return
        info = get_worker_info()
        worker = 0 if info is None else info.id
        first, skip = self.resume.get(worker, (0, 0))
        for epoch in itertools.count(first):
            rng = random.Random(f"{self.config.seed}-{epoch}-{self.samples.rank}-{worker}")
            for done, (latent, mask) in enumerate(self._windows(self._epoch(epoch, rng), rng), start=1):
                if done > skip:
                    yield latent, mask, (worker, epoch, done)
            skip = 0


def latent_loader(
    spec: str, config: LatentDataConfig, latent_dim: int, train: bool,
    resume: Mapping[int, tuple[int, int]] | None = None,
) -> DataLoader:
    """A DataLoader of {"latents", "mask"} batches (+ "position" in training) over the shards of `spec`."""
    dataset = LatentClips(list_shards(spec), config, latent_dim, train, resume)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        drop_last=train,
        persistent_workers=False,
    )


def synthetic_latents(num: int, frames: int, dim: int, seed: int) -> list[torch.Tensor]:
    """`num` smooth random clips [frames, dim]: sums of a few sinusoids per channel plus noise, ~unit variance."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[:, None]  # [T, 1]
    clips = []
    for _ in range(num):
        freq = 0.02 + 0.3 * torch.rand(3, dim, generator=gen)  # [3, L] cycles per frame
        phase = 2 * math.pi * torch.rand(3, dim, generator=gen)
        amp = torch.rand(3, dim, generator=gen)
        wave = (amp[None] * torch.sin(2 * math.pi * freq[None] * t[..., None] + phase[None])).sum(1)  # [T, L]
        clip = wave / wave.std().clamp_min(1e-3) + 0.1 * torch.randn(frames, dim, generator=gen)
        clips.append(clip)
    return clips


def _write_shard(path: Path, clips: list[torch.Tensor], prefix: str, frame_rate: float) -> None:
    import webdataset as wds

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with wds.TarWriter(str(tmp)) as sink:
        for i, clip in enumerate(clips):
            meta = {
                "captions": [f"synthetic clip {i}"],
                "dataset": "fixture",
                "source_path": f"synthetic/{prefix}/{i}",
                "offset_s": 0.0,
                "duration_s": clip.shape[0] / frame_rate,
                "sample_rate": 0,
                "num_frames": clip.shape[0],
            }
            sink.write(encode_sample(f"{prefix}{i:06d}", meta, latent=clip))
    os.replace(tmp, path)  # atomic: concurrent ranks writing the same bytes cannot tear the file


def write_fixture_shards(directory: str | Path, config: LatentDataConfig, latent_dim: int, frame_rate: float = 1.0) -> tuple[str, str]:
    """Write (once) a synthetic train shard and val shard; return their paths.

    The contents depend only on the config and latent_dim, so every rank (and
    every rerun) writes or finds the same files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train, val = directory / FIXTURE_TRAIN, directory / FIXTURE_VAL
    frames = config.fixture_frames
    if not train.is_file():
        _write_shard(train, synthetic_latents(config.fixture_samples, frames, latent_dim, seed=1), "train", frame_rate)
        logger.info("wrote synthetic latent fixture %s", train)
    if not val.is_file():
        num_val = max(1, config.fixture_samples // 4)
        _write_shard(val, synthetic_latents(num_val, frames, latent_dim, seed=2), "val", frame_rate)
    return str(train), str(val)


def latent_statistics(shards: str | Path, max_samples: int | None = None) -> dict:
    """Per-dimension mean and std of the valid frames of latent shards, and the tokenizer settings they suggest.

    Returns a dict with `frames`, `mean` [L], `std` [L] and `latent_mean` / `latent_scale` for
    `TokenizerConfig`: subtracting the mean and scaling by 1 / (std of the centred latents) gives
    the unit-variance inputs that suit the flow's N(0, I) source. Float64 sums, one pass.
    """
    total = total_sq = None
    frames = samples = 0
    urls = list_shards(shards)
    # Shards usually follow the manifest's order (one source after another): with a budget,
    # the same number of clips is read from the start of every shard, not all from the first.
    per_shard = None if max_samples is None else max(1, -(-max_samples // len(urls)))
    for url in urls:
        taken = 0
        for sample in shard_samples([url], even="none"):
            if sample.latent is None:
                continue
            z = sample.latent[: sample.num_frames].double()  # [T, L]
            total = z.sum(0) if total is None else total + z.sum(0)
            total_sq = z.pow(2).sum(0) if total_sq is None else total_sq + z.pow(2).sum(0)
            frames += z.shape[0]
            samples += 1
            taken += 1
            if per_shard is not None and taken >= per_shard:
                break
    if not frames:
        raise ValueError(f"shards {shards!r}: no latent frames")
    mean = total / frames
    var = (total_sq / frames - mean.pow(2)).clamp_min(0)  # [L]
    centred_std = float(var.mean().sqrt())
    std = var.sqrt()
    if not (torch.isfinite(mean).all() and torch.isfinite(var).all()):
        raise ValueError(f"shards {shards!r}: latents hold NaN or infinite values; rebuild them")
    return {"samples": samples, "frames": frames, "mean": [round(float(m), 6) for m in mean],
            "std": [round(float(v), 6) for v in std], "centred_std": centred_std,
            "raw_std": float((total_sq.sum() / (frames * mean.numel()) - mean.mean().pow(2)).clamp_min(0).sqrt()),
            "latent_mean": [round(float(m), 6) for m in mean], "latent_scale": round(1.0 / max(centred_std, 1e-12), 6),
            "latent_scale_per_dim": [round(1.0 / max(float(v), 1e-6 * max(centred_std, 1e-12)), 6) for v in std]}


def main(argv: list[str] | None = None) -> dict:
    """`python -m lmmsn.tokenizer.latents SHARDS`: print latent statistics and the tokenizer overrides they suggest."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m lmmsn.tokenizer.latents", description=main.__doc__)
    parser.add_argument("shards", help="latent shards: a make_shards folder, a glob or a brace pattern")
    parser.add_argument("--max-samples", type=int, default=None, help="read at most this many samples")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON only")
    args = parser.parse_args(argv)
    stats = latent_statistics(args.shards, args.max_samples)
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{stats['samples']} samples, {stats['frames']} frames; std around the per-dim mean {stats['centred_std']:.6g} "
              f"(raw std {stats['raw_std']:.6g})")
        print(f"model.latent_mean={json.dumps(stats['latent_mean'], separators=(',', ':'))} model.latent_scale={stats['latent_scale']}")
    return stats


__all__ = ["LatentClips", "LatentDataConfig", "collate", "crop_or_pad", "latent_loader", "latent_statistics", "synthetic_latents", "write_fixture_shards"]


if __name__ == "__main__":
    main()
