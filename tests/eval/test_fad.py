"""Tests for eval.fad: FAD against its closed form; the weights-free embedding and its cache."""

import numpy as np
import pytest
from scipy import linalg

from eval.fad import (
    EmbeddingCache,
    LogMelModel,
    build_embedding,
    fad_between_sets,
    fad_from_embeddings,
)
from lmmsn.audio import save_audio
from tests.conftest import sine


def test_identical_sets_give_zero():
    x = np.random.default_rng(0).normal(size=(500, 6))
    assert abs(fad_from_embeddings(x, x)) < 1e-6


def test_shifted_gaussians_match_closed_form():
    rng = np.random.default_rng(1)
    d, n = 3, 40000
    x = rng.normal(size=(n, d))  # N(0, I)
    y = 2.0 * rng.normal(size=(n, d)) + np.array([1.0, 2.0, 2.0])  # N(mu, 4I)
    got = fad_from_embeddings(x, y)
    # exact formula on the sample statistics, computed independently of fadtk
    m1, m2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    exact = float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))
    assert got == pytest.approx(exact, rel=1e-6)
    # population value by hand: ||mu||^2 = 9, Tr(I + 4I - 2*2I) = 3 -> 12
    assert got == pytest.approx(12.0, rel=0.03)


def test_logmel_embedding_and_cache(tmp_path):
    a = save_audio(tmp_path / "a.wav", sine(1.0, 16000, 1, 440.0), 16000)
    cache = EmbeddingCache(LogMelModel(), tmp_path / "cache")
    emb = cache.embed(a)
    assert emb.shape == (16000 // 512 + 1, 64)
    again = cache.embed(a)
    assert cache.computed == 1 and np.array_equal(emb, again)
    assert (tmp_path / "cache" / cache.model.name).is_dir() and "logmel64" in cache.model.name


def test_between_sets_separates_different_sounds(tmp_path):
    low = [save_audio(tmp_path / f"low{i}.wav", sine(0.5, 16000, 1, 300.0 + 10 * i), 16000) for i in range(4)]
    high = [save_audio(tmp_path / f"high{i}.wav", sine(0.5, 16000, 1, 5000.0 + 10 * i), 16000) for i in range(4)]
    res = fad_between_sets({"low": low, "high": high}, EmbeddingCache(LogMelModel(), tmp_path / "c"))
    m = res["matrix"]
    assert m["low"]["high"] > 10 * max(m["low"]["low"], m["high"]["high"], 1e-3)
    assert m["low"]["high"] == pytest.approx(m["high"]["low"], rel=1e-3)  # FAD is symmetric
    assert res["sets"]["low"]["files"] == 4


def test_models_with_weights_need_a_local_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="needs --checkpoint"):
        build_embedding("clap-laion-audio")
    with pytest.raises(ValueError, match="does not exist"):
        build_embedding("mert", str(tmp_path / "nope"))
    ml = build_embedding("hubert-base", str(tmp_path))
    assert ml.huggingface_id == str(tmp_path)  # fadtk's loader will read the local folder
