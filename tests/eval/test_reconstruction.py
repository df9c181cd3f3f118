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


def test_kmeans_recovers_separated_clusters_and_its_row_is_nearest_centroid_error():
    from eval.reconstruction import KMeansCodebook, fit_kmeans

    gen = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    frames = torch.cat([c + 0.1 * torch.randn(200, 2, generator=gen) for c in centers])
    found = fit_kmeans(frames, 4, iters=10, seed=0)
    # every true center has a centroid within 0.05 of it
    assert (torch.cdist(centers, found).min(1).values < 0.05).all()
    km = KMeansCodebook(found)
    z = torch.tensor([[1.0, 1.0], [9.0, 10.0]])
    res = evaluate_reconstruction({}, {"a": [z]}, kmeans=km)
    row = next(v for k, v in res["tokenizers"].items() if k.startswith("k-means"))
    nearest = found[torch.cdist(z, found).argmin(1)]
    assert row["datasets"]["a"]["mse"] == pytest.approx(float((nearest - z).pow(2).mean()), rel=1e-5)
    assert row["bits_per_frame"] == 2.0 and row["baseline"] is True
    assert row["codebook"]["used"] == 2 and row["codebook"]["perplexity"] == pytest.approx(2.0)


def test_codebook_usage_by_hand():
    from eval.reconstruction import codebook_usage

    usage = codebook_usage([torch.tensor([0, 0, 1]), torch.tensor([1, 3])], 8)
    assert usage["used"] == 3 and usage["used_fraction"] == 3 / 8
    p = np.array([2, 2, 1]) / 5
    assert usage["perplexity"] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))
    assert usage["sorted_counts"][:4] == [2, 2, 1, 0]


class _StubFrontend:
    """A frozen 'autoencoder' whose latent is the clip itself cut into frames of 256 samples (decode = unframe)."""

    sample_rate, channels, downsampling_ratio, latent_dim = 22050, 1, 256, 256

    def decode(self, z, length=None):
        return z.transpose(1, 2).reshape(z.shape[0], 1, -1)


def test_audio_rows_resynthesis_is_exact_and_the_mean_latent_is_not():
    from eval.reconstruction import BASELINE, RESYNTHESIS, AudioJudging

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(256 * 40) / 22050.0
    clips = [(0.3 * torch.sin(2 * torch.pi * f * t) + 0.003 * torch.randn(t.shape, generator=gen))[None] for f in (300.0, 2000.0)]
    latents = [c[0].reshape(40, 256) for c in clips]  # [T, D] frames of samples
    judging = AudioJudging(_StubFrontend(), {"tones": clips}, yamnet=None)
    res = evaluate_reconstruction({}, {"tones": latents}, audio=judging)
    rows = res["tokenizers"]
    assert rows[RESYNTHESIS]["datasets"]["tones"]["mse"] == 0.0
    assert rows[RESYNTHESIS]["datasets"]["tones"]["logmel_l1"] == pytest.approx(0.0, abs=1e-5)
    # the mean latent is the average of a 300 Hz and a 2 kHz tone: far from each in log-mel
    assert rows[BASELINE]["datasets"]["tones"]["logmel_l1"] > 0.5
    assert rows[BASELINE]["average"]["logmel_l1"] == rows[BASELINE]["datasets"]["tones"]["logmel_l1"]


def test_flow_tokenizer_gets_one_row_per_temperature_and_zero_is_deterministic():
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    torch.manual_seed(0)
    tok = build_tokenizer(tokenizer_config("tiny"), with_vae=False).eval()
    lat = [torch.randn(6, tok.latent_dim) for _ in range(3)]
    res_a = evaluate_reconstruction({"fm": tok}, {"d": lat}, temperatures=[1.0, 0.0], steps=2, seed=0)
    res_b = evaluate_reconstruction({"fm": tok}, {"d": lat}, temperatures=[1.0, 0.0], steps=2, seed=5)
    assert {"fm @ T=1", "fm @ T=0"} <= set(res_a["tokenizers"])
    cold = [c["mse"] for c in res_a["tokenizers"]["fm @ T=0"]["datasets"]["d"]["per_clip"]]
    assert cold == [c["mse"] for c in res_b["tokenizers"]["fm @ T=0"]["datasets"]["d"]["per_clip"]]
    warm_a = [c["mse"] for c in res_a["tokenizers"]["fm @ T=1"]["datasets"]["d"]["per_clip"]]
    warm_b = [c["mse"] for c in res_b["tokenizers"]["fm @ T=1"]["datasets"]["d"]["per_clip"]]
    assert warm_a != warm_b


