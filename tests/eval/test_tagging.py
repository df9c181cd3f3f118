"""Tests for eval.tagging: the divergences against hand values; YAMNet agreement on made-up pairs; the CLI."""

import json
import math

import numpy as np
import pytest
import torch

from eval.judges import MissingJudge, YamNet
from eval.tagging import compare_clips, kl_bernoulli, kl_softmax, main
from lmmsn.audio import save_audio

SR = 16000


@pytest.fixture(scope="module")
def yamnet():
    try:
        return YamNet.load(threads=1)
    except MissingJudge as exc:
        pytest.skip(f"YAMNet judge not installed: {exc}")


def test_kl_softmax_by_hand():
    assert kl_softmax(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]) + 7.0) == pytest.approx(0.0, abs=1e-12)  # shift-invariant
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    exact = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl_softmax(np.log(p), np.log(q)) == pytest.approx(exact, rel=1e-9)
    assert kl_softmax(np.log(q), np.log(p)) != pytest.approx(exact, rel=1e-3)  # direction matters


def test_kl_bernoulli_by_hand():
    p, q = np.array([0.2, 0.7]), np.array([0.4, 0.7])
    exact = 0.2 * math.log(0.2 / 0.4) + 0.8 * math.log(0.8 / 0.6)
    assert kl_bernoulli(p, q) == pytest.approx(exact, rel=1e-9)
    assert kl_bernoulli(p, p) == pytest.approx(0.0, abs=1e-12)
    assert kl_bernoulli(np.array([0.0]), np.array([1.0])) < 20  # clamped, finite


def _tone(freq, seconds=2.0):
    t = torch.arange(int(seconds * SR)) / SR
    return 0.5 * torch.sin(2 * math.pi * freq * t)[None]


def _noise(seed, seconds=2.0):
    return 0.3 * torch.randn(1, int(seconds * SR), generator=torch.Generator().manual_seed(seed))


def test_same_clip_agrees_unrelated_does_not(yamnet):
    tone = _tone(440.0)
    slightly = tone + 0.003 * _noise(5)  # a faithful "reconstruction"
    same = compare_clips(yamnet, (tone, SR), (tone, SR))
    close = compare_clips(yamnet, (tone, SR), (slightly, SR))
    other = compare_clips(yamnet, (tone, SR), (_noise(1), SR))
    assert same["agree"] and same["kl_softmax"] == pytest.approx(0.0, abs=1e-9) and same["embedding_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert close["agree"] and close["kl_softmax"] < 0.5
    assert not other["agree"]
    assert other["kl_softmax"] > 5 * max(close["kl_softmax"], 0.05) and other["kl_bernoulli"] > 5 * max(close["kl_bernoulli"], 0.05)
    assert other["embedding_cosine"] < close["embedding_cosine"]


def test_cli_pairs_by_stem_and_counts_bad_files(yamnet, tmp_path):
    ref, rec = tmp_path / "ref", tmp_path / "rec"
    for d in (ref, rec):
        d.mkdir()
    save_audio(ref / "a.wav", _tone(440.0), SR)
    save_audio(ref / "b.wav", _noise(0), SR)
    save_audio(ref / "only_ref.wav", _noise(3), SR)
    save_audio(rec / "a.wav", _tone(440.0) + 0.003 * _noise(4), SR)
    save_audio(rec / "b.wav", _tone(880.0), SR)  # wrong kind of sound
    (rec / "only_ref.wav").write_bytes(b"not audio")  # undecodable: counted, not fatal
    res = main(["--reference", str(ref), "--system", f"rec={rec}", "--out", str(tmp_path / "out"), "--threads", "1"])
    r = res["systems"]["rec"]
    assert r["pairs"] == 2 and len(r["errors"]) == 1 and "only_ref" in r["errors"][0]["system"]
    assert r["top1_agreement"] == pytest.approx(0.5)
    assert [it["agree"] for it in r["items"]] == [True, False]
    data = json.loads((tmp_path / "out" / "tagging.json").read_text())
    assert data["judge"]["weights_sha256"] == yamnet.info()["weights_sha256"] and data["environment"]["batch_size"] == 1
    assert "top-1 agreement" in (tmp_path / "out" / "tagging.md").read_text()
