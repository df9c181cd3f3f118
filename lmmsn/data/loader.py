"""Generic shard readers: which tar files, and which samples each rank / worker reads.

`list_shards` turns a directory, glob, brace pattern or list into shard URLs;
`tar_samples` reads the raw samples of one shard (webdataset's tar member
iterator, grouped by key here so that a key occurring twice is flagged rather
than merged, and a shard that is not a tar or holds nothing is an error);
`shard_samples` streams `lmmsn.data.format.Sample`s (validated by
`decode_sample`) from them, DDP- and DataLoader-worker-aware, with
webdataset's shuffle buffer.

Splitting. Every (rank, worker) pair is one *slot*; there are
S = world_size * num_workers slots. Two modes (``split=``):

- ``"shard"`` (default): the epoch's shard order (shuffled with a seed that
  depends only on ``seed`` and the epoch, so every rank agrees) is dealt
  round-robin to slots; each slot reads only its shards. I/O is read once.
  Needs at least S shards; with fewer it falls back to ``"sample"`` (logged).
- ``"sample"``: every slot reads every shard in the same order and keeps the
  i-th sample when ``i % world_size == rank`` and ``(i // world_size) %
  num_workers == worker``. Balanced to one sample, but each slot reads all the
  data (S times the I/O): use it for small sets or few shards.

Either way, with ``even="none"`` each sample is yielded exactly once per epoch
across all ranks and workers.

Uneven shards and DDP. DDP needs the same number of batches on every rank or
the collective calls hang. ``even=`` sets the policy; it needs per-shard
sample counts (read from an ``index.json`` written by ``data_prep.make_shards``
next to the shards, else counted from the local tar headers, or given via
``shard_sizes``):

- ``"pad"`` (default, DistributedSampler's policy): worker k of every rank
  yields ``max over ranks`` of what worker k of any rank holds, repeating its
  own samples (in a fresh order) to fill up. Every sample is seen at least once;
  when counts divide evenly, exactly once.
- ``"truncate"``: worker k of every rank yields ``min over ranks``; the surplus
  is dropped (a different surplus each epoch when shards are shuffled).
- ``"none"``: no balancing (exactly once; safe for a single process or when
  the training loop tolerates uneven ranks).

Equal counts per worker index imply the same number of DataLoader batches on
every rank (each worker batches its own stream). A corrupt sample is skipped
with a warning naming the shard and key; under ``"pad"`` / ``"truncate"`` the
slot then repeats one of its samples so the count (and DDP) stays even.

Epochs: call ``set_epoch(epoch)`` before each epoch (as with
DistributedSampler). Use ``persistent_workers=False`` (the default), since
persistent workers keep the epoch they were started with.
"""

from __future__ import annotations

import glob
import json
import logging
import random
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.gopen import gopen

from lmmsn.data.format import Sample, ShardFormatError, decode_sample

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
SplitMode = Literal["shard", "sample"]
EvenPolicy = Literal["pad", "truncate", "none"]


def list_shards(spec: str | Path | Sequence[str | Path]) -> list[str]:
    """Shard URLs for a directory (its *.tar, sorted), glob, brace pattern or list.

    Brace patterns follow webdataset (``shards/train-{000000..000099}.tar``);
    ``::`` separates several patterns. Remote URLs (``pipe:``, ``http://``) are
    passed through unchanged.

    Raises:
        FileNotFoundError: nothing matches; the message names the spec.
    """
    if isinstance(spec, (list, tuple)):
        urls = [url for item in spec for url in list_shards(item)]
    else:
        text = str(spec)
        if "://" in text or text.startswith("pipe:"):
            urls = wds.shardlists.expand_urls(text)
        elif Path(text).is_dir():
            urls = sorted(str(p) for p in Path(text).glob("*.tar"))
        else:
            urls = []
            for pattern in wds.shardlists.expand_urls(text):
                if glob.has_magic(pattern):
                    urls.extend(sorted(glob.glob(pattern)))
                elif Path(pattern).is_file():
                    urls.append(pattern)
    if not urls:
        raise FileNotFoundError(f"no shards match {spec!r} (expected a directory with *.tar, a glob, "
                                "a brace pattern or a list of tar files)")
    return urls