def test_mean_decode_adds_a_conditional_mean_row_for_flow_tokenizers_only():
    from eval.reconstruction import MEAN_DECODE
    from lmmsn.tokenizer.flow import CONDITIONAL_MEAN
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    torch.manual_seed(0)
    tok = build_tokenizer(tokenizer_config("tiny"), with_vae=False).eval()
    with torch.no_grad():  # off adaLN-zero, so the decode depends on the codes and the noise
        for p in tok.decoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    lat = [torch.randn(6, tok.latent_dim) for _ in range(3)]
    vq = CodebookStandIn([[0.0] * tok.latent_dim, [1.0] * tok.latent_dim])
    res = evaluate_reconstruction({"fm": tok, "vq": vq}, {"d": lat}, temperatures=[1.0], steps=2, mean_decode=True)
    assert set(res["tokenizers"]) >= {f"fm, {MEAN_DECODE}", "fm", "vq"} and f"vq, {MEAN_DECODE}" not in res["tokenizers"]
    row = res["tokenizers"][f"fm, {MEAN_DECODE}"]["datasets"]["d"]["per_clip"]
    for z, entry in zip(lat, row, strict=True):
        expected = tok.decode_latents(tok.encode_latents(z[None]), **CONDITIONAL_MEAN)[0]
        assert entry["mse"] == pytest.approx(float(((expected - z) ** 2).mean()), rel=1e-5)
    sample = [c["mse"] for c in res["tokenizers"]["fm"]["datasets"]["d"]["per_clip"]]
    assert sample != [c["mse"] for c in row]


class _BandTagger:
    """A YAMNet stand-in: class 0 always wins (as 'Speech' does for every speech clip), the other
    classes are the clip's energy in 8 frequency bands, so clips differ below the top class."""

    def analyse(self, wav, rate):
        from types import SimpleNamespace

        spectrum = np.abs(np.fft.rfft(wav.numpy().mean(0)))
        bands = np.array([b.mean() for b in np.array_split(spectrum, 8)])
        scores = np.concatenate([[1.0], 0.5 * bands / bands.sum()])[None]  # [1 frame, 9 classes]
        return SimpleNamespace(scores=scores, embeddings=np.repeat(scores, 3, axis=0) + np.arange(3)[:, None])

    def info(self):
        return {"model": "band tagger (test)"}


def test_identification_does_not_saturate_where_top1_agreement_does():
    from eval.reconstruction import BASELINE, RESYNTHESIS, AudioJudging

    t = torch.arange(256 * 40) / 22050.0
    clips = [(0.3 * torch.sin(2 * torch.pi * f * t))[None] for f in (300.0, 2500.0, 7000.0)]
    latents = [c[0].reshape(40, 256) for c in clips]
    judging = AudioJudging(_StubFrontend(), {"tones": clips}, yamnet=_BandTagger())
    res = evaluate_reconstruction({}, {"tones": latents}, audio=judging)
    assert res["yamnet_chance"]["tones"] == 1.0  # every original has the same top class: agreement cannot beat chance
    rows = res["tokenizers"]
    assert rows[RESYNTHESIS]["datasets"]["tones"]["yamnet_identified"] == 1.0  # each decode is closest to its own original
    assert rows[BASELINE]["datasets"]["tones"]["yamnet_identified"] == pytest.approx(1 / 3)  # one decode for all: 1 of 3
    assert rows[BASELINE]["datasets"]["tones"]["yamnet_agree"] == 1.0  # while top-1 agreement calls it perfect
