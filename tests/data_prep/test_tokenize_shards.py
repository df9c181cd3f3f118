"""Tests of data_prep/tokenize_shards.py: codes match the tokenizer, members kept, skips listed, resume."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from data_prep.tokenize_shards import ShardTokenizer, TokenizeConfig, main
from lmmsn.data.format import encode_sample
from lmmsn.data.loader import shard_samples
from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

FRAMES, DIM = 12, 8  # the tiny tokenizer's latent dim is 8
GOOD_PER_SHARD = 4


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_tokenizer(tokenizer_config("tiny"), with_vae=False)
    return model.save_pretrained(tmp_path_factory.mktemp("tok") / "export")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Two latent shards like make_shards writes (+ index.json): good samples, one corrupt and one NaN latent."""
    root = tmp_path_factory.mktemp("latents")
    rng = np.random.default_rng(0)
    expected: dict[str, dict] = {}
    entries = []
    for shard in range(2):
        name = f"shard-{shard:06d}.tar"
        with wds.TarWriter(str(root / name)) as sink:
            for i in range(GOOD_PER_SHARD):
                key = f"s{shard}_{i}"
                latent = rng.standard_normal((FRAMES, DIM)).astype(np.float16)
                meta = {"captions": [f"clip {key}"], "dataset": "fixture", "source_path": f"{key}.wav", "offset_s": 0.0,
                        "duration_s": 0.5, "sample_rate": 16000, "num_frames": FRAMES - 3 * i}
                sample = encode_sample(key, meta, latent=latent, flac=b"fLaC-bytes-" + key.encode())
                sink.write(sample)
                expected[key] = {"latent": latent, "num_frames": FRAMES - 3 * i, "raw": sample}
            bad_meta = {"captions": ["x"], "dataset": "fixture", "source_path": "bad.wav", "offset_s": 0.0,
                        "duration_s": 0.5, "sample_rate": 16000}
            sink.write({"__key__": f"corrupt{shard}", "json": json.dumps(bad_meta).encode(), "latent.npy": b"not npy"})
            nan = np.full((FRAMES, DIM), np.nan, dtype=np.float16)
            sink.write(encode_sample(f"nan{shard}", bad_meta, latent=nan))
        entries.append({"name": name, "samples": GOOD_PER_SHARD + 2, "hours": 0.0, "bytes": (root / name).stat().st_size})
    index = {"format_version": 1, "num_samples": 12, "num_skipped": 1, "shards": entries,
             "skipped": [{"path": "gone.wav", "reason": "no such file"}], "latent": {"frames": FRAMES}}
    (root / "index.json").write_text(json.dumps(index))
    return root, expected


def expected_codes(tokenizer_dir: Path, latent: np.ndarray, keep: int) -> torch.Tensor:
    from lmmsn.tokenizer.model import AudioTokenizer

    model = AudioTokenizer.from_pretrained(tokenizer_dir, with_vae=False)
    with torch.no_grad():
        return model.encode_latents(torch.from_numpy(latent.astype(np.float32))[None])[0, :keep]


def raw_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


