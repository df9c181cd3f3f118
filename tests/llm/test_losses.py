"""audio_lm_loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from lmmsn.llm.losses import IGNORE_INDEX, LossSettings, audio_lm_loss, plain_ce

AUDIO = range(4, 6)  # ids 4 and 5 are audio tokens in a 7-token vocabulary (6 = <eoa>: weight 1)


def _hand(logits, targets, weights, coef, normalize):
    ces, zs = [], []
    for row, t in zip(logits, targets, strict=True):
        log_z = math.log(sum(math.exp(x) for x in row))
        ces.append(log_z - row[t])
        zs.append(log_z**2)
    denom = sum(weights) if normalize == "weights" else len(ces)
    ce = sum(w * c for w, c in zip(weights, ces, strict=True)) / denom
    return ce, coef * sum(zs) / len(zs), ces


@pytest.mark.parametrize("normalize", ["tokens", "weights"])
def test_weighting_and_z_loss_match_hand_computation(normalize):
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7, dtype=torch.float64)
    labels = torch.tensor([[0, 4, IGNORE_INDEX, 6, 5]])  # targets (shifted): 4, masked, 6, 5
    settings = LossSettings(audio_weight=10.0, z_loss_coef=0.5, normalize=normalize)
    out = audio_lm_loss(logits, labels, AUDIO, settings)
    rows = [logits[0, 0].tolist(), logits[0, 2].tolist(), logits[0, 3].tolist()]
    ce, z, ces = _hand(rows, [4, 6, 5], [10.0, 1.0, 10.0], 0.5, normalize)
    assert out.ce.item() == pytest.approx(ce, rel=1e-6)
    assert out.z_loss.item() == pytest.approx(z, rel=1e-6)
    assert out.total.item() == pytest.approx(ce + z, rel=1e-6)
    assert out.text_loss.item() == pytest.approx(ces[1], rel=1e-6)
    assert out.audio_loss.item() == pytest.approx((ces[0] + ces[2]) / 2, rel=1e-6)
    hits = [int(torch.argmax(logits[0, 0])) == 4, int(torch.argmax(logits[0, 3])) == 5]
    assert out.audio_accuracy.item() == pytest.approx(sum(hits) / 2)
    assert (int(out.num_text), int(out.num_audio)) == (1, 2)


def test_audio_weight_scales_audio_gradient_only():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 7, requires_grad=True)
    labels = torch.tensor([[0, 5, 1]])  # position 0 -> audio target, position 1 -> text target
    grads = []
    for weight in (1.0, 10.0):
        logits.grad = None
        audio_lm_loss(logits, labels, AUDIO, LossSettings(audio_weight=weight, z_loss_coef=0.0)).total.backward()
        grads.append(logits.grad.clone())
    torch.testing.assert_close(grads[1][0, 0], 10 * grads[0][0, 0])
    torch.testing.assert_close(grads[1][0, 1], grads[0][0, 1])


def test_all_masked_gives_zero_with_gradient_path():
    logits = torch.randn(2, 4, 7, requires_grad=True)
    out = audio_lm_loss(logits, torch.full((2, 4), IGNORE_INDEX), AUDIO)
    assert out.total.item() == 0.0 and out.total.requires_grad


def test_unit_weights_equal_torch_cross_entropy_with_ignored_targets():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11, requires_grad=True)
    labels = torch.randint(0, 11, (3, 7))
    labels[0, :4] = IGNORE_INDEX  # prompt tokens
    labels[2, 5:] = IGNORE_INDEX  # padding
    out = audio_lm_loss(logits, labels, range(5, 9), LossSettings(audio_weight=1.0, z_loss_coef=0.0))
    reference = plain_ce(logits, labels)
    assert torch.allclose(out.total, reference, atol=1e-6)
    (g_ours,) = torch.autograd.grad(out.total, logits)
    (g_ref,) = torch.autograd.grad(reference, logits)
    assert torch.allclose(g_ours, g_ref, atol=1e-7)
