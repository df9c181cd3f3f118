"""Raw audio -> fixed-length segments -> frozen-VAE latents -> webdataset shards.

    python -m data_prep.make_shards --adapter manifest --root /data/corpus \\
        --opt manifest=/data/corpus/manifest.jsonl --out /data/shards/corpus --vae tiny

Pipeline: an adapter (`data_prep.adapters`) lists records in a fixed order;
DataLoader worker processes (worker w of W takes records w, w + W, ...) decode
each file block by block (`lmmsn.audio.AudioStream`: a worker holds two
segments, whatever the file's length), resample to the VAE's rate/channels and
cut it into segments of `segment_s` (paper: 10 s; shorter audio is
zero-padded and its true length kept as `num_frames` / `duration_s`; longer
audio gives several segments or only the first, by `--long`; see "Captions
of long files" below), sending one item per segment and an end-of-record item;
the main process batches segments through the VAE (on GPU when there is one,
optionally torch.compile + bf16), holds each record's encoded samples until
its end-of-record item says the whole file decoded, and writes shards in the
`lmmsn.data.format` format (+ the segment as FLAC with `--flac`).

Shard i holds records [i * R, (i + 1) * R) (R = `--records-per-shard`), so a
shard's content is fixed by the record order alone. A shard is complete when
`shard-NNNNNN.json` (its stats, written last, atomically) exists next to
`shard-NNNNNN.tar`; a re-run keeps complete shards and redoes the others, so
every input ends up in exactly one shard exactly once. `run.json` pins the
settings and the record listing: re-running into the same folder with other
settings or inputs is refused with what changed (exit status 2).

A file that cannot be used (missing, undecodable, empty, NaN/inf samples or a
peak beyond `lmmsn.audio.MAX_PEAK`, truncated unless `--allow-truncated`, a
latent that is not finite in float16; silent segments too with `--silence
skip`) is skipped and listed with its reason; the job never stops for one
file. A truncated file kept with `--allow-truncated` has `"truncated": reason`
in its samples' JSON. At the end
`index.json` gathers counts, hours, per-dataset totals, the shard list with
sample counts (read by `lmmsn.data.loader`) and the skip list.

Captions of long files describe the whole file, not each 10 s slice: every
sample's `captions_cover` is "segment" when the file fits one segment (a tail
under `--min-tail-s` aside) and "whole_file" when it is longer (the sample is
then slice `segment`, or the first 10 s under `--long first`). `--long-captions
all` (default) keeps the captions on every slice: right for labels that hold
throughout (FMA genres) and for tokenizer shards. `--long-captions first`
keeps them on the first slice only (later ones: `captions: []`, the captions
under `file_captions`; LLM pretraining skips them as caption-less), so no event
caption is paired with a slice that may lack the event. For LLM shards of long
event-captioned files (Clotho, WavCaps), `--long first` gives one pair per file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

if __package__ in (None, ""):  # run as a file: the repository root holds data_prep/ (not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.adapters import Record, load_records
from data_prep.segments import SegmentDataset, keep_item, tune_malloc, worker_init
from lmmsn.data.format import encode_sample

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class RunMismatch(SystemExit):
    """An output folder made with other settings or inputs: exit status 2; the message (args[0]) says what changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2


