"""Tests for eval.mos: a local TorchScript predictor is used as is; none -> unavailable."""

import pytest
import torch

from eval.mos import evaluate_mos, load_predictor
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
    predictor, reason = load_predictor(str(path), 16000)
    assert predictor is not None and reason == ""
    res = evaluate_mos(predictor, {"s": [loud, soft]})
    assert res["status"] == "ok"
    assert res["systems"]["s"]["mean"] == pytest.approx((5.0 + 1.0) / 2, rel=1e-3)


def test_no_predictor_is_unavailable(tmp_path):
    for path in (None, str(tmp_path / "missing.pt")):
        predictor, reason = load_predictor(path)
        res = evaluate_mos(predictor, {"s": [save_audio(tmp_path / "x.wav", sine(0.1, 16000), 16000)]}, reason)
        assert res["status"] == "unavailable" and reason and res["reason"] == reason and "systems" not in res
