"""The webdataset shard format shared by data preparation, training and evaluation.

One sample = files with a common key inside a tar shard:

    <key>.latent.npy   float16 [T, D]   VAE latents (D = 64 for Stable Audio Open)
    <key>.codes.npy    int16   [T]      tokenizer codes (optional)
    <key>.json         metadata: captions (list[str]), dataset, source_path,
                       offset_s, duration_s, sample_rate, and optionally
                       num_frames (true, unpadded length), conversations, ...
    <key>.flac         the original audio segment (optional)

`encode_sample` builds the dict that `webdataset.ShardWriter.write` takes;
`decode_sample` turns what `webdataset.WebDataset` yields back into tensors and
checks it with `validate_sample`, the one validation every reader shares
(tokenize_shards, `lmmsn.data.loader`, the tokenizer and LLM datasets): latents
floating [T >= 1, D >= 1] and finite, codes integer [T] in [0, MAX_CODE], the
JSON an object whose known fields have their types (captions a list of strings,
num_frames an integer in [1, T], offset_s / duration_s / sample_rate numbers).
A raw sample carrying ``__error__`` (a reader's finding, e.g. a key that occurs
twice in one tar) is rejected with that reason. Every error is a
`ShardFormatError` naming the sample key, its shard and the problem.
"""

from __future__ import annotations

import io
import json
import math
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
    shard: str | None = None
    "The shard (URL) the sample was read from, for messages naming a bad sample."

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


def _npy_array(data: bytes, where: str, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # ValueError / OSError on truncated or pickled data
        raise ShardFormatError(f"{where}: '{name}' is not a valid .npy array: {exc}") from exc


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
    """A raw webdataset sample (bytes per extension) as a validated `Sample`.

    Raises:
        ShardFormatError: the sample breaks the format (`validate_sample`); the message names
            the key, the shard and the problem.
    """
    key = str(raw.get("__key__", "?"))
    where = f"sample {key} (in {raw.get('__url__', '?')})"
    if raw.get("__error__"):
        raise ShardFormatError(f"{where}: {raw['__error__']}")
    if "json" not in raw:
        raise ShardFormatError(f"{where}: no .json metadata")
    try:
        meta = json.loads(raw["json"])
    except (TypeError, ValueError, RecursionError) as exc:  # bytes that are not UTF-8 JSON
        raise ShardFormatError(f"{where}: metadata is not JSON: {exc}") from exc
    latent = codes = None
    if "latent.npy" in raw:
        latent = _npy_array(raw["latent.npy"], where, "latent.npy")
    if "codes.npy" in raw:
        codes = _npy_array(raw["codes.npy"], where, "codes.npy")
    return validate_sample(key, meta, latent, codes, flac=raw.get("flac"), shard=raw.get("__url__"))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_meta(meta: Any, where: str) -> dict[str, Any]:
    """`meta` if it is a JSON object whose known fields have their types, else ShardFormatError."""
    if not isinstance(meta, dict):
        raise ShardFormatError(f"{where}: metadata must be a JSON object, got {type(meta).__name__}")
    captions = meta.get("captions", [])
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise ShardFormatError(f"{where}: 'captions' must be a list of strings, got {captions!r:.80}")
    for name in ("offset_s", "duration_s", "sample_rate"):
        value = meta.get(name, 0)
        if not _is_number(value) or not (isinstance(value, int) or math.isfinite(value)) or value < 0:
            raise ShardFormatError(f"{where}: '{name}' must be a finite number >= 0, got {value!r:.80}")
    if "num_frames" in meta:
        value = meta["num_frames"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ShardFormatError(f"{where}: 'num_frames' must be an integer >= 1, got {value!r:.80}")
    return meta


def validate_sample(key: str, meta: Any, latent: np.ndarray | None = None, codes: np.ndarray | None = None,
                    flac: bytes | None = None, shard: str | None = None) -> Sample:
    """Check one decoded sample against the format (module docstring) and build its `Sample`.

    Args:
        key: the sample key.
        meta: the parsed JSON.
        latent: the `latent.npy` array, if any (any dtype: checked here).
        codes: the `codes.npy` array, if any.
        flac: the `.flac` bytes, if any.
        shard: the shard URL, named in errors.

    Raises:
        ShardFormatError: naming the key, the shard and the problem.
    """
    where = f"sample {key} (in {shard or '?'})"
    meta = validate_meta(meta, where)
    lengths = []
    if latent is not None:
        if latent.dtype.kind != "f":
            raise ShardFormatError(f"{where}: latent.npy must hold floats, got dtype {latent.dtype}")
        if latent.ndim != 2 or latent.shape[0] < 1 or latent.shape[1] < 1:
            raise ShardFormatError(f"{where}: latent.npy must be [T >= 1, D >= 1], got shape {latent.shape}")
        latent = latent.astype(np.float32)  # checked as readers get it: float64 beyond 3.4e38 is inf here
        if not np.isfinite(latent).all():
            raise ShardFormatError(f"{where}: latent.npy has {int((~np.isfinite(latent)).sum())} non-finite values "
                                   "(as float32)")
        lengths.append(latent.shape[0])
    if codes is not None:
        if codes.dtype.kind not in "iu":
            raise ShardFormatError(f"{where}: codes.npy must hold integers, got dtype {codes.dtype}")
        if codes.ndim != 1 or codes.shape[0] < 1:
            raise ShardFormatError(f"{where}: codes.npy must be [T >= 1], got shape {codes.shape}")
        if codes.min() < 0 or codes.max() > MAX_CODE:
            raise ShardFormatError(f"{where}: codes.npy values must lie in [0, {MAX_CODE}], "
                                   f"got [{codes.min()}, {codes.max()}]")
        lengths.append(codes.shape[0])
    if "num_frames" in meta and lengths and meta["num_frames"] > min(lengths):
        raise ShardFormatError(f"{where}: num_frames {meta['num_frames']} exceeds the {min(lengths)} stored frames")
    return Sample(key=key, meta=meta,
                  latent=None if latent is None else torch.from_numpy(latent),
                  codes=None if codes is None else torch.from_numpy(codes.astype(np.int64)),
                  flac=flac, shard=shard)