@dataclass
class ShardConfig:
    """What make_shards does; every field is a CLI option."""

    adapter: str
    "Adapter name (data_prep.adapters.ADAPTERS)."
    root: str
    "Dataset root folder the adapter reads."
    out: str
    "Output folder for shards, stats and index.json."
    options: dict[str, str] = field(default_factory=dict)
    "Adapter keyword options (--opt key=value)."
    segment_s: float = 10.0
    "Segment length in seconds (paper: 10 s)."
    long: Literal["segments", "first"] = "segments"
    "Longer audio: cut into consecutive segments, or keep the first segment only."
    long_captions: Literal["all", "first"] = "all"
    "Captions of a file cut into several segments: on every segment, or on the first only (module docstring)."
    max_segments: int = 0
    "At most this many segments per file (0: no limit)."
    min_tail_s: float = 1.0
    "Drop a trailing piece shorter than this when a file gives several segments."
    silence: Literal["keep", "skip"] = "keep"
    "Silent segments (RMS below silence_dbfs): keep them flagged (json 'silent': true) or skip them."
    silence_dbfs: float = -60.0
    "RMS level in dBFS under which a segment counts as silent."
    allow_truncated: bool = False
    "Keep the decodable part of truncated files (flagged 'truncated' in the JSON) instead of skipping them."
    vae: Literal["stable-audio-open-1.0", "tiny", "mel-hifigan"] = "stable-audio-open-1.0"
    "Frozen autoencoder (lmmsn.tokenizer.vae.VAEConfig.architecture); mel-hifigan is the CPU stand-in frontend."
    vae_checkpoint: str | None = None
    "VAE weights (None: random weights drawn from `seed`, as `VAEConfig.seed`, so a resumed run and the tokenizer see the same VAE); for mel-hifigan its basis file (None: the packaged one)."
    seed: int = 0
    "Seed of the random VAE weights when there is no checkpoint."
    batch_size: int = 16
    "Segments per VAE forward pass."
    num_workers: int = 2
    "DataLoader processes decoding and resampling audio (0: in the main process)."
    records_per_shard: int = 1000
    "Input records per shard (the unit of resuming)."
    flac: bool = False
    "Also store each segment (at the VAE's rate, unpadded) as <key>.flac."
    device: str = "auto"
    "auto (cuda when available), cpu, cuda, cuda:1, ..."
    compile: bool = False
    "torch.compile the VAE encoder (GPU); batches are padded to batch_size to keep one graph."
    bf16: bool = False
    "Run the VAE encoder under bf16 autocast (CUDA only)."
    limit: int = 0
    "Use only the first `limit` records (0: all)."
    threads: int = 0
    "torch CPU threads of the main process while encoding (0: leave torch's setting)."

    def __post_init__(self) -> None:
        if self.segment_s <= 0 or self.batch_size < 1 or self.records_per_shard < 1:
            raise ValueError("segment_s, batch_size and records_per_shard must be positive")
        if self.long not in ("segments", "first") or self.silence not in ("keep", "skip"):
            raise ValueError(f"long must be segments|first and silence keep|skip, got {self.long}, {self.silence}")
        if self.long_captions not in ("all", "first"):
            raise ValueError(f"long_captions must be all|first, got {self.long_captions}")

    def content_settings(self) -> dict[str, Any]:
        """Settings that change what the shards hold (must match when resuming)."""
        skip = {"out", "batch_size", "num_workers", "device", "compile", "bf16", "threads"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


# -- main side: encode and write -------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "x"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def resolve_device(name: str) -> torch.device:
    """A --device value as a device: "auto" is cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}"


class ShardMaker:
    """Builds the shards of one run (see the module docstring)."""

    def __init__(self, config: ShardConfig, records: Sequence[Record] | None = None,
                 on_record: Callable[[int], None] | None = None) -> None:
        self.config = config
        self.out = Path(config.out)
        self.records = list(records) if records is not None else load_records(
            config.adapter, config.root, **config.options)
        if config.limit:
            self.records = self.records[: config.limit]
        self.on_record = on_record  # test hook, called after each record is written
        self.num_shards = math.ceil(len(self.records) / config.records_per_shard)

    # state on disk

    def complete(self, shard: int) -> bool:
        name = shard_name(shard)
        return (self.out / f"{name}.json").is_file() and (self.out / f"{name}.tar").is_file()

    def _check_run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        listing = hashlib.sha1("\n".join(f"{r.key}\t{r.audio_path}" for r in self.records).encode())
        from lmmsn.config import to_dict

        run = {"format_version": FORMAT_VERSION, "settings": self.config.content_settings(),
               "num_records": len(self.records), "records_sha1": listing.hexdigest(),
               "vae": to_dict(self.vae_config())}
        path, run = self.out / "run.json", json.loads(json.dumps(run))
        old = json.loads(path.read_text()) if path.is_file() else run
        if old != run:
            changed = [f"{k}: {old.get(k)!r:.60} -> {v!r:.60}" for k, v in run["settings"].items()
                       if old.get("settings", {}).get(k) != v] if isinstance(old.get("settings"), dict) else []
            changed += [f"{k}: {old.get(k)!r:.60} -> {run[k]!r:.60}" for k in ("num_records", "records_sha1", "vae",
                                                                            "format_version") if old.get(k) != run[k]]
            raise RunMismatch(f"{self.out} holds shards made with other settings or inputs ({path}): "
                              f"{'; '.join(changed)}; use another --out or delete that folder")
        _write_json(path, run)
        for stale in self.out.glob("*.tmp"):
            stale.unlink()  # a partial shard of an interrupted run: redone below

    # building

    def vae_config(self):
        """The frozen autoencoder's config, its mel basis pinned by SHA-256 (written to run.json)."""
        from lmmsn.tokenizer.vae import VAEConfig, pinned

        cfg = self.config
        # seeded random weights: the same VAE when a run resumes, and the one a tokenizer config with this seed builds
        return pinned(VAEConfig(architecture=cfg.vae, checkpoint=cfg.vae_checkpoint, seed=cfg.seed))

    def _vae(self):
        from lmmsn.tokenizer.vae import build_vae

        cfg = self.config
        device = resolve_device(cfg.device)
        vae = build_vae(self.vae_config()).to(device)
        if cfg.compile:
            if not hasattr(vae, "model"):
                raise SystemExit(f"--compile is for the Oobleck VAEs; {cfg.vae} encodes without a network")
            vae.model.encoder = torch.compile(vae.model.encoder)
        return vae, device

    def _encode(self, vae, device: torch.device, batch: list[dict[str, Any]]) -> torch.Tensor:
        wav = torch.stack([s["wav"] for s in batch])  # [B, C, L]
        if self.config.compile and len(batch) < self.config.batch_size:
            wav = torch.nn.functional.pad(wav, (0, 0, 0, 0, 0, self.config.batch_size - len(batch)))
        wav = wav.to(device, non_blocking=True)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.config.bf16 and device.type == "cuda")
        with autocast:
            z = vae.encode(wav)  # [B, D, T]
        return z[: len(batch)].float().transpose(1, 2).cpu()  # [B, T, D]

    def run(self) -> dict[str, Any]:
        """Build the missing shards, then index.json; returns the index."""
        threads = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)

    def _run(self) -> dict[str, Any]:
        from tqdm import tqdm

        cfg = self.config
        self._check_run()
        todo = [s for s in range(self.num_shards) if not self.complete(s)]
        if len(todo) < self.num_shards:
            logger.info("resuming: %d of %d shards already complete", self.num_shards - len(todo), self.num_shards)
        tune_malloc()  # segments.tune_malloc: memory stays flat through long files
        vae, device = self._vae()
        R = cfg.records_per_shard
        indices = [i for s in todo for i in range(s * R, min((s + 1) * R, len(self.records)))]
        dataset = SegmentDataset(self.records, indices, cfg, vae.sample_rate, vae.channels)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=None, num_workers=cfg.num_workers, collate_fn=keep_item,
            worker_init_fn=worker_init, prefetch_factor=8 if cfg.num_workers else None,
            pin_memory=device.type == "cuda")
        self.ratio, self.frames = vae.downsampling_ratio, vae.num_frames(dataset.length)
        self.sample_rate = vae.sample_rate
        bar = tqdm(total=len(indices), unit="file", desc="make_shards", dynamic_ncols=True, mininterval=2)
        self.t0, self.clips, self.audio_s = time.perf_counter(), 0, 0.0
        # open shards, records in flight (encoded samples, segments still in the batch), end-of-record order
        self.shards: dict[int, dict[str, Any]] = {}
        self.pending: dict[int, dict[str, Any]] = {}
        self.ended: deque[int] = deque()
        batch: list[dict[str, Any]] = []
        for item in loader:
            index = item["index"]
            record, stats = self.records[index], self._open(index // R)
            state = self.pending.setdefault(index, {"encoded": [], "in_batch": 0, "done": None})
            if "segment" in item:
                segment = item["segment"]
                silent = segment["rms_dbfs"] < cfg.silence_dbfs
                if silent and cfg.silence == "skip":
                    self._skip(stats, record, index, f"silent segment at {segment['offset_s']:.2f} s "
                               f"({segment['rms_dbfs']} dBFS < {cfg.silence_dbfs})", segment["n"])
                else:
                    batch.append({**segment, "index": index, "silent": silent})
                    state["in_batch"] += 1
            else:
                state["done"] = item
                self.ended.append(index)
                bar.update(1)
                elapsed = time.perf_counter() - self.t0
                bar.set_postfix(clips_s=f"{self.clips / elapsed:.1f}", x_rt=f"{self.audio_s / elapsed:.0f}",
                                refresh=False)
            if len(batch) == cfg.batch_size:
                self._flush(vae, device, batch)
                batch = []
            self._drain()
        self._flush(vae, device, batch)
        self._drain()
        bar.close()
        assert not self.shards and not self.pending, "every shard of the run is finished"
        return self.write_index(time.perf_counter() - self.t0)

    def _open(self, shard: int) -> dict[str, Any]:
        """The stats of an open shard (opening its writer on first use)."""
        import webdataset as wds

        if shard not in self.shards:
            R = self.config.records_per_shard
            records = [shard * R, min((shard + 1) * R, len(self.records))]
            self.shards[shard] = {"name": f"{shard_name(shard)}.tar", "samples": 0, "hours": 0.0, "records": records,
                                  "datasets": {}, "skipped": [], "left": records[1] - records[0],
                                  "writer": wds.TarWriter(str(self.out / f"{shard_name(shard)}.tar.tmp"))}
        return self.shards[shard]

    def _skip(self, stats: dict[str, Any], record: Record, index: int, reason: str, n: int = -1) -> None:
        stats["skipped"].append(((index, n), {"path": str(record.audio_path), "dataset": record.dataset,
                                              "key": record.key, "reason": reason}))
        logger.debug("skipped %s: %s", record.audio_path, reason)

    def _flush(self, vae, device, batch) -> None:
        """Encode a batch; each latent goes to its record's pending samples (unfinite in float16: a skip)."""
        if not batch:
            return
        latents = self._encode(vae, device, batch).half()  # [B, T, D] as stored: the check sees what is written
        for segment, latent in zip(batch, latents, strict=True):
            state = self.pending[segment["index"]]
            state["in_batch"] -= 1
            # the waveform is not kept: a record's samples wait here until its file ends (an error voids
            # them), and keeping every segment's audio made memory grow by the whole file's PCM
            # (~21 MB per minute of 44.1 kHz stereo float32; issue 14)
            state["encoded"].append(({k: v for k, v in segment.items() if k != "wav"}, latent))

    def _drain(self) -> None:
        """Write the records whose end came and whose segments are all encoded, in the order they ended."""
        while self.ended and self.pending[self.ended[0]]["in_batch"] == 0:
            index = self.ended.popleft()
            self._write_record(index, self.pending.pop(index))
            if self.on_record is not None:
                self.on_record(index)

    def _write_record(self, index: int, state: dict[str, Any]) -> None:
        record, done = self.records[index], state["done"]
        shard = index // self.config.records_per_shard
        stats = self.shards[shard]
        ds = stats["datasets"].setdefault(record.dataset, {"records": 0, "samples": 0, "hours": 0.0, "skipped": 0})
        ds["records"] += 1
        if done["error"]:  # segments sent before the error are dropped with the file
            self._skip(stats, record, index, done["error"])
            state["encoded"] = []
        root = Path(self.config.root)
        for segment, latent in state["encoded"]:
            if not torch.isfinite(latent).all():
                self._skip(stats, record, index, f"{record.audio_path}: latent of the segment at "
                           f"{segment['offset_s']:.2f} s is not finite in float16", segment["n"])
                continue
            path = record.audio_path
            source = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            duration = segment["samples"] / self.sample_rate
            meta = {**record.meta, **self._captions(record, segment["n"], done["whole_file"]),
                    "dataset": record.dataset, "source_path": source, "offset_s": round(segment["offset_s"], 4),
                    "duration_s": round(duration, 4), "sample_rate": self.sample_rate,
                    "num_frames": min(self.frames, math.ceil(segment["samples"] / self.ratio)),
                    "segment_s": self.config.segment_s, "split": record.split, "record_key": record.key,
                    "segment": segment["n"], "silent": segment["silent"], "rms_dbfs": segment["rms_dbfs"]}
            if done["truncated"]:
                meta["truncated"] = done["truncated"]
            key = f"{_slug(record.dataset)}_{index:08d}_{segment['n']:03d}"
            stats["writer"].write(encode_sample(key, meta, latent=latent, flac=segment["flac"]))
            for counts in (stats, ds):
                counts["samples"] += 1
                counts["hours"] += duration / 3600
            self.clips += 1
            self.audio_s += duration
        stats["left"] -= 1
        if stats["left"] == 0:
            self._finish(shard)

    def _captions(self, record: Record, n: int, whole_file: bool) -> dict[str, Any]:
        """The caption fields of segment n's JSON (module docstring: captions of long files)."""
        if not whole_file:
            return {"captions": record.captions, "captions_cover": "segment"}
        if self.config.long_captions == "first" and n > 0:
            return {"captions": [], "file_captions": record.captions, "captions_cover": "whole_file"}
        return {"captions": record.captions, "captions_cover": "whole_file"}

    def _finish(self, shard: int) -> None:
        stats = self.shards.pop(shard)
        stats.pop("writer").close()
        del stats["left"]
        name = shard_name(shard)
        for _, entry in stats["skipped"]:
            stats["datasets"][entry["dataset"]]["skipped"] += 1
        stats["skipped"] = [entry for _, entry in sorted(stats["skipped"], key=lambda pair: pair[0])]
        os.replace(self.out / f"{name}.tar.tmp", self.out / f"{name}.tar")
        stats["bytes"] = (self.out / f"{name}.tar").stat().st_size
        _write_json(self.out / f"{name}.json", stats)  # written last: marks the shard complete

    def write_index(self, seconds: float) -> dict[str, Any]:
        shards = [json.loads((self.out / f"{shard_name(s)}.json").read_text()) for s in range(self.num_shards)]
        datasets: dict[str, dict[str, Any]] = {}
        for stats in shards:
            for name, ds in stats["datasets"].items():
                total = datasets.setdefault(name, {"records": 0, "samples": 0, "hours": 0.0, "skipped": 0})
                for k in total:
                    total[k] += ds[k]
        skipped = [entry for stats in shards for entry in stats["skipped"]]
        index = {
            "format_version": FORMAT_VERSION,
            "settings": self.config.content_settings(),
            "num_records": len(self.records),
            "num_samples": sum(s["samples"] for s in shards),
            "hours": sum(s["hours"] for s in shards),
            "num_skipped": len(skipped),
            "latent": {"frames": self.frames, "frame_rate": self.sample_rate / self.ratio,
                       "sample_rate": self.sample_rate},
            "vae": json.loads((self.out / "run.json").read_text()).get("vae"),
            "datasets": datasets,
            "shards": [{k: s[k] for k in ("name", "samples", "hours", "records", "bytes")} for s in shards],
            "skipped": skipped,
            "last_run": {"seconds": round(seconds, 2), "clips": self.clips,
                         "clips_per_s": round(self.clips / max(seconds, 1e-9), 3),
                         "x_real_time": round(self.audio_s / max(seconds, 1e-9), 2)},
        }
        _write_json(self.out / "index.json", index)
        return index


def check_inputs(config: ShardConfig) -> dict[str, Any]:
    """Decode and cut every record exactly as make_shards would, without the VAE or shards.

    Writes `<out>/check.json` (counts, hours, segments, silent segments, the skip list) so a
    corpus can be validated on CPU before the VAE run.
    """
    from tqdm import tqdm

    from lmmsn.tokenizer.vae import frontend_info

    info = frontend_info(config.vae)
    records = load_records(config.adapter, config.root, **config.options)
    records = records[: config.limit] if config.limit else records
    dataset = SegmentDataset(records, range(len(records)), config, info.sample_rate, info.channels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=config.num_workers,
                                         collate_fn=keep_item, worker_init_fn=worker_init)
    t0, segments, silent, seconds, skipped, done = time.perf_counter(), 0, 0, 0.0, [], 0

    def report() -> dict[str, Any]:
        elapsed = time.perf_counter() - t0
        return {"settings": config.content_settings(), "num_records": len(records), "checked": done,
                "num_segments": segments, "num_silent_segments": silent, "hours": seconds / 3600,
                "num_skipped": len(skipped), "seconds": round(elapsed, 1),
                "files_per_s": round(done / max(elapsed, 1e-9), 2), "skipped": skipped}

    Path(config.out).mkdir(parents=True, exist_ok=True)
    pieces: dict[int, list[dict[str, Any]]] = {}  # a record's segments, counted once it decoded to its end
    for item in tqdm(loader, total=len(records), unit="file", desc="check", mininterval=2):
        kept = pieces.setdefault(item["index"], [])
        if "segment" in item:
            kept.append({k: item["segment"][k] for k in ("rms_dbfs", "samples")})
            continue
        done += 1
        if done % 200 == 0:  # a partial report survives an interrupted check
            _write_json(Path(config.out) / "check.json", report())
        record, kept = records[item["index"]], pieces.pop(item["index"])
        if item["error"]:
            skipped.append({"path": str(record.audio_path), "dataset": record.dataset, "key": record.key,
                            "reason": item["error"]})
            continue
        segments += len(kept)
        silent += sum(s["rms_dbfs"] < config.silence_dbfs for s in kept)
        seconds += sum(s["samples"] for s in kept) / info.sample_rate
    final = report()
    _write_json(Path(config.out) / "check.json", final)
    return final


def summary(index: dict[str, Any]) -> str:
    """A short human-readable summary of an index."""
    run = index["last_run"]
    lines = [f"{index['num_samples']} samples ({index['hours']:.2f} h) from {index['num_records']} files "
             f"in {len(index['shards'])} shards; {index['num_skipped']} skipped",
             f"this run: {run['clips']} clips in {run['seconds']:.1f} s = {run['clips_per_s']:.2f} clips/s, "
             f"{run['x_real_time']:.1f}x real time"]
    reasons: dict[str, int] = {}
    for entry in index["skipped"]:
        reasons[_reason_kind(entry["reason"])] = reasons.get(_reason_kind(entry["reason"]), 0) + 1
    lines += [f"  skipped {n:5d}  {kind}" for kind, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """A reason without its file name and numbers, to count reasons by kind."""
    text = reason.split(": ", 1)[1] if ": " in reason else reason
    return re.sub(r"\d+(\.\d+)?", "N", text)[:80]


# -- CLI -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> tuple[ShardConfig, bool]:
    """(config, check_only) from the command line."""
    parser = argparse.ArgumentParser(prog="python -m data_prep.make_shards", description=__doc__.split("\n")[0])
    defaults = ShardConfig(adapter="", root="", out="")
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="adapter option")
    for name in ("segment_s", "silence_dbfs", "min_tail_s"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    for name in ("max_segments", "batch_size", "num_workers", "records_per_shard", "limit", "seed",
                 "threads"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--long", choices=["segments", "first"], default=defaults.long)
    parser.add_argument("--long-captions", choices=["all", "first"], default=defaults.long_captions,
                        help="captions of a file cut into several segments: on every segment, or the first only")
    parser.add_argument("--silence", choices=["keep", "skip"], default=defaults.silence)
    parser.add_argument("--vae", choices=["stable-audio-open-1.0", "tiny", "mel-hifigan"], default=defaults.vae)
    parser.add_argument("--vae-checkpoint", default=None)
    parser.add_argument("--device", default=defaults.device)
    for flag in ("flac", "compile", "bf16", "allow_truncated"):
        parser.add_argument(f"--{flag.replace('_', '-')}", action="store_true")
    parser.add_argument("--check-only", action="store_true",
                        help="decode and cut every file, write <out>/check.json with the skip list; no VAE")
    args = vars(parser.parse_args(argv))
    check_only = args.pop("check_only")
    options = {}
    for item in args.pop("opt"):
        if "=" not in item:
            parser.error(f"--opt expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        options[key] = value
    return ShardConfig(options=options, **args), check_only


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config, check_only = parse_args(argv)
    if config.threads:
        torch.set_num_threads(config.threads)
    if check_only:
        report = check_inputs(config)
        reasons: dict[str, int] = {}
        for entry in report["skipped"]:
            reasons[_reason_kind(entry["reason"])] = reasons.get(_reason_kind(entry["reason"]), 0) + 1
        print(f"{report['num_records']} files, {report['num_segments']} segments ({report['hours']:.2f} h), "
              f"{report['num_silent_segments']} silent; {report['num_skipped']} unusable, "
              f"{report['files_per_s']} files/s", file=sys.stderr)
        for kind, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            print(f"  skipped {n:5d}  {kind}", file=sys.stderr)
        return report
    try:
        index = ShardMaker(config).run()
    except RunMismatch as exc:
        print(f"make_shards: {exc.args[0]}", file=sys.stderr)
        raise
    print(summary(index), file=sys.stderr)
    print(f"index: {Path(config.out) / 'index.json'}", file=sys.stderr)
    return index


if __name__ == "__main__":
    main()
