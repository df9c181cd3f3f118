"""Tests for eval.reconstruction: the error equals a hand computation on a stand-in tokenizer."""

import numpy as np
import pytest
import torch

from eval.reconstruction import evaluate_reconstruction, reconstruct


class CodebookStandIn:
    """Nearest-row VQ on latents, decoded by lookup: a tokenizer whose reconstruction is known by hand."""

    def __init__(self, codebook):
        self.codebook = torch.tensor(codebook, dtype=torch.float32)  # [K, D]

    def encode_latents(self, latents, mask=None):
        d = torch.cdist(latents, self.codebook[None].expand(latents.shape[0], -1, -1))  # [B, T, K]
        return d.argmin(-1)

    def decode_latents(self, codes, steps=None, temperature=None, generator=None, mask=None):
        return self.codebook[codes]


def test_error_matches_hand_computation():
    tok = CodebookStandIn([[0.0, 0.0], [1.0, 1.0]])
    z1 = torch.tensor([[0.2, -0.2], [0.9, 1.3]])  # -> codes 0, 1
    z2 = torch.tensor([[0.6, 0.6]])  # -> code 1
    per = reconstruct(tok, [z1, z2])
    # clip 1: squared errors .04 .04 .01 .09 -> mean 0.045; abs .2 .2 .1 .3 -> 0.2
    assert per[0]["mse"] == pytest.approx(0.045) and per[0]["l1"] == pytest.approx(0.2)
    assert per[1]["mse"] == pytest.approx(0.16) and per[1]["l1"] == pytest.approx(0.4)
    res = evaluate_reconstruction({"vq": tok, "zero": CodebookStandIn([[0.0, 0.0]])}, {"a": [z1], "b": [z1, z2]})
    row = res["tokenizers"]["vq"]
    assert row["datasets"]["b"]["mse"] == pytest.approx((0.045 + 0.16) / 2)  # each clip weighs the same
    assert row["average"]["mse"] == pytest.approx((0.045 + (0.045 + 0.16) / 2) / 2)  # mean over data sets
    zero = res["tokenizers"]["zero"]["datasets"]["a"]
    assert zero["mse"] == pytest.approx(zero["energy"]) and zero["relative_mse"] == pytest.approx(1.0)
    assert zero["energy"] == pytest.approx(float(np.mean(np.square(z1.numpy()))))


def test_real_tiny_tokenizer_is_reproducible_with_seed():
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    torch.manual_seed(0)
    tok = build_tokenizer(tokenizer_config("tiny"), with_vae=False).eval()
    lat = [torch.randn(5, tok.latent_dim), torch.randn(3, tok.latent_dim)]
    a = reconstruct(tok, lat, steps=2, seed=7)
    b = reconstruct(tok, lat, steps=2, seed=7)
    c = reconstruct(tok, lat, steps=2, seed=8)
    assert [x["mse"] for x in a] == [x["mse"] for x in b]
    assert [x["mse"] for x in a] != [x["mse"] for x in c]  # the seed reaches the flow sampler
    assert a[0]["frames"] == 5


def test_load_tokenizers_share_one_vae_and_refuse_different_ones(tmp_path):
    from dataclasses import replace

    from eval.reconstruction import load_tokenizers
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config
    from lmmsn.tokenizer.vae import VAEConfig

    paths = {}
    for name, seed in (("a", 0), ("b", 0), ("other", 1)):
        cfg = replace(tokenizer_config("tiny"), vae=VAEConfig(architecture="tiny", seed=seed))
        paths[name] = str(build_tokenizer(cfg, with_vae=False).save_pretrained(tmp_path / name))
    toks = load_tokenizers({"a": paths["a"], "b": paths["b"]})
    assert toks["a"].vae is toks["b"].vae
    with pytest.raises(ValueError, match="same latents"):
        load_tokenizers({"a": paths["a"], "other": paths["other"]})


def test_mean_latent_baseline_row_matches_hand_computation():
    from eval.reconstruction import BASELINE

    z1 = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    z2 = torch.tensor([[1.0, 4.0]])
    res = evaluate_reconstruction({"zero": CodebookStandIn([[0.0, 0.0]])}, {"b": [z1, z2]})
    row = res["tokenizers"][BASELINE]
    # mean latent over the 3 frames: [1, 2]; clip 1 squared errors 1 4 1 0 -> 1.5; clip 2: 0 4 -> 2.0
    assert row["baseline"] is True
    assert [c["mse"] for c in row["datasets"]["b"]["per_clip"]] == pytest.approx([1.5, 2.0])
    assert row["datasets"]["b"]["mse"] == pytest.approx(1.75) and row["average"]["mse"] == pytest.approx(1.75)
