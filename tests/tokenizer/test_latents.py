"""Tests of tokenizer/latents.py (latent batches for tokenizer training)."""

import random

import pytest
import torch

from lmmsn.tokenizer.latents import (
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


def _write_clips(path, clips):
    import webdataset as wds

    from lmmsn.data.format import encode_sample

    meta = {"captions": [], "dataset": "x", "source_path": "x", "offset_s": 0.0, "duration_s": 1.0, "sample_rate": 1}
    with wds.TarWriter(str(path)) as sink:
        for i, clip in enumerate(clips):
            sink.write(encode_sample(f"c{i:03d}", {**meta, "num_frames": clip.shape[0]}, latent=clip))


def test_packing_fills_windows_with_consecutive_clips_and_no_padding(tmp_path):
    # clip i is the constant i + 1 over its frames: windows show which clips they hold
    lengths = [3, 2, 4, 1, 5, 2, 3]
    clips = [torch.full((n, 2), float(i + 1)) for i, n in enumerate(lengths)]
    _write_clips(tmp_path / "s.tar", clips)
    config = LatentDataConfig(train_shards=str(tmp_path), max_frames=4, batch_size=1, num_workers=0, shuffle_buffer=0,
                              pack=True)
    batches = iter(latent_loader(str(tmp_path / "s.tar"), config, latent_dim=2, train=True))
    windows = [next(batches) for _ in range(5)]
    assert all(bool(b["mask"].all()) for b in windows)  # packed windows have no padding at all
    values = [b["latents"][0, :, 0].tolist() for b in windows]
    # file order (no shuffling); clips as long as a window (3: 4 frames, 5: 5 frames) fill one alone (a crop),
    # shorter ones are concatenated and the remainder of the last one starts the next packed window
    assert values[0] == [1, 1, 1, 2]
    assert values[1] == [3, 3, 3, 3]
    assert values[2] == [5, 5, 5, 5]
    assert values[3] == [2, 4, 6, 6]
    # the stream is endless; an epoch's remainder ([7, 7, 7]) is dropped, so every epoch packs the same way
    # whatever epoch a resumed run starts in: epoch 2 starts afresh
    assert values[4] == [1, 1, 1, 2]
    unpacked = LatentDataConfig(train_shards=str(tmp_path), max_frames=4, batch_size=1, num_workers=0, shuffle_buffer=0)
    first = next(iter(latent_loader(str(tmp_path / "s.tar"), unpacked, latent_dim=2, train=True)))
    assert first["mask"][0].tolist() == [True, True, True, False]  # without packing: padded


@pytest.mark.parametrize("options", [{"pack": True}, {"in_memory": True}, {"shuffle_buffer": 4}], ids=str)
def test_resumed_stream_continues_where_the_positions_say(tmp_path, options):
    """Exact resume: a stream restarted at the position of batch k yields batches k+1, k+2, ... of the straight stream,
    across an epoch boundary, for packed, in-memory and shuffled reading."""
    lengths = [3, 2, 4, 1, 5, 2, 3, 6, 1, 2]
    clips = [torch.full((n, 2), float(i + 1)) + 0.01 * torch.arange(n)[:, None] for i, n in enumerate(lengths)]
    _write_clips(tmp_path / "s.tar", clips)
    config = LatentDataConfig(train_shards=str(tmp_path), max_frames=4, batch_size=2, num_workers=0,
                              seed=3, **{"shuffle_buffer": 0, **options})
    url = str(tmp_path / "s.tar")
    straight = iter(latent_loader(url, config, latent_dim=2, train=True))
    batches = [next(straight) for _ in range(9)]  # 3-5 windows per epoch: crosses epoch boundaries
    assert len({int(b["position"][1]) for b in batches}) >= 2
    for k in (2, 4):
        worker, epoch, done = batches[k]["position"].tolist()
        resumed = iter(latent_loader(url, config, latent_dim=2, train=True, resume={worker: (epoch, done)}))
        for expected in batches[k + 1 : k + 4]:
            got = next(resumed)
            assert torch.equal(got["latents"], expected["latents"]) and torch.equal(got["position"], expected["position"])
    fresh = next(iter(latent_loader(url, config, latent_dim=2, train=True)))
    assert torch.equal(fresh["latents"], batches[0]["latents"])  # no position: the stream starts at epoch 0


def test_in_memory_reads_each_clip_once_per_epoch(tmp_path):
    clips = [torch.full((2, 2), float(i)) for i in range(6)]
    _write_clips(tmp_path / "s.tar", clips)
    config = LatentDataConfig(train_shards=str(tmp_path), max_frames=2, batch_size=6, num_workers=0, shuffle_buffer=0,
                              in_memory=True)
    batches = iter(latent_loader(str(tmp_path / "s.tar"), config, latent_dim=2, train=True))
    for _ in range(3):  # each epoch is a permutation of the 6 clips
        batch = next(batches)
        assert sorted(batch["latents"][:, 0, 0].tolist()) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize("mode", ["global", "per_dim"])
def test_prepare_data_measures_the_normalization(tmp_path, mode):
    from lmmsn.tokenizer.model import tokenizer_config
    from lmmsn.training.tokenizer_module import TrainTokenizerConfig, prepare_data

    # dim 0 ~ mean 10, std 2; dim 1..7 ~ mean -1, std 0.5 (the tiny VAE's 8 dims)
    gen = torch.Generator().manual_seed(0)
    clips = []
    for _ in range(20):
        z = torch.randn(50, 8, generator=gen) * 0.5 - 1.0
        z[:, 0] = torch.randn(50, generator=gen) * 2.0 + 10.0
        clips.append(z)
    _write_clips(tmp_path / "s.tar", clips)
    config = TrainTokenizerConfig(model=tokenizer_config("tiny"),
                                  data=LatentDataConfig(train_shards=str(tmp_path / "s.tar"), normalize=mode))
    prepared = prepare_data(config)
    frames = torch.cat(clips).half().double()  # shards store float16
    mean, std = frames.mean(0), frames.std(0, unbiased=False)
    assert prepared.model.latent_mean == pytest.approx(mean.tolist(), abs=1e-5)
    scale = prepared.model.latent_scale
    if mode == "per_dim":
        assert scale == pytest.approx((1 / std).tolist(), rel=1e-4)
    else:
        assert scale == pytest.approx(float(1 / std.pow(2).mean().sqrt()), rel=1e-4)
    from lmmsn.tokenizer.model import build_tokenizer

    normalized = build_tokenizer(prepared.model, with_vae=False).normalize(frames.float())
    if mode == "per_dim":
        torch.testing.assert_close(normalized.std(0, unbiased=False), torch.ones(8), atol=1e-3, rtol=0)
    else:
        assert float(normalized.pow(2).mean()) == pytest.approx(1.0, rel=1e-3)


def test_balance_by_category_evens_out_rare_groups(tmp_path):
    import webdataset as wds

    from lmmsn.data.format import encode_sample

    meta = {"captions": [], "dataset": "x", "source_path": "x", "offset_s": 0.0, "duration_s": 1.0, "sample_rate": 1}
    with wds.TarWriter(str(tmp_path / "s.tar")) as sink:
        for i in range(40):  # 36 clips of 'common' (value 0), 4 of 'rare' (value 1)
            rare = i % 10 == 0
            clip = torch.full((2, 2), 1.0 if rare else 0.0)
            sink.write(encode_sample(f"c{i:03d}", {**meta, "num_frames": 2, "category": "rare" if rare else "common"}, latent=clip))
    seen = {}
    for power in (0.0, 1.0):
        config = LatentDataConfig(train_shards=str(tmp_path), max_frames=2, batch_size=40, num_workers=0, shuffle_buffer=0,
                                  in_memory=True, balance_by="category", balance_power=power)
        batches = iter(latent_loader(str(tmp_path / "s.tar"), config, latent_dim=2, train=True))
        seen[power] = sum(float(next(batches)["latents"][:, 0, 0].mean()) for _ in range(10)) / 10
    assert seen[0.0] == pytest.approx(0.1, abs=0.03)  # unbalanced: 10% rare
    assert seen[1.0] == pytest.approx(0.5, abs=0.1)  # fully balanced: half rare
    with pytest.raises(ValueError, match="in_memory"):
        LatentDataConfig(train_shards="x", balance_by="category")