def tar_samples(url: str) -> Iterator[dict]:
    """Raw samples (``{"__key__", "__url__", <ext>: bytes}``) of one shard, in tar order.

    Members are grouped by key (the name up to its first dot, as webdataset does). A key whose
    members are not one consecutive run, or a member name that occurs twice, gives a raw sample
    with ``__error__`` set (so `decode_sample` rejects it with that reason) instead of a silent
    merge.

    Raises:
        ShardFormatError: the shard cannot be opened, is not a tar archive, is damaged, or holds
            no sample; the message names the shard. Samples before a damage are yielded first.
    """
    try:
        stream = gopen(url)
    except Exception as exc:  # OSError / ValueError from gopen: a missing file, a failing pipe
        raise ShardFormatError(f"shard {url}: cannot open: {exc}") from exc
    seen: set[str] = set()
    current: dict | None = None
    count = 0
    try:
        for member in wds.tariterators.tar_file_iterator(stream):
            key, ext = wds.tariterators.base_plus_ext(member["fname"])
            if key is None:  # a member without an extension belongs to no sample
                continue
            ext = ext.lower()
            if current is None or key != current["__key__"]:
                if current is not None:
                    count += 1
                    yield current
                current = {"__key__": key, "__url__": url}
                if key in seen:
                    current["__error__"] = (f"key {key} occurs twice in the shard (its members are not one "
                                            f"consecutive run; {member['fname']} comes after other samples)")
                seen.add(key)
            if ext in current and "__error__" not in current:
                current["__error__"] = f"member {member['fname']} occurs twice in the shard"
            current[ext] = member["data"]
    except Exception as exc:  # tarfile.ReadError, EOFError, OSError, zlib errors: a damaged or foreign file
        raise ShardFormatError(f"shard {url}: not a readable tar archive after {count} samples: "
                               f"{type(exc).__name__}: {exc}") from exc
    finally:
        stream.close()
    if current is not None:
        count += 1
        yield current
    if count == 0:
        raise ShardFormatError(f"shard {url}: holds no samples (an empty tar)")


