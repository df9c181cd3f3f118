"""The mel-hifigan frontend: shapes, frame rate, analysis, basis, weights-only loading, a real decode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmmsn.tokenizer import mel_hifigan as mh
from lmmsn.tokenizer.model import AudioTokenizer, build_tokenizer, tokenizer_config
from lmmsn.tokenizer.vae import VAEConfig, build_vae, frontend_info


@pytest.fixture(scope="module")
def frontend() -> mh.MelHifiGAN:
    return build_vae(VAEConfig(architecture="mel-hifigan"))


def chirp(seconds: float, rate: int = mh.SAMPLE_RATE, f0: float = 200.0, f1: float = 4000.0) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    phase = 2 * math.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2)
    return 0.5 * torch.sin(phase)  # [N]


def test_ten_seconds_of_44k_stereo_encode_to_saos_shape(frontend):
    wav = 0.1 * torch.randn(1, 2, 441000)
    z = frontend.encode(wav, 44100)
    assert z.shape == (1, 64, 215)
    assert torch.isfinite(z).all()
    info = frontend_info("mel-hifigan")
    assert info.frame_rate == pytest.approx(44100 / 2048)  # SAO's latent rate, exactly
    assert (info.latent_dim, info.channels, info.sample_rate) == (64, 1, 22050)
    assert frontend.num_frames(22050 * 10) == 215


def test_log_mel_matches_hifigan_reference_analysis():
    """Our torch analysis equals the vocoder's training features (librosa filters, uncentred STFT, 1e-5 floor)."""
    import librosa

    wav = chirp(0.75) + 0.01 * torch.randn(int(0.75 * mh.SAMPLE_RATE))
    wav = wav[: len(wav) // mh.HOP * mh.HOP]
    ours = mh.log_mel(wav[None], mh.mel_filterbank())[0].numpy()  # [80, F]
    padded = np.pad(wav.numpy(), (384, 384), mode="reflect")
    mag = np.abs(librosa.stft(padded, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False))
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    reference = np.log(np.clip(basis @ mag, 1e-5, None))
    assert ours.shape == reference.shape == (80, len(wav) // mh.HOP)
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_stack_and_unstack_are_inverse_and_frame_major():
    mel = torch.arange(2 * 80 * 8, dtype=torch.float32).reshape(2, 80, 8)
    stacked = mh.stack_frames(mel)
    assert stacked.shape == (2, 2, 320)
    assert torch.equal(stacked[0, 1, :80], mel[0, :, 4])  # latent frame 1 starts with mel frame 4
    assert torch.equal(mh.unstack_frames(stacked), mel)


def test_fit_basis_is_the_pca_of_the_correlation_matrix_and_round_trips_in_its_span():
    gen = torch.Generator().manual_seed(0)
    latent = torch.randn(3000, 64, generator=gen, dtype=torch.float64) * torch.linspace(3, 0.5, 64, dtype=torch.float64)
    mixing = torch.randn(64, 320, generator=gen, dtype=torch.float64)
    x = latent @ mixing + 5.0 + 0.001 * torch.randn(3000, 320, generator=gen, dtype=torch.float64)
    basis = mh.fit_basis(x.split(700))
    c = basis.components.double()
    torch.testing.assert_close(c @ c.T, torch.eye(64, dtype=torch.float64), atol=1e-4, rtol=0)
    corr = np.corrcoef(x.numpy(), rowvar=False)
    top = np.sort(np.linalg.eigvalsh(corr))[::-1][:64]
    np.testing.assert_allclose(basis.variance.numpy(), top, rtol=1e-3)
    assert basis.explained > 0.999  # the data has rank 64 plus a little noise
    x32 = x.float()
    torch.testing.assert_close(basis.reconstruct(basis.project(x32)), x32, atol=0.05, rtol=1e-3)


def test_packaged_basis_is_orthonormal_and_keeps_most_variance():
    basis = mh.MelBasis.load(mh.DEFAULT_BASIS)
    c = basis.components
    torch.testing.assert_close(c @ c.T, torch.eye(64), atol=1e-4, rtol=0)
    assert basis.explained > 0.95
    assert torch.all(basis.variance[:-1] >= basis.variance[1:])


def test_vocoder_is_loaded_weights_only(monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    vocoder = mh.load_vocoder()
    assert calls == [True]
    assert not any(p.requires_grad for p in vocoder.parameters())
    assert not vocoder.training


def test_decode_of_a_chirp_resynthesises_it(frontend):
    # A faint noise floor, as real recordings have: on digital silence the vocoder's own hiss
    # sits far above the 1e-5 log floor and would dominate a log-mel distance.
    wav = chirp(1.5) + 0.003 * torch.randn(int(1.5 * mh.SAMPLE_RATE), generator=torch.Generator().manual_seed(1))
    z = frontend.encode(wav[None, None])
    out = frontend.decode(z)
    assert out.shape == (1, 1, z.shape[-1] * 1024)
    original = frontend.mel(wav[None, None])
    resynth = frontend.mel(out)
    shuffled = original[..., torch.randperm(original.shape[-1], generator=torch.Generator().manual_seed(0))]
    error = (resynth - original).abs().mean()
    # Real clips reach <= 0.3x (docs/frontend.md); a lone synthetic tone is harder for the PCA.
    assert error < 0.6 * (shuffled - original).abs().mean()
    # The pitch rises: the loudest band of the resynthesis climbs from the first to the last quarter.
    peak = resynth[0].argmax(dim=0).float()
    quarter = peak.shape[0] // 4
    assert peak[-quarter:].mean() > peak[:quarter].mean() + 20
    converted = frontend.decode(z, sample_rate=44100, channels=2, length=44100)
    assert converted.shape == (1, 2, 44100)


def test_basis_file_is_checked_by_sha256(tmp_path):
    with pytest.raises(ValueError, match="SHA-256"):
        mh.MelHifiGAN(VAEConfig(architecture="mel-hifigan", checkpoint_sha256="0" * 64))
    with pytest.raises(FileNotFoundError, match="fit_mel_basis"):
        mh.MelHifiGAN(VAEConfig(architecture="mel-hifigan", checkpoint=str(tmp_path / "missing.safetensors")))
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="bad.safetensors"):
        mh.MelHifiGAN(VAEConfig(architecture="mel-hifigan", checkpoint=str(tmp_path / "bad.safetensors")))


def test_tokenizer_export_pins_the_basis_and_a_changed_basis_is_refused(tmp_path, frontend):
    config = tokenizer_config("demo")
    config.encoder.num_layers = config.decoder.num_layers = 1
    tok = build_tokenizer(config, vae=frontend)
    export = tok.save_pretrained(tmp_path / "tok")
    text = (export / "config.yaml").read_text()
    assert mh.sha256_file(mh.DEFAULT_BASIS) in text
    wav = chirp(0.5)[None, None]
    loaded = AudioTokenizer.from_pretrained(export)
    torch.testing.assert_close(loaded.encode(wav), tok.encode(wav))
    # A user refits the basis at another path: the export must not silently use it.
    other = mh.MelBasis.load(mh.DEFAULT_BASIS)
    other.mean = other.mean + 1.0
    path = other.save(tmp_path / "other.safetensors")
    (export / "config.yaml").write_text(text.replace("checkpoint: null", f"checkpoint: {path}"))
    with pytest.raises(ValueError, match="SHA-256"):
        AudioTokenizer.from_pretrained(export)


def test_decoder_narrower_than_the_latent_is_refused():
    config = tokenizer_config("demo")
    with pytest.raises(ValueError, match="decoder.dim"):
        type(config)(vae=config.vae, encoder=config.encoder, quantizer=config.quantizer,
                      decoder=type(config.decoder)(dim=32, num_layers=1, num_heads=2, ffn_dim=64, timestep_dim=32))
