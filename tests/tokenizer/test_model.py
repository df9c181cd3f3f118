import math

import pytest
import torch

from lmmsn.config import from_dict, to_dict
from lmmsn.export import ExportError
from lmmsn.tokenizer.model import (
    SIZES,
    AudioTokenizer,
    TokenizerConfig,
    build_tokenizer,
    masked_mse,
    tokenizer_config,
)
from tests.conftest import sine


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_tokenizer(tokenizer_config("tiny"))
    model.train()
    model.compute_loss(torch.randn(2, 16, 8))  # one training forward: codebook initialised from data
    return model.eval()


def test_paper_bitrate_and_sizes(capsys):
    config = tokenizer_config("paper")
    expected = 44100 / 2048 * math.log2(8196)
    print(f"paper tokenizer: {config.frame_rate:.3f} tokens/s x log2(8196) = {config.bitrate:.2f} bit/s")
    assert config.frame_rate == pytest.approx(21.533, abs=1e-3)
    assert config.bitrate == pytest.approx(expected) and config.bitrate == pytest.approx(279.95, abs=0.01)
    model = build_tokenizer(config, with_vae=False)
    assert model.bitrate == pytest.approx(expected) and model.codebook_size == 8196 and model.latent_dim == 64
    counts = model.parameter_counts()
    print(f"paper parameters: {counts}")
    assert len(model.encoder.blocks) == 12 and model.encoder.blocks[0].ffn.fc1.out_features == 768
    assert model.decoder.t_embed.frequency_dim == 256
    assert 1.0e6 < counts["encoder"] < 2.0e6 and 1.0e6 < counts["decoder"] < 2.5e6
    assert "bit/s" in capsys.readouterr().out


def test_tiny_uses_tiny_vae(tiny):
    assert tiny.config.vae.architecture == "tiny" and tiny.latent_dim == 8 and tiny.sample_rate == 16000
    assert tiny.frame_rate == 16000 / 128 and tiny.bitrate == pytest.approx(125 * 5)


def test_wave_to_codes_to_wave_shapes(tiny):
    wav = sine(0.5, 16000, channels=2)  # [C, N]: 62 frames of 128 samples
    codes = tiny.encode(wav, 16000)
    assert codes.shape == (1, 62) and codes.dtype == torch.int64
    assert 0 <= codes.min() and codes.max() < tiny.codebook_size
    batch = tiny.encode(torch.stack([wav, wav]), 16000)
    assert torch.equal(batch[0], codes[0]) and torch.equal(batch[1], codes[0])
    out = tiny.decode(codes, steps=2, generator=torch.Generator().manual_seed(0), length=7000)
    assert out.shape == (1, 2, 7000) and torch.isfinite(out).all()


def test_latent_shapes_and_generator_reproducibility(tiny):
    latents = torch.randn(3, 10, 8)
    codes = tiny.encode_latents(latents)
    assert codes.shape == (3, 10)
    z1 = tiny.decode_latents(codes, generator=torch.Generator().manual_seed(5))
    z2 = tiny.decode_latents(codes, generator=torch.Generator().manual_seed(5))
    z3 = tiny.decode_latents(codes, generator=torch.Generator().manual_seed(6))
    assert z1.shape == (3, 10, 8) and torch.equal(z1, z2) and not torch.equal(z1, z3)
    with pytest.raises(ValueError, match="time-major"):
        tiny.encode_latents(latents.transpose(1, 2))


def test_padding_does_not_leak_into_valid_frames(tiny):
    latents = torch.randn(2, 12, 8)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    codes = tiny.encode_latents(latents, mask)
    other = codes.clone()
    other[1, 7:] = (codes[1, 7:] + 1) % tiny.codebook_size
    garbage = latents.clone()
    garbage[1, 7:] = 9.0
    assert torch.equal(tiny.encode_latents(garbage, mask)[1, :7], codes[1, :7])
    a = tiny.decode_latents(codes, generator=torch.Generator().manual_seed(0), mask=mask)
    b = tiny.decode_latents(other, generator=torch.Generator().manual_seed(0), mask=mask)
    assert torch.allclose(a[1, :7], b[1, :7], atol=1e-5)