def test_codes_members_index_and_skips(shards, tokenizer_dir: Path, tmp_path: Path) -> None:
    root, expected = shards
    index = main(["--shards", str(root), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path), "--batch-size", "3",
                  "--threads", "1"])
    samples = list(shard_samples(tmp_path, even="none"))
    assert sorted(s.key for s in samples) == sorted(expected)  # each good sample exactly once, broken ones left out
    for s in samples:
        want = expected[s.key]
        assert s.codes.shape == (want["num_frames"],)  # cut to the true length
        assert torch.equal(s.codes, expected_codes(tokenizer_dir, want["latent"], want["num_frames"]))
        # the encoder is causal: the cut codes are those of the unpadded latent alone
        alone = expected_codes(tokenizer_dir, want["latent"][: want["num_frames"]], want["num_frames"])
        assert torch.equal(s.codes, alone)
    members = raw_members(tmp_path / "shard-000000.tar")
    for key in ("s0_0", "s0_3"):  # original members byte-identical
        for ext in ("json", "latent.npy", "flac"):
            assert members[f"{key}.{ext}"] == expected[key]["raw"][ext]
    reasons = {e["key"]: e["reason"] for e in index["codes"]["skipped"]}
    assert set(reasons) == {"corrupt0", "corrupt1", "nan0", "nan1"}
    assert "not a valid .npy" in reasons["corrupt0"] and "non-finite" in reasons["nan1"]
    assert index["num_samples"] == 2 * GOOD_PER_SHARD and [e["samples"] for e in index["shards"]] == [4, 4]
    assert index["num_skipped"] == 1 + 4 and index["skipped"][0]["path"] == "gone.wav"  # make_shards' skips kept
    assert index["latent"] == {"frames": FRAMES} and index["codes"]["codebook_size"] == 32
    assert index["codes"]["trimmed_to_num_frames"] is True


def test_keep_padding(shards, tokenizer_dir: Path, tmp_path: Path) -> None:
    root, expected = shards
    ShardTokenizer(TokenizeConfig(shards=str(root / "shard-000001.tar"), tokenizer=str(tokenizer_dir), out=str(tmp_path),
                                  keep_padding=True)).run()
    for s in shard_samples(tmp_path, even="none"):
        assert torch.equal(s.codes, expected_codes(tokenizer_dir, expected[s.key]["latent"], FRAMES))


def test_resume_redoes_only_incomplete_shards(shards, tokenizer_dir: Path, tmp_path: Path) -> None:
    root, _ = shards
    config = TokenizeConfig(shards=str(root), tokenizer=str(tokenizer_dir), out=str(tmp_path), batch_size=2)
    ShardTokenizer(config).run()
    first = {p.name: raw_members(p) for p in tmp_path.glob("*.tar")}
    kept_mtime = (tmp_path / "shard-000000.tar").stat().st_mtime_ns
    # an interrupted second shard: its stats file missing, a partial tar left behind
    (tmp_path / "shard-000001.json").unlink()
    (tmp_path / "shard-000001.tar").rename(tmp_path / "shard-000001.tar.tmp")
    index = ShardTokenizer(config).run()
    assert (tmp_path / "shard-000000.tar").stat().st_mtime_ns == kept_mtime  # complete shard not redone
    assert not list(tmp_path.glob("*.tmp"))
    assert {p.name: raw_members(p) for p in tmp_path.glob("*.tar")} == first  # same members (tar mtimes differ)
    assert index["codes"]["last_run"]["samples"] == GOOD_PER_SHARD  # only the redone shard was encoded


def test_refuses_to_write_into_the_input_folder(shards, tokenizer_dir: Path) -> None:
    root, _ = shards
    with pytest.raises(SystemExit, match="input folder"):
        ShardTokenizer(TokenizeConfig(shards=str(root), tokenizer=str(tokenizer_dir), out=str(root)))


def test_refuses_to_mix_codes_of_two_tokenizers(shards, tokenizer_dir: Path, tmp_path: Path) -> None:
    root, _ = shards
    ShardTokenizer(TokenizeConfig(shards=str(root), tokenizer=str(tokenizer_dir), out=str(tmp_path / "codes"))).run()
    torch.manual_seed(1)
    other = build_tokenizer(tokenizer_config("tiny"), with_vae=False).save_pretrained(tmp_path / "other")
    with pytest.raises(SystemExit, match="another tokenizer"):
        ShardTokenizer(TokenizeConfig(shards=str(root), tokenizer=str(other), out=str(tmp_path / "codes"))).run()
    with pytest.raises(SystemExit, match="keep-padding"):
        ShardTokenizer(TokenizeConfig(shards=str(root), tokenizer=str(tokenizer_dir), out=str(tmp_path / "codes"),
                                      keep_padding=True)).run()
