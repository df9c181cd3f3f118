"""Tests of lmmsn/data/format.py: encode/decode round trip, storage dtypes, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import webdataset as wds

from lmmsn.data.format import REQUIRED_META, Sample, ShardFormatError, decode_sample, encode_sample

META = {"captions": ["a dog"], "dataset": "t", "source_path": "x.wav", "offset_s": 0.0, "duration_s": 1.0,
        "sample_rate": 44100}


def test_round_trip_through_a_tar(tmp_path) -> None:
    latent = torch.randn(5, 4)
    codes = torch.tensor([0, 7, 8195, 32767, 3])
    with wds.TarWriter(str(tmp_path / "s.tar")) as sink:
        sink.write(encode_sample("k1", {**META, "num_frames": 3}, latent=latent, codes=codes, flac=b"fLaC"))
    (raw,) = list(wds.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False))
    sample = decode_sample(raw)
    assert sample.key == "k1" and sample.meta["captions"] == ["a dog"] and sample.flac == b"fLaC"
    assert sample.latent.dtype == torch.float32 and sample.codes.dtype == torch.int64
    torch.testing.assert_close(sample.latent, latent.half().float())  # stored as float16
    assert sample.codes.tolist() == codes.tolist() and sample.num_frames == 3
    assert np.load(io.BytesIO(raw["latent.npy"])).dtype == np.float16
    assert np.load(io.BytesIO(raw["codes.npy"])).dtype == np.int16


def test_num_frames_falls_back_to_arrays() -> None:
    assert Sample("k", {}, latent=torch.zeros(6, 2)).num_frames == 6
    assert Sample("k", {}, codes=torch.zeros(4, dtype=torch.long)).num_frames == 4
    with pytest.raises(ShardFormatError, match="k"):
        _ = Sample("k", {}).num_frames


@pytest.mark.parametrize("missing", REQUIRED_META)
def test_missing_metadata_is_named(missing: str) -> None:
    meta = {k: v for k, v in META.items() if k != missing}
    with pytest.raises(ShardFormatError, match=missing):
        encode_sample("k", meta, latent=np.zeros((2, 2)))


def test_encode_rejects_bad_inputs() -> None:
    with pytest.raises(ShardFormatError, match="must not contain"):
        encode_sample("a.b", META)
    with pytest.raises(ShardFormatError, match=r"\[T, D\]"):
        encode_sample("k", META, latent=np.zeros(3))
    with pytest.raises(ShardFormatError, match="codes"):
        encode_sample("k", META, codes=np.array([40000]))
    with pytest.raises(ShardFormatError, match="codes"):
        encode_sample("k", META, codes=np.array([-1]))


def test_decode_errors_name_the_sample() -> None:
    with pytest.raises(ShardFormatError, match="k9.*no .json"):
        decode_sample({"__key__": "k9", "latent.npy": b""})
    with pytest.raises(ShardFormatError, match="k9.*not JSON"):
        decode_sample({"__key__": "k9", "json": b"{nope"})
    good = encode_sample("k9", META, latent=np.zeros((2, 2)))
    with pytest.raises(ShardFormatError, match="k9.*latent.npy"):
        decode_sample({**good, "latent.npy": good["latent.npy"][:20]})
