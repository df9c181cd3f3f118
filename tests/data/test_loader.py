"""Tests of lmmsn/data/loader.py: shard listing, rank/worker splitting, balancing, corrupt samples."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from lmmsn.data.format import encode_sample
from lmmsn.data.loader import list_shards, shard_samples


def meta(key: str) -> dict:
    return {"captions": [key], "dataset": "t", "source_path": key, "offset_s": 0.0,
            "duration_s": 1.0, "sample_rate": 16000}


def write_shards(root: Path, counts: list[int]) -> list[str]:
    """Shards root/shard-00000i.tar holding counts[i] samples with keys s<i>_<j>; returns all keys."""
    root.mkdir(parents=True, exist_ok=True)
    keys = []
    for i, n in enumerate(counts):
        with wds.TarWriter(str(root / f"shard-{i:06d}.tar")) as sink:
            for j in range(n):
                key = f"s{i}_{j}"
                latent = np.full((3, 2), i * 100 + j, dtype=np.float32)
                sink.write(encode_sample(key, meta(key), latent=latent))
                keys.append(key)
    return keys


def read_keys(dataset, num_workers: int) -> list[str]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=num_workers,
                                         collate_fn=lambda batch: [s.key for s in batch])
    return [key for batch in loader for key in batch]


def test_list_shards_forms(tmp_path: Path) -> None:
    write_shards(tmp_path / "d", [1, 1, 1])
    d = tmp_path / "d"
    names = [str(d / f"shard-{i:06d}.tar") for i in range(3)]
    assert list_shards(d) == names
    assert list_shards(str(d / "*.tar")) == names
    assert list_shards(str(d / "shard-{000000..000001}.tar")) == names[:2]
    assert list_shards([names[2], names[0]]) == [names[2], names[0]]
    with pytest.raises(FileNotFoundError, match="nope"):
        list_shards(tmp_path / "nope" / "*.tar")


@pytest.mark.parametrize("split", ["shard", "sample"])
def test_each_sample_once_per_epoch_two_ranks_two_workers(tmp_path: Path, split: str) -> None:
    keys = write_shards(tmp_path, [3, 3, 3, 3])
    orders = []
    for epoch in range(2):
        seen = []
        for rank in range(2):
            ds = shard_samples(tmp_path, shuffle_buffer=4, seed=1, rank=rank, world_size=2, split=split)
            ds.set_epoch(epoch)
            got = read_keys(ds, num_workers=2)
            assert len(got) == 6  # balanced: same count on both ranks
            seen += got
        assert Counter(seen) == Counter(keys)  # every key exactly once across ranks and workers
        orders.append(seen)
    assert orders[0] != orders[1]  # set_epoch reshuffles


def test_even_none_exactly_once_on_uneven_shards(tmp_path: Path) -> None:
    keys = write_shards(tmp_path, [5, 1, 2])
    seen = []
    for rank in range(2):
        seen += read_keys(shard_samples(tmp_path, rank=rank, world_size=2, even="none"), 0)
    assert Counter(seen) == Counter(keys)


@pytest.mark.parametrize("even", ["pad", "truncate"])
def test_uneven_shards_balanced(tmp_path: Path, even: str) -> None:
    keys = write_shards(tmp_path, [5, 1, 2, 4])  # rank 0: shards 0, 2 (7); rank 1: shards 1, 3 (5)
    per_rank = []
    for rank in range(2):
        ds = shard_samples(tmp_path, rank=rank, world_size=2, even=even)
        got = read_keys(ds, num_workers=1)
        assert len(got) == ds.samples_per_rank(1)
        per_rank.append(got)
    assert len(per_rank[0]) == len(per_rank[1]) == (7 if even == "pad" else 5)
    seen = per_rank[0] + per_rank[1]
    if even == "pad":
        assert set(seen) == set(keys)  # nothing lost; two repeats fill rank 1
    else:
        assert len(set(seen)) == len(seen)  # no repeats; two dropped


def test_sample_split_when_fewer_shards_than_slots(tmp_path: Path) -> None:
    keys = write_shards(tmp_path, [7])
    seen = []
    for rank in range(2):
        got = read_keys(shard_samples(tmp_path, rank=rank, world_size=2, even="truncate"), 2)
        assert len(got) == 3  # 7 samples over 2 ranks x 2 workers: 2+1 per rank after truncation
        seen += got
    assert len(set(seen)) == 6 and set(seen) <= set(keys)


def test_corrupt_sample_skipped_with_warning(tmp_path: Path, caplog) -> None:
    write_shards(tmp_path, [2])
    bad = encode_sample("broken", meta("broken"), latent=np.zeros((3, 2), np.float32))
    bad["latent.npy"] = b"not an npy"
    with wds.TarWriter(str(tmp_path / "shard-000001.tar")) as sink:
        sink.write(bad)
        sink.write(encode_sample("ok", meta("ok"), latent=np.zeros((3, 2), np.float32)))
    with caplog.at_level(logging.WARNING, logger="lmmsn.data.loader"):
        samples = list(shard_samples(tmp_path, even="none"))
    assert [s.key for s in samples] == ["s0_0", "s0_1", "ok"]
    assert samples[1].latent.shape == (3, 2) and samples[1].latent[0, 0] == 1
    assert any("broken" in r.message and "shard-000001.tar" in r.message for r in caplog.records)


def _gloo_rank(rank: int, world_size: int, shards: str, init: str, out: str) -> None:
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    try:
        dataset = shard_samples(shards, shuffle_buffer=3, seed=5)  # rank/world from torch.distributed
        per_epoch = []
        for epoch in range(2):
            dataset.set_epoch(epoch)
            keys = [s.key for s in dataset]
            gathered = [None] * world_size
            dist.all_gather_object(gathered, keys)
            per_epoch.append(gathered)
        if rank == 0:
            Path(out).write_text(json.dumps(per_epoch))
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_run(tmp_path: Path) -> None:
    """A real 2-process torch.distributed (gloo) group: ranks come from dist, each key once per epoch."""
    import json

    import torch.multiprocessing as mp

    keys = write_shards(tmp_path / "shards", [3, 3, 3, 3])
    out = tmp_path / "keys.json"
    init = f"file://{tmp_path / 'store'}"
    context = mp.start_processes(_gloo_rank, args=(2, str(tmp_path / "shards"), init, str(out)), nprocs=2,
                                 join=False, start_method="fork")
    while not context.join(timeout=120):
        pass
    for gathered in json.loads(out.read_text()):
        assert len(gathered[0]) == len(gathered[1]) == 6
        assert Counter(gathered[0] + gathered[1]) == Counter(keys)
