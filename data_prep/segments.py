"""The worker side of `data_prep.make_shards`: records -> decoded, resampled, cut segments.

`SegmentDataset` runs in DataLoader worker processes (worker w of W takes the
records w, w + W, ... of the run). Each file is decoded block by block through
`lmmsn.audio.AudioStream`, one segment ahead, so a worker holds two segments
whatever the file's length (a 30-minute file no longer costs gigabytes), and
every segment is sent as its own item, followed by one end-of-record item
carrying the record's error (if any), whether its captions cover the whole
file, and its truncation reason (kept with `allow_truncated`). The DataLoader
yields the workers' items round-robin; `ShardMaker` in make_shards groups them
by record and writes a record only once its end-of-record item came.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from data_prep.adapters import Record
from lmmsn.audio import AudioError, AudioStream, audio_info, flac_bytes, rms_dbfs

if TYPE_CHECKING:
    from data_prep.make_shards import ShardConfig


class SegmentDataset(torch.utils.data.IterableDataset):
    """Records -> segment items, then one end-of-record item per record (runs in DataLoader workers).

    Items: ``{"index", "segment": {...}}`` per kept segment, then ``{"index", "done": True,
    "error", "whole_file", "truncated"}``. An error after some segments (a decode error, NaN
    samples, a truncation found at the end) voids the segments already sent: the main process
    drops them.
    """

    def __init__(self, records: Sequence[Record], indices: Sequence[int], config: ShardConfig,
                 sample_rate: int, channels: int) -> None:
        self.records, self.indices, self.config = records, list(indices), config
        self.sample_rate, self.channels = sample_rate, channels
        self.length = int(round(config.segment_s * sample_rate))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for index in self.indices[worker::workers]:
            state: dict[str, Any] = {"whole_file": False, "truncated": None}
            try:
                for segment in self.segments(self.records[index], state):
                    yield {"index": index, "segment": segment}
                error = self.records[index].error  # a row the adapter could not use (no segments then)
            except AudioError as exc:
                error = str(exc)
            except Exception as exc:  # anything else a broken file provokes: never stop the job
                error = f"{self.records[index].audio_path}: {type(exc).__name__}: {exc}"
            yield {"index": index, "done": True, "error": error, **state}

    def _longer_than_a_segment(self, record: Record, decoded: int) -> bool:
        """Under --long first: whether the record's span is longer than the one segment kept."""
        if record.duration_s is not None:
            span_s = record.duration_s
        else:
            try:
                rate, _, frames = audio_info(record.audio_path)
                span_s = frames / rate - record.offset_s
            except AudioError:  # no readable header: judge by whether the segment came back full
                return decoded >= self.length
        return span_s - self.config.segment_s >= self.config.min_tail_s

    def segments(self, record: Record, state: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The record's segments, decoded one block ahead; sets state["whole_file"] / ["truncated"]."""
        cfg, seg = self.config, self.length
        duration = record.duration_s
        if record.error:
            return
        if cfg.long == "first":
            duration = cfg.segment_s if duration is None else min(duration, cfg.segment_s)
        stream = AudioStream(record.audio_path, self.sample_rate, self.channels, offset_s=record.offset_s,
                             duration_s=duration, block_frames=seg, allow_truncated=cfg.allow_truncated)
        sr, blocks, n, more = stream.sample_rate, iter(stream), 0, False
        piece = next(blocks)
        first = piece.shape[-1]
        while piece is not None:
            following = next(blocks, None)
            if n and following is None and piece.shape[-1] < cfg.min_tail_s * sr:
                break  # the short tail of a file longer than a segment
            if cfg.max_segments and n == cfg.max_segments:
                more = True
                break
            level = rms_dbfs(piece)
            yield {"wav": torch.nn.functional.pad(piece, (0, seg - piece.shape[-1])),  # [C, L]
                   "samples": piece.shape[-1], "offset_s": record.offset_s + n * seg / sr, "n": n,
                   "rms_dbfs": round(level, 2), "flac": flac_bytes(piece, sr) if cfg.flac else None}
            n, piece = n + 1, following
        # the captions describe every piece (before max_segments) or, under --long first, the whole span
        state["whole_file"] = self._longer_than_a_segment(record, first) if cfg.long == "first" else n + more > 1
        state["truncated"] = stream.truncated


def keep_item(item: Any) -> Any:
    return item


def tune_malloc() -> bool:
    """One glibc malloc arena and a 1 MB trim threshold for this process (False where there is no glibc).

    Why by hand: through one long file the make_shards process tree grew ~12 MB per minute of
    audio with nothing held (bench/make_shards_memory.py, tiny VAE, 2 workers: 30-minute WAV
    2081 MB vs 5-minute 1767 MB): freed segment buffers stayed in glibc's per-thread arenas.
    MALLOC_ARENA_MAX=1 MALLOC_TRIM_THRESHOLD_=1000000 in the environment made the two equal
    (1737 / 1732 MB); mallopt sets the same at run time, so nobody has to remember the variables.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return False
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_arena_max = -1, -8  # glibc malloc.h
    return bool(libc.mallopt(m_arena_max, 1)) and bool(libc.mallopt(m_trim_threshold, 1_000_000))


def worker_init(_: int) -> None:
    torch.set_num_threads(1)  # several decoding processes must not fight over the cores
    tune_malloc()
