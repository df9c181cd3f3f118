"""Tests of lmmsn/data/latents.py (latent batches for tokenizer training)."""

import random

import pytest
import torch

from lmmsn.data.latents import (
    LatentDataConfig,
    crop_or_pad,
    latent_loader,
    latent_statistics,
    write_fixture_shards,
)


def test_crop_or_pad():
    x = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3)  # [10, 3]
    short, mask = crop_or_pad(x[:4], 6)
    assert short.shape == (6, 3) and mask.tolist() == [True] * 4 + [False] * 2
    assert torch.equal(short[:4], x[:4]) and torch.equal(short[4:], torch.zeros(2, 3))
    head, mask = crop_or_pad(x, 6)
    assert torch.equal(head, x[:6]) and mask.all()
    starts = {int(crop_or_pad(x, 6, random.Random(s))[0][0, 0]) for s in range(50)}
    assert starts == {0, 1, 2, 3, 4}  # every window start is reachable, none past the end


def test_fixture_loader_batches(tmp_path):
    config = LatentDataConfig(fixture_dir=str(tmp_path), fixture_samples=8, fixture_frames=5, max_frames=7,
                              batch_size=3, num_workers=0, shuffle_buffer=4)
    train, val = write_fixture_shards(tmp_path, config, latent_dim=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fixture-train-000000.tar", "fixture-val-000000.tar"]
    batches = iter(latent_loader(train, config, latent_dim=4, train=True))
    seen = [next(batches) for _ in range(6)]  # more than one epoch: the training stream is endless
    for batch in seen:
        assert batch["latents"].shape == (3, 7, 4) and batch["mask"].shape == (3, 7)
        assert batch["mask"].sum(1).tolist() == [5, 5, 5]
        assert torch.equal(batch["latents"][:, 5:], torch.zeros(3, 2, 4))
    val_batches = list(latent_loader(val, config, latent_dim=4, train=False))
    assert sum(b["latents"].shape[0] for b in val_batches) == 2  # one epoch, 8 // 4 clips
    with pytest.raises(ValueError, match="latent dim 4 != model latent dim 8"):
        next(iter(latent_loader(train, config, latent_dim=8, train=True)))


def test_config_needs_a_data_source():
    with pytest.raises(ValueError, match="train_shards"):
        LatentDataConfig()


def test_latent_statistics_use_valid_frames_only(tmp_path):
    import math

    import webdataset as wds

    from lmmsn.data.format import encode_sample

    meta = {"captions": [], "dataset": "x", "source_path": "x", "offset_s": 0.0, "duration_s": 1.0, "sample_rate": 1}
    with wds.TarWriter(str(tmp_path / "s.tar")) as sink:
        sink.write(encode_sample("a", {**meta, "num_frames": 2}, latent=torch.tensor([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]])))
        sink.write(encode_sample("b", meta, latent=torch.tensor([[5.0, 6.0]])))
    stats = latent_statistics(tmp_path)
    # valid frames (1,2) (3,4) (5,6): mean (3, 4); variance per dim (4 + 0 + 4) / 3; the padding frame is left out
    assert stats["frames"] == 3 and stats["mean"] == [3.0, 4.0] == stats["latent_mean"]
    assert stats["centred_std"] == pytest.approx(math.sqrt(8 / 3))
    assert stats["latent_scale"] == pytest.approx(1 / math.sqrt(8 / 3), rel=1e-5)
    # raw std over all 6 entries (1..6): population variance 35/12
    assert stats["raw_std"] == pytest.approx(math.sqrt(35 / 12))
