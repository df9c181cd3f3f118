"""The webdataset shard format shared by data preparation, training and evaluation.

One sample = files with a common key inside a tar shard:

    <key>.latent.npy   float16 [T, D]   VAE latents (D = 64 for Stable Audio Open)
    <key>.codes.npy    int16   [T]      tokenizer codes (optional)
    <key>.json         metadata: captions (list[str]), dataset, source_path,
                       offset_s, duration_s, sample_rate, and optionally
                       num_frames (true, unpadded length), conversations, ...
    <key>.flac         the original audio segment (optional)

`encode_sample` builds the dict that `webdataset.ShardWriter.write` takes;
`decode_sample` turns what `webdataset.WebDataset` yields back into tensors.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

REQUIRED_META = ("captions", "dataset", "source_path", "offset_s", "duration_s", "sample_rate")
MAX_CODE = int(np.iinfo(np.int16).max)


class ShardFormatError(ValueError):
    """A shard sample does not follow the format."""


@dataclass
class Sample:
    """One decoded shard sample."""

    key: str
    meta: dict[str, Any]
    latent: torch.Tensor | None = None
    "[T, D] float32."
    codes: torch.Tensor | None = None
    "[T] int64."
    flac: bytes | None = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        """True (unpadded) number of frames."""
        if "num_frames" in self.meta:
            return int(self.meta["num_frames"])
        for value in (self.latent, self.codes):
            if value is not None:
                return value.shape[0]
        raise ShardFormatError(f"sample {self.key}: neither latents, codes nor num_frames")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npy_array(data: bytes, key: str, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # ValueError / OSError on truncated or pickled data
        raise ShardFormatError(f"sample {key}: '{name}' is not a valid .npy array: {exc}") from exc


def encode_sample(
    key: str,
    meta: dict[str, Any],
    latent: np.ndarray | torch.Tensor | None = None,
    codes: np.ndarray | torch.Tensor | None = None,
    flac: bytes | None = None,
) -> dict[str, Any]:
    """A sample in shard format, ready for `webdataset.ShardWriter.write`.

    Args:
        key: unique sample key (no dots: webdataset splits names at the first dot).
        meta: metadata; must hold REQUIRED_META.
        latent: [T, D] latents (stored as float16).
        codes: [T] codes (stored as int16).
        flac: encoded FLAC bytes of the original segment.
    """
    if "." in key:
        raise ShardFormatError(f"sample key {key!r} must not contain '.'")
    missing = [name for name in REQUIRED_META if name not in meta]
    if missing:
        raise ShardFormatError(f"sample {key}: metadata lacks {missing}")
    sample: dict[str, Any] = {"__key__": key, "json": json.dumps(meta, ensure_ascii=False).encode()}
    if latent is not None:
        latent = latent.detach().cpu().numpy() if isinstance(latent, torch.Tensor) else np.asarray(latent)
        if latent.ndim != 2:
            raise ShardFormatError(f"sample {key}: latent must be [T, D], got shape {latent.shape}")
        sample["latent.npy"] = _npy_bytes(latent.astype(np.float16))
    if codes is not None:
        sample["codes.npy"] = encode_codes(key, codes)
    if flac is not None:
        sample["flac"] = flac
    return sample


def encode_codes(key: str, codes: np.ndarray | torch.Tensor) -> bytes:
    """The `codes.npy` member of sample `key`: [T] codes checked to lie in [0, MAX_CODE], as int16."""
    codes = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if codes.ndim != 1 or (codes.size and (codes.min() < 0 or codes.max() > MAX_CODE)):
        raise ShardFormatError(f"sample {key}: codes must be [T] in [0, {MAX_CODE}]")
    return _npy_bytes(codes.astype(np.int16))


def decode_sample(raw: dict[str, Any]) -> Sample:
    """A raw webdataset sample (bytes per extension) as a `Sample`."""
    key = raw.get("__key__", "?")
    if "json" not in raw:
        raise ShardFormatError(f"sample {key}: no .json metadata (in {raw.get('__url__', '?')})")
    try:
        meta = json.loads(raw["json"])
    except (TypeError, ValueError) as exc:
        raise ShardFormatError(f"sample {key}: metadata is not JSON: {exc}") from exc
    latent = codes = None
    if "latent.npy" in raw:
        latent = torch.from_numpy(_npy_array(raw["latent.npy"], key, "latent.npy").astype(np.float32))
    if "codes.npy" in raw:
        codes = torch.from_numpy(_npy_array(raw["codes.npy"], key, "codes.npy").astype(np.int64))
    return Sample(key=key, meta=meta, latent=latent, codes=codes, flac=raw.get("flac"))
