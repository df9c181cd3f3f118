import pytest
import torch

from lmmsn.audio import AudioError
from lmmsn.tokenizer.vae import LatentAutoencoder, StableAudioVAE, VAEConfig
from tests.conftest import sine


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(0)
    return StableAudioVAE(VAEConfig(architecture="tiny"))


def test_is_a_frozen_latent_autoencoder(tiny_vae):
    assert isinstance(tiny_vae, LatentAutoencoder)
    assert not any(p.requires_grad for p in tiny_vae.parameters())
    torch.nn.Sequential(tiny_vae).train()
    assert not tiny_vae.training and not tiny_vae.model.training


def test_encode_is_deterministic_and_shaped(tiny_vae):
    wav = sine(0.5, 16000, channels=2)[None]  # [1, 2, 8000]
    z1, z2 = tiny_vae.encode(wav), tiny_vae.encode(wav)
    assert z1.shape == (1, 8, 8000 // 128)
    assert torch.equal(z1, z2)


def test_sampling_posterior_is_random(tiny_vae):
    vae = StableAudioVAE(VAEConfig(architecture="tiny", sample_posterior=True))
    vae.load_state_dict(tiny_vae.state_dict())
    wav = sine(0.5, 16000, channels=2)[None]
    assert not torch.equal(vae.encode(wav), vae.encode(wav))


def test_lengths_floor_and_pad(tiny_vae):
    wav = sine(0.5, 16000, channels=2)[None][..., :1000]  # 7.8 frames of 128
    assert tiny_vae.encode(wav).shape[-1] == 7
    pad = StableAudioVAE(VAEConfig(architecture="tiny", length_mode="pad"))
    z = pad.encode(wav)
    assert z.shape[-1] == 8
    assert pad.decode(z, length=1000).shape == (1, 2, 1000)


def test_mono_and_other_rates_are_accepted(tiny_vae):
    mono_44k = sine(0.5, 44100, channels=1)
    z = tiny_vae.encode(mono_44k, sample_rate=44100)  # resampled to 16 kHz, mono -> stereo
    assert z.shape == (1, 8, 8000 // 128)


@pytest.mark.parametrize(
    "wav, fragment",
    [
        (torch.zeros(1, 2, 0), "empty"),
        (torch.full((1, 2, 4096), float("nan")), "NaN"),
        (torch.zeros(1, 2, 100), "shorter than one latent frame"),
    ],
)
def test_bad_input_is_rejected(tiny_vae, wav, fragment):
    with pytest.raises(AudioError, match=fragment):
        tiny_vae.encode(wav)


def test_checkpoint_round_trip_strips_released_prefix(tmp_path, tiny_vae):
    from safetensors.torch import save_file

    # The released SAO file holds the VAE under `pretransform.model.` beside other weights.
    state = {f"pretransform.model.{k}": v.contiguous() for k, v in tiny_vae.model.state_dict().items()}
    state["model.unrelated.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = StableAudioVAE(VAEConfig(architecture="tiny", checkpoint=str(tmp_path / "model.safetensors")))
    wav = sine(0.5, 16000, channels=2)[None]
    assert torch.equal(loaded.encode(wav), tiny_vae.encode(wav))


def test_random_weights_are_a_function_of_the_seed():
    """Data prep, training and a later load must see the same random-weight VAE."""
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = StableAudioVAE(VAEConfig(architecture="tiny", seed=5)).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    torch.manual_seed(999)
    b = StableAudioVAE(VAEConfig(architecture="tiny", seed=5)).state_dict()
    c = StableAudioVAE(VAEConfig(architecture="tiny", seed=6)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        StableAudioVAE(VAEConfig(architecture="tiny", checkpoint=str(tmp_path / "nope.safetensors")))


@pytest.fixture(scope="module")
def sao_vae():
    return StableAudioVAE(VAEConfig())


def test_stable_audio_open_architecture_builds_and_runs(sao_vae):
    """The real SAO 1.0 architecture (random weights) through stable-audio-tools."""
    assert sum(p.numel() for p in sao_vae.model.parameters()) == 156_112_514
    assert (sao_vae.sample_rate, sao_vae.latent_dim, sao_vae.downsampling_ratio) == (44100, 64, 2048)
    z = sao_vae.encode(torch.randn(1, 2, 4 * 2048) * 0.1)
    assert z.shape == (1, 64, 4) and torch.isfinite(z).all()
    assert sao_vae.decode(z).shape == (1, 2, 4 * 2048)


@pytest.mark.slow
def test_stable_audio_open_encodes_10s_to_215_frames(sao_vae):
    """10 s of 44.1 kHz stereo -> [1, 64, 215] (about 2 minutes on 2 CPU cores)."""
    z = sao_vae.encode(torch.randn(1, 2, 441000) * 0.1, sample_rate=44100)
    assert z.shape == (1, 64, 215)
    assert torch.isfinite(z).all()