def count_samples(url: str) -> int:
    """Number of samples in a shard: from a sibling index.json, else its tar headers."""
    path = Path(url)
    index = path.parent / INDEX_NAME
    if index.is_file():
        try:
            shards = json.loads(index.read_text())["shards"]
            for entry in shards:
                if entry["name"] == path.name:
                    return int(entry["samples"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: unreadable shard index (%s); counting tar headers", index, exc)
    if not path.is_file():
        raise FileNotFoundError(f"cannot count samples of {url}: not a local file and not in an "
                                f"{INDEX_NAME}; pass shard_sizes or even='none'")
    keys = set()
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isreg():
                    key, _ = wds.tariterators.base_plus_ext(member.name)
                    if key is not None:
                        keys.add(key)
    except (tarfile.TarError, OSError) as exc:
        logger.warning("%s: damaged tar (%s); counted %d samples before the damage", url, exc, len(keys))
    return len(keys)


def _slot_counts_by_sample(total: int, world_size: int, num_workers: int) -> list[list[int]]:
    """counts[r][k] of the sample-level split of `total` samples."""
    return [[len(range(k, len(range(r, total, world_size)), num_workers)) for k in range(num_workers)]
            for r in range(world_size)]


class ShardSamples(IterableDataset):
    """Samples of a list of shards for one rank; see the module docstring for the policy."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        shuffle_buffer: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        split: SplitMode = "shard",
        even: EvenPolicy = "pad",
        shard_sizes: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if split not in ("shard", "sample") or even not in ("pad", "truncate", "none"):
            raise ValueError(f"split must be 'shard'|'sample' and even 'pad'|'truncate'|'none', "
                             f"got split={split!r}, even={even!r}")
        self.urls = list(urls)
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.split = split
        self.even = even
        self.epoch = 0
        self._sizes = dict(shard_sizes) if shard_sizes else {}

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for this epoch (same shard order on all ranks)."""
        self.epoch = epoch

    def shard_size(self, url: str) -> int:
        if url not in self._sizes:
            self._sizes[url] = count_samples(url)
        return self._sizes[url]

    # -- planning (pure, identical on every rank) ----------------------------------------------

    def _epoch_urls(self) -> list[str]:
        urls = list(self.urls)
        if self.shuffle_buffer > 0:
            random.Random(f"{self.seed}-{self.epoch}").shuffle(urls)
        return urls

    def _mode(self, num_slots: int) -> SplitMode:
        if self.split == "shard" and len(self.urls) < num_slots:
            logger.info("%d shards < %d rank*worker slots: splitting by sample", len(self.urls), num_slots)
            return "sample"
        return self.split

    def plan(self, num_workers: int = 1) -> tuple[SplitMode, list[list[list[str]]], list[int] | None]:
        """(mode, shards[rank][worker], quota per worker index or None for no balancing)."""
        urls = self._epoch_urls()
        slots = self.world_size * num_workers
        mode = self._mode(slots)
        if mode == "shard":
            # Slot s = k * world_size + r: consecutive shards go to different ranks first.
            shards = [[urls[k * self.world_size + r :: slots] for k in range(num_workers)]
                      for r in range(self.world_size)]
        else:
            shards = [[urls] * num_workers for _ in range(self.world_size)]
        if self.even == "none":
            return mode, shards, None
        if mode == "shard":
            counts = [[sum(self.shard_size(u) for u in ws) for ws in rank] for rank in shards]
        else:
            counts = _slot_counts_by_sample(sum(self.shard_size(u) for u in urls),
                                            self.world_size, num_workers)
        pick = max if self.even == "pad" else min
        quota = [pick(counts[r][k] for r in range(self.world_size)) for k in range(num_workers)]
        return mode, shards, quota

    def samples_per_rank(self, num_workers: int = 1) -> int | None:
        """Samples this rank yields per epoch under the balancing policy (None for even='none')."""
        _, _, quota = self.plan(num_workers)
        return None if quota is None else sum(quota)

    # -- iteration -----------------------------------------------------------------------------

    def _raw(self, urls: list[str], keep) -> Iterator[dict]:
        """Raw webdataset samples of `urls` in order, those whose running index passes `keep`."""
        index = 0
        for url in urls:
            try:
                for raw in tar_samples(url):
                    if keep(index):
                        yield raw
                    index += 1
            except ShardFormatError as exc:  # the shard's readable samples came first; go on with the next
                logger.warning("skipping the rest of a shard: %s", exc)

    def _decoded(self, raws: Iterator[dict]) -> Iterator[Sample]:
        for raw in raws:
            try:
                yield decode_sample(raw)
            except ShardFormatError as exc:
                logger.warning("skipping corrupt sample %s in %s: %s",
                               raw.get("__key__", "?"), raw.get("__url__", "?"), exc)

    def _stream(self, mode: SplitMode, urls: list[str], worker: int, num_workers: int,
                rng: random.Random) -> Iterator[Sample]:
        if mode == "shard":
            raws = self._raw(urls, lambda i: True)
        else:
            w, r = self.world_size, self.rank
            raws = self._raw(urls, lambda i: i % w == r and (i // w) % num_workers == worker)
        samples = self._decoded(raws)
        if self.shuffle_buffer > 0:
            samples = wds.filters.shuffle(self.shuffle_buffer, min(100, self.shuffle_buffer), rng=rng)(samples)
        return samples

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        mode, shards, quota = self.plan(num_workers)
        urls = shards[self.rank][worker]
        if self.world_size > 1:  # which rank reads what, once per epoch and worker: the split is visible in the log
            logger.info("rank %d/%d worker %d/%d epoch %d reads %s", self.rank, self.world_size, worker, num_workers,
                        self.epoch, _describe(mode, urls, self.world_size, self.rank))
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}-{worker}")
        if quota is None:
            yield from self._stream(mode, urls, worker, num_workers, rng)
            return
        target, done = quota[worker], 0
        for sample in self._stream(mode, urls, worker, num_workers, rng):
            if done == target:
                return
            yield sample
            done += 1
        while done < target:  # repeat this slot's own samples (fresh order) to reach the quota
            again = 0
            for sample in self._stream(mode, urls, worker, num_workers, rng):
                if done == target:
                    return
                yield sample
                done += 1
                again += 1
            if again == 0:
                logger.error("rank %d worker %d has no readable sample to pad with (%d of %d): "
                             "ranks will be uneven", self.rank, worker, done, target)
                return


def _describe(mode: SplitMode, urls: Sequence[str], world_size: int, rank: int, most: int = 8) -> str:
    names = [Path(u).name for u in urls]
    if mode == "sample":
        return f"every {world_size}th sample (from #{rank}) of {len(names)} shards"
    more = f" +{len(names) - most} more" if len(names) > most else ""
    return f"shards {', '.join(names[:most])}{more}"


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_samples(
    urls: str | Path | Sequence[str],
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    split: SplitMode = "shard",
    even: EvenPolicy = "pad",
    shard_sizes: dict[str, int] | None = None,
) -> ShardSamples:
    """An IterableDataset of `Sample`s over shards, split across ranks and workers.

    Args:
        urls: anything `list_shards` accepts.
        shuffle_buffer: sample shuffle buffer per worker (0: no shuffling at all,
            shards in the given order); > 0 also shuffles the shard order per epoch.
        seed: base seed; the epoch (`set_epoch`) is mixed in.
        rank, world_size: this process's place; default from torch.distributed
            when it is initialised (construct the dataset after
            `init_process_group`), else 0 and 1.
        split: "shard" or "sample" (see the module docstring).
        even: "pad", "truncate" or "none": how uneven ranks are balanced.
        shard_sizes: samples per shard URL, if known (skips counting).
    """
    default_rank, default_world = _distributed()
    return ShardSamples(
        list_shards(urls),
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        rank=default_rank if rank is None else rank,
        world_size=default_world if world_size is None else world_size,
        split=split,
        even=even,
        shard_sizes=shard_sizes,
    )
