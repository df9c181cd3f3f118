"""Tests for eval.mos: DNSMOS (eval extra) separates clean from noisy voice; a TorchScript predictor is used as is."""

import math

import pytest
import torch

from eval.mos import DNSMOS, evaluate_mos, load_predictor
from lmmsn.audio import save_audio
from tests.conftest import sine


class MeanAbsTimesTen(torch.nn.Module):
    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # [B, N] -> [B]
        return wav.abs().mean(-1) * 10.0


def test_torchscript_predictor_scores_by_hand(tmp_path):
    path = tmp_path / "mos.pt"
    torch.jit.save(torch.jit.script(MeanAbsTimesTen()), str(path))
    loud = save_audio(tmp_path / "loud.wav", torch.full((1, 1600), 0.5), 16000)
    soft = save_audio(tmp_path / "soft.wav", torch.full((1, 1600), 0.1), 16000)
    (tmp_path / "bad.wav").write_bytes(b"nope")
    predictor, reason = load_predictor(str(path), 16000)
    assert predictor is not None and reason == ""
    res = evaluate_mos(predictor, {"s": [loud, soft, tmp_path / "bad.wav"]})
    assert res["status"] == "ok" and res["predictor_info"]["weights_sha256"]
    assert res["systems"]["s"]["mean"] == pytest.approx((5.0 + 1.0) / 2, rel=1e-3)
    assert res["systems"]["s"]["n"] == 2 and len(res["systems"]["s"]["errors"]) == 1  # counted, not fatal


def test_missing_predictor_is_unavailable(tmp_path, monkeypatch):
    wav = save_audio(tmp_path / "x.wav", sine(0.1, 16000), 16000)
    predictor, reason = load_predictor(str(tmp_path / "missing.pt"))
    res = evaluate_mos(predictor, {"s": [wav]}, reason)
    assert res["status"] == "unavailable" and "does not exist" in res["reason"] and "systems" not in res
    import importlib

    real = importlib.import_module

    def no_speechmos(name, *args):
        if name.startswith("speechmos"):
            raise ImportError("No module named 'speechmos'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_speechmos)
    predictor, reason = load_predictor(None)
    assert predictor is None and "'speechmos'" in reason and ".[eval]" in reason


def voiced(seconds: float = 5.0, sr: int = 16000) -> torch.Tensor:
    """A voice-like signal: 120 Hz harmonics under two formants, syllable-rate envelope."""
    t = torch.arange(int(seconds * sr)) / sr
    phase = 2 * math.pi * torch.cumsum(120 + 20 * torch.sin(2 * math.pi * 0.5 * t), 0) / sr
    v = sum(torch.sin(k * phase) * (math.exp(-(((k * 120 - 700) / 300) ** 2)) + 0.5 * math.exp(-(((k * 120 - 1200) / 400) ** 2))) for k in range(1, 30))
    env = (0.5 + 0.5 * torch.sin(2 * math.pi * 4 * t)).clamp_min(0) ** 2
    return (0.3 * v * env / v.abs().max())[None]  # [1, N]


def test_dnsmos_separates_clean_from_noisy(tmp_path):
    predictor, reason = load_predictor("dnsmos")
    if predictor is None:
        pytest.skip(f"DNSMOS judge not installed: {reason}")
    assert isinstance(predictor, DNSMOS) and isinstance(load_predictor(None)[0], DNSMOS)  # the default when installed
    clean = voiced()
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    files = {"clean": [save_audio(tmp_path / "clean.wav", clean, 16000)], "noisy": [save_audio(tmp_path / "noisy.wav", noisy, 16000)]}
    res = evaluate_mos(predictor, files)
    c, n = res["systems"]["clean"], res["systems"]["noisy"]
    assert c["means"]["bak"] > n["means"]["bak"] + 1.5  # background-noise score
    assert c["mean"] > n["mean"] + 0.5 and c["mean"] == c["means"]["p808"]
    assert all(1.0 <= v <= 5.0 for v in c["means"].values())
    info = res["predictor_info"]
    assert info["package"] == "speechmos" and set(info["weights_sha256"]) == {"p835", "p808"}
