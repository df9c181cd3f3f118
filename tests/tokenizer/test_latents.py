"""Tests of lmmsn/data/latents.py (latent batches for tokenizer training)."""

import random

import pytest
import torch

from lmmsn.data.latents import LatentDataConfig, crop_or_pad, latent_loader, write_fixture_shards


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
