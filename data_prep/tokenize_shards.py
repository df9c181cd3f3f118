"""Second pass over latent shards: add tokenizer codes (`<key>.codes.npy`) for LLM training.

    python -m data_prep.tokenize_shards --shards /data/shards/corpus --tokenizer runs/tok/export \\
        --out /data/shards/corpus-codes

Reads the shards that `data_prep.make_shards` wrote, runs the trained
tokenizer's encoder + VQ over each sample's latents (batched, on GPU when there
is one; the VAE is not needed) and writes a new shard of the same name holding
every original member unchanged plus `codes.npy` (int16, `lmmsn.data.format`).
By default the codes are cut to the sample's true length (`num_frames` in its
JSON): the encoder is causal, so those codes are exactly the ones of the
padded sequence, and the LLM does not learn to emit the padding's tokens
(`--keep-padding` keeps all frames).

Resuming works like make_shards: an output shard is complete when its
`shard-*.json` stats file (written last) exists; a re-run redoes only the
others. `run.json` pins the tokenizer (the SHA-1 of its config and weights),
`--keep-padding` and the inputs (every input shard's path and size in bytes):
re-running into the same folder with another tokenizer or other input shards
is refused with what changed (exit status 2), so codes of two tokenizers never
mix and new input samples are never silently left out. A sample that breaks
the format (`lmmsn.data.format.validate_sample`: unreadable or non-float latent,
wrong rank, no frames, non-finite values, bad num_frames, a key occurring twice)
or has the wrong latent size is left out and listed with its reason; the job
goes on. An input that is not a readable tar or holds no sample is a listed
failure (`failed_shards` in the index; no output shard, so it is not complete
and a re-run tries it again), never an empty "complete" shard.
`index.json` in the output folder is the input index with the shard list
replaced, the codes' tokenizer described under `codes`, and this pass's skips
appended to `skipped`, so `lmmsn.data.loader` counts the new shards exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a file: the repository root holds data_prep/ (not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.make_shards import RunMismatch, _write_json, resolve_device
from lmmsn.data.format import ShardFormatError, decode_sample, encode_codes
from lmmsn.data.loader import tar_samples

logger = logging.getLogger(__name__)


@dataclass
class TokenizeConfig:
    """What tokenize_shards does; every field is a CLI option."""

    shards: str
    "Input shards: a make_shards output folder (its *.tar), a glob or a brace pattern."
    tokenizer: str
    "Exported tokenizer folder (`AudioTokenizer.save_pretrained`, a recipe's <output_dir>/export)."
    out: str
    "Output folder (must differ from the input folder)."
    batch_size: int = 64
    "Samples per encoder pass."
    device: str = "auto"
    "auto (cuda when available), cpu, cuda, cuda:1, ..."
    keep_padding: bool = False
    "Keep the codes of padding frames (default: cut to num_frames)."
    threads: int = 0
    "torch CPU threads (0: leave torch's setting)."

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def _changes(old: dict | None, new: dict[str, int | None]) -> str:
    """What differs between two {shard path: bytes} input pins, for the refusal message."""
    if not isinstance(old, dict):
        return "the folder pins no input list (made by an older version)"
    parts = []
    for label, names in (("new", sorted(set(new) - set(old))), ("missing", sorted(set(old) - set(new))),
                         ("resized", sorted(n for n in set(old) & set(new) if old[n] != new[n]))):
        if names:
            parts.append(f"{label}: {', '.join(names[:5])}" + (f" +{len(names) - 5} more" if len(names) > 5 else ""))
    return "; ".join(parts)


def _stats_path(out: Path, shard: str) -> Path:
    return out / (Path(shard).name.removesuffix(".tar") + ".json")


class ShardTokenizer:
    """Adds codes to every input shard that has no complete output shard yet."""

    def __init__(self, config: TokenizeConfig) -> None:
        from lmmsn.data.loader import list_shards

        self.config = config
        self.out = Path(config.out)
        self.urls = list_shards(config.shards)
        sources = {Path(u).resolve().parent for u in self.urls}
        if self.out.resolve() in sources:
            raise SystemExit(f"--out {self.out} is an input folder: write the coded shards to another folder")

    def _check_run(self) -> None:
        """Write run.json, or refuse when the folder holds codes of another tokenizer or setting."""
        import hashlib

        digest = hashlib.sha1()
        for name in ("config.yaml", "model.safetensors"):
            digest.update((Path(self.config.tokenizer) / name).read_bytes())
        inputs = {str(Path(u).resolve()) if Path(u).is_file() else u: Path(u).stat().st_size if Path(u).is_file()
                  else None for u in self.urls}
        if len({Path(u).name for u in self.urls}) < len(self.urls):
            raise RunMismatch(f"--shards {self.config.shards}: two input shards share a file name; "
                              "tokenize each folder into its own --out")
        run = {"tokenizer_sha1": digest.hexdigest(), "keep_padding": self.config.keep_padding, "inputs": inputs}
        path = self.out / "run.json"
        if not path.is_file():
            _write_json(path, run)
            return
        try:
            old = json.loads(path.read_text())
            old_inputs = old.get("inputs") if isinstance(old, dict) else None
        except ValueError as exc:
            raise RunMismatch(f"{path} is not JSON ({exc}); use another --out or delete that folder") from exc
        if {k: old.get(k) for k in ("tokenizer_sha1", "keep_padding")} != {k: run[k] for k in ("tokenizer_sha1", "keep_padding")}:
            raise RunMismatch(f"{self.out} holds codes of another tokenizer or --keep-padding setting ({path}: "
                              f"{ {k: v for k, v in old.items() if k != 'inputs'} }); use another --out or delete that folder")
        if old_inputs != inputs:
            raise RunMismatch(f"{self.out} holds codes of other input shards ({path}): {_changes(old_inputs, inputs)}; "
                              "use another --out or delete that folder")

    def complete(self, url: str) -> bool:
        return _stats_path(self.out, url).is_file() and (self.out / Path(url).name).is_file()

    def _model(self):
        from lmmsn.tokenizer.model import AudioTokenizer

        device = resolve_device(self.config.device)
        model = AudioTokenizer.from_pretrained(self.config.tokenizer, device=device, with_vae=False)
        return model.eval(), device

    def run(self) -> dict[str, Any]:
        """Tokenize the missing shards, then write index.json; returns the index."""
        from tqdm import tqdm

        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self._source_index()  # a malformed input index stops the run before any work
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_run()
        for stale in self.out.glob("*.tmp"):
            stale.unlink()  # the partial shard of an interrupted run: redone below
        todo = [u for u in self.urls if not self.complete(u)]
        if len(todo) < len(self.urls):
            logger.info("resuming: %d of %d shards already complete", len(self.urls) - len(todo), len(self.urls))
        model, device = self._model() if todo else (None, torch.device("cpu"))
        t0, samples, self.failed = time.perf_counter(), 0, []
        bar = tqdm(total=len(todo), unit="shard", desc="tokenize_shards", dynamic_ncols=True)
        for url in todo:
            try:
                samples += self._shard(model, device, url)
            except ShardFormatError as exc:  # not a tar / empty / damaged: listed, no output shard
                (self.out / f"{Path(url).name}.tmp").unlink(missing_ok=True)
                self.failed.append({"shard": Path(url).name, "reason": str(exc)})
                logger.error("%s", exc)
            bar.update(1)
            bar.set_postfix(samples_s=f"{samples / (time.perf_counter() - t0):.0f}", refresh=False)
        bar.close()
        return self.write_index(time.perf_counter() - t0, samples)

    def _shard(self, model, device: torch.device, url: str) -> int:
        import webdataset as wds

        name = Path(url).name
        tmp = self.out / f"{name}.tmp"
        stats: dict[str, Any] = {"name": name, "samples": 0, "hours": 0.0, "skipped": []}
        writer = wds.TarWriter(str(tmp))
        batch: list[tuple[dict, torch.Tensor, int, float]] = []  # (raw sample, latent, codes to keep, duration_s)

        def skip(raw: dict, reason: str) -> None:
            stats["skipped"].append({"shard": name, "key": raw.get("__key__", "?"), "reason": reason})
            logger.warning("%s: skipped sample %s: %s", name, raw.get("__key__", "?"), reason)

        def flush() -> None:
            if not batch:
                return
            length = max(latent.shape[0] for _, latent, _, _ in batch)
            latents = torch.zeros(len(batch), length, batch[0][1].shape[1])
            mask = torch.zeros(len(batch), length, dtype=torch.bool)
            for i, (_, latent, _, _) in enumerate(batch):
                latents[i, : latent.shape[0]], mask[i, : latent.shape[0]] = latent, True
            with torch.no_grad():
                codes = model.encode_latents(latents.to(device), mask.to(device)).cpu()  # [B, T]
            for (raw, _latent, keep, duration), row in zip(batch, codes, strict=True):
                sample = {k: v for k, v in raw.items() if not k.startswith("__") and k != "codes.npy"}
                writer.write({"__key__": raw["__key__"], **sample, "codes.npy": encode_codes(raw["__key__"], row[:keep])})
                stats["samples"] += 1
                stats["hours"] += duration / 3600
            batch.clear()

        try:
            self._samples(url, model.latent_dim, batch, skip, flush)
        finally:
            writer.close()
        os.replace(tmp, self.out / name)
        stats["bytes"] = (self.out / name).stat().st_size
        _write_json(_stats_path(self.out, url), stats)  # written last: marks the shard complete
        return stats["samples"]

    def _samples(self, url: str, latent_dim: int, batch: list, skip, flush) -> None:
        """Decode and batch the samples of one input shard (flushing full batches), skipping bad ones."""
        for raw in tar_samples(url):  # ShardFormatError for the whole shard: run() lists it as failed
            try:
                sample = decode_sample(raw)
            except ShardFormatError as exc:
                skip(raw, str(exc))
                continue
            latent = sample.latent
            if latent is None:
                skip(raw, "no latent.npy")
            elif latent.shape[1] != latent_dim:
                skip(raw, f"latent dim {latent.shape[1]} != tokenizer latent dim {latent_dim}")
            else:
                keep = latent.shape[0] if self.config.keep_padding else min(latent.shape[0], sample.num_frames)
                batch.append((raw, latent, keep, float(sample.meta.get("duration_s", 0.0))))
                if len(batch) == self.config.batch_size:
                    flush()
        flush()

    def _source_index(self) -> dict[str, Any]:
        """The input folder's index.json ({} when the inputs span folders or have none); RunMismatch if malformed."""
        from lmmsn.data.loader import INDEX_NAME

        sources = {Path(u).parent / INDEX_NAME for u in self.urls}
        if len(sources) != 1 or not next(iter(sources)).is_file():
            return {}
        source = next(iter(sources))
        try:
            index = json.loads(source.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunMismatch(f"{source}: the input index is not JSON ({exc}); repair or remove it") from exc
        if (not isinstance(index, dict) or not isinstance(index.get("skipped", []), list)
                or type(index.get("num_skipped", 0)) is not int):
            raise RunMismatch(f"{source}: the input index must be a JSON object with a 'skipped' list and an "
                              "integer 'num_skipped'; repair or remove it")
        return index

    def write_index(self, seconds: float, samples: int) -> dict[str, Any]:
        from lmmsn.data.loader import INDEX_NAME
        from lmmsn.tokenizer.model import read_tokenizer_config

        shards = [json.loads(_stats_path(self.out, u).read_text()) for u in self.urls if self.complete(u)]
        failed = getattr(self, "failed", [])
        index = self._source_index()
        config = read_tokenizer_config(self.config.tokenizer)
        skipped = [entry for s in shards for entry in s["skipped"]]
        index.update(
            num_samples=sum(s["samples"] for s in shards),
            hours=sum(s["hours"] for s in shards),
            shards=[{k: s[k] for k in ("name", "samples", "hours", "bytes")} for s in shards],
            codes={"tokenizer": str(Path(self.config.tokenizer).resolve()), "codebook_size": config.quantizer.codebook_size,
                   "frame_rate": config.frame_rate, "trimmed_to_num_frames": not self.config.keep_padding,
                   "source_shards": self.config.shards, "num_skipped": len(skipped), "skipped": skipped,
                   "failed_shards": failed,
                   "last_run": {"seconds": round(seconds, 2), "samples": samples,
                                "samples_per_s": round(samples / max(seconds, 1e-9), 2)}},
        )
        index["num_skipped"] = index.get("num_skipped", 0) + len(skipped)
        index["skipped"] = index.get("skipped", []) + skipped
        _write_json(self.out / INDEX_NAME, index)
        return index


def parse_args(argv: Sequence[str] | None = None) -> TokenizeConfig:
    parser = argparse.ArgumentParser(prog="python -m data_prep.tokenize_shards", description=__doc__.split("\n")[0])
    defaults = TokenizeConfig(shards="", tokenizer="", out="")
    parser.add_argument("--shards", required=True, help="input shards: a make_shards folder, a glob or a brace pattern")
    parser.add_argument("--tokenizer", required=True, help="exported tokenizer folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--keep-padding", action="store_true", help="keep the codes of padding frames")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    return TokenizeConfig(**vars(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    logger.info("settings: %s", asdict(config))
    try:
        index = ShardTokenizer(config).run()
    except RunMismatch as exc:
        print(f"tokenize_shards: {exc.args[0]}", file=sys.stderr)
        raise
    codes = index["codes"]
    print(f"{index['num_samples']} samples ({index['hours']:.2f} h) in {len(index['shards'])} shards with codes "
          f"(codebook {codes['codebook_size']}, {codes['frame_rate']:.2f} codes/s); {codes['num_skipped']} skipped "
          f"in this pass; this run {codes['last_run']['samples']} samples in {codes['last_run']['seconds']:.1f} s",
          file=sys.stderr)
    for entry in codes["failed_shards"]:
        print(f"  FAILED {entry['shard']}: {entry['reason']}", file=sys.stderr)
    print(f"index: {Path(config.out) / 'index.json'}", file=sys.stderr)
    return index


if __name__ == "__main__":
    main()
