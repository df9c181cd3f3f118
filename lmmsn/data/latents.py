"""Batches of VAE latents for tokenizer training: crop / pad to a fixed length with a mask.

Reads shards in the `lmmsn.data.format` layout through `lmmsn.data.loader`
(DDP- and worker-aware), crops each clip to `max_frames` (a random window in
training, the start in validation), zero-pads shorter clips and marks the
valid frames in a mask. Training streams are endless (epoch after epoch,
reshuffled), so the step budget, not the data size, ends a run and DDP ranks
never run out at different times; validation streams are one balanced epoch.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    "Data order seed (mixed with the epoch and, after a resume, the step)."

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.batch_size < 1 or self.min_frames < 1:
            raise ValueError("data.max_frames, data.batch_size and data.min_frames must be >= 1")
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


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """[(latent [T, L], mask [T])] -> {"latents": [B, T, L], "mask": [B, T]}."""
    return {"latents": torch.stack([x for x, _ in items]), "mask": torch.stack([m for _, m in items])}


class LatentClips(IterableDataset):
    """Fixed-length latent clips + masks from shards.

    Args:
        urls: shard URLs (`list_shards` output).
        config: crop length, shuffling, seed.
        latent_dim: expected L (a mismatch names the sample and shard).
        train: endless, shuffled, random crops; else one epoch, file order, crops at 0.
        start: mixed into the epoch seeds (the global step after a resume), so a
            resumed run reads a fresh order instead of replaying the first batches.
    """

    def __init__(self, urls: list[str], config: LatentDataConfig, latent_dim: int, train: bool, start: int = 0) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = latent_dim
        self.train = train
        self.start = start
        self.samples = shard_samples(
            urls, shuffle_buffer=config.shuffle_buffer if train else 0, seed=config.seed, even="pad"
        )

    def _clip(self, sample: Sample, rng: random.Random | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        if sample.latent is None:
            raise ValueError(f"sample {sample.key}: no latent.npy (tokenizer training needs latents)")
        if sample.latent.shape[1] != self.latent_dim:
            raise ValueError(
                f"sample {sample.key}: latent dim {sample.latent.shape[1]} != model latent dim {self.latent_dim}"
            )
        latent = sample.latent[: sample.num_frames]
        if latent.shape[0] < self.config.min_frames:
            return None
        return crop_or_pad(latent, self.config.max_frames, rng)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        rng = random.Random(f"{self.config.seed}-{self.start}-{self.samples.rank}-{worker}") if self.train else None
        epochs = itertools.count(self.start) if self.train else [0]
        for epoch in epochs:
            self.samples.set_epoch(epoch)
            yielded = 0
            for sample in self.samples:
                clip = self._clip(sample, rng)
                if clip is not None:
                    yielded += 1
                    yield clip
            if yielded == 0:
                raise RuntimeError(f"no usable latent clip in {self.samples.urls[:3]}... (all shorter than min_frames?)")


def latent_loader(
    spec: str, config: LatentDataConfig, latent_dim: int, train: bool, start: int = 0
) -> DataLoader:
    """A DataLoader of {"latents", "mask"} batches over the shards of `spec`."""
    dataset = LatentClips(list_shards(spec), config, latent_dim, train, start)
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
    for sample in shard_samples(shards, even="none"):
        if sample.latent is None:
            continue
        z = sample.latent[: sample.num_frames].double()  # [T, L]
        total = z.sum(0) if total is None else total + z.sum(0)
        total_sq = z.pow(2).sum(0) if total_sq is None else total_sq + z.pow(2).sum(0)
        frames += z.shape[0]
        samples += 1
        if max_samples is not None and samples >= max_samples:
            break
    if not frames:
        raise ValueError(f"shards {shards!r}: no latent frames")
    mean = total / frames
    var = (total_sq / frames - mean.pow(2)).clamp_min(0)  # [L]
    centred_std = float(var.mean().sqrt())
    return {"samples": samples, "frames": frames, "mean": [round(float(m), 6) for m in mean],
            "std": [round(float(v), 6) for v in var.sqrt()], "centred_std": centred_std,
            "raw_std": float((total_sq.sum() / (frames * mean.numel()) - mean.mean().pow(2)).clamp_min(0).sqrt()),
            "latent_mean": [round(float(m), 6) for m in mean], "latent_scale": round(1.0 / max(centred_std, 1e-12), 6)}


def main(argv: list[str] | None = None) -> dict:
    """`python -m lmmsn.data.latents SHARDS`: print latent statistics and the tokenizer overrides they suggest."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m lmmsn.data.latents", description=main.__doc__)
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