@pytest.mark.parametrize("objective", ["cfm", "mse"])
def test_save_and_from_pretrained_are_bit_identical(tmp_path, objective):
    torch.manual_seed(0)
    config = tokenizer_config("tiny")
    config.flow.objective = objective
    model = build_tokenizer(config)
    model.train()
    model.compute_loss(torch.randn(2, 16, 8))
    for p in model.decoder.parameters():  # non-zero decoder so the decode path is exercised
        p.data.add_(0.05 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(tmp_path / "tok")
    assert sorted(f.name for f in (tmp_path / "tok").iterdir()) == ["config.yaml", "format_version", "model.safetensors"]
    from safetensors.torch import load_file

    assert not any(k.startswith("vae.") for k in load_file(str(tmp_path / "tok" / "model.safetensors")))
    rebuilt = AudioTokenizer.from_pretrained(tmp_path / "tok")  # builds the referenced VAE itself
    assert rebuilt.config == model.config and isinstance(rebuilt.vae, type(model.vae))
    wav = sine(0.3, 16000, channels=2)
    # no VAE checkpoint: the rebuilt VAE draws the same random weights from VAEConfig.seed
    assert torch.equal(rebuilt.encode(wav), model.encode(wav))
    loaded = AudioTokenizer.from_pretrained(tmp_path / "tok", vae=model.vae)
    assert torch.equal(rebuilt.quantizer.embed, model.quantizer.embed)
    latents = torch.randn(2, 9, 8)
    codes = model.encode_latents(latents)
    assert torch.equal(loaded.encode_latents(latents), codes)
    za = model.decode_latents(codes, generator=torch.Generator().manual_seed(1))
    zb = loaded.decode_latents(codes, generator=torch.Generator().manual_seed(1))
    assert torch.equal(za, zb)
    assert torch.equal(model.encode(wav), loaded.encode(wav))


def test_latent_mean_and_scale_normalize_and_survive_export(tmp_path):
    from dataclasses import replace

    torch.manual_seed(0)
    mean = [0.5, -1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.25]
    shift = torch.tensor(mean)
    config = replace(tokenizer_config("tiny"), latent_mean=mean, latent_scale=4.0)
    model = build_tokenizer(config, with_vae=False).eval()
    z = torch.randn(1, 5, 8)
    assert torch.allclose(model.normalize(z), (z - shift) * 4.0)
    assert torch.allclose(model.denormalize(model.normalize(z)), z, atol=1e-6)
    plain = build_tokenizer(replace(config, latent_mean=None), with_vae=False).eval()
    plain.load_state_dict(model.state_dict())
    for p in plain.decoder.parameters():  # non-zero decoder so decode depends on the codes
        p.data.add_(0.05 * torch.randn_like(p))
    model.load_state_dict(plain.state_dict())
    codes = plain.encode_latents(z)
    assert torch.equal(model.encode_latents(z + shift), codes)  # the offset is removed before the encoder
    decoded = model.decode_latents(codes, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(decoded, plain.decode_latents(codes, generator=torch.Generator().manual_seed(3)) + shift, atol=1e-5)
    loaded = AudioTokenizer.from_pretrained(model.save_pretrained(tmp_path / "tok"), with_vae=False)
    assert loaded.config.latent_mean == mean and torch.equal(loaded.latent_mean, model.latent_mean)
    with pytest.raises(ValueError, match="latent_mean has 3 values"):
        replace(config, latent_mean=[0.0] * 3)


def test_from_pretrained_rejects_other_kinds(tmp_path):
    from lmmsn.export import save_exported

    save_exported(tmp_path / "x", "audio_lm", {}, None)
    with pytest.raises(ExportError, match="audio_tokenizer"):
        AudioTokenizer.from_pretrained(tmp_path / "x")


def test_latent_only_model_explains_missing_vae():
    model = build_tokenizer(tokenizer_config("tiny"), with_vae=False)
    with pytest.raises(RuntimeError, match="without its VAE"):
        model.encode(sine(0.1, 16000, 2))


def test_config_round_trip_and_named_sizes():
    for name in SIZES:
        config = tokenizer_config(name)
        assert from_dict(TokenizerConfig, to_dict(config)) == config
    assert tokenizer_config("tiny") is not SIZES["tiny"]
    with pytest.raises(KeyError, match="unknown tokenizer size"):
        tokenizer_config("huge")


@pytest.mark.parametrize("objective", ["cfm", "mse"])
def test_compute_loss_ignores_padded_frames(objective):
    torch.manual_seed(0)
    config = tokenizer_config("tiny")
    config.flow.objective = objective
    model = build_tokenizer(config, with_vae=False)
    latents = torch.randn(2, 10, 8)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    out = model.compute_loss(latents, mask, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert masked_mse(torch.ones(1, 2, 3), torch.zeros(1, 2, 3), torch.tensor([[True, False]])) == 1.0
