"""Frozen latent autoencoder: the Stable Audio Open 1.0 VAE (paper Sec. II-A).

The tokenizer never trains the VAE. It turns 44.1 kHz stereo into 64-dim
latents at 44100 / 2048 = 21.53 frames per second (10 s -> 215 x 64) and back.

Dimensions: B batch, C audio channels, N samples, D latent dim, T latent frames.

`LatentAutoencoder` is the protocol the rest of LM-MSN relies on;
`StableAudioVAE` implements it over stable-audio-tools (built from its config,
weights from a local `.safetensors` / `.ckpt` or, online, a hub id). Named
architectures: `stable-audio-open-1.0` (156 M parameters) and `tiny` (the same
Oobleck code path, a few thousand parameters, for tests). A second
implementation, `mel-hifigan` (`lmmsn.tokenizer.mel_hifigan`: log-mel + PCA in,
a pretrained HiFi-GAN vocoder out, 22.05 kHz mono), has SAO's latent shape and
frame rate and runs on any CPU: the stand-in frontend for machines without the
SAO weights. `frontend_info(name)` gives any architecture's rates and sizes
without building it; `build_vae(config)` builds the one a config names.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from lmmsn.audio import AudioError, check_waveform, convert_channels, resample
from lmmsn.tokenizer.stable_audio_compat import create_autoencoder

logger = logging.getLogger(__name__)

SAO_HUB_ID = "stabilityai/stable-audio-open-1.0"


def _oobleck_config(
    sample_rate: int, channels: int, c_mults: list[int], strides: list[int], latent_dim: int
) -> dict[str, Any]:
    """A stable-audio-tools autoencoder config: Oobleck encoder/decoder + VAE bottleneck."""
    shared = {"in_channels": 2, "channels": channels, "c_mults": c_mults, "strides": strides}
    return {
        "model_type": "autoencoder",
        "sample_rate": sample_rate,
        "audio_channels": 2,
        "model": {
            "encoder": {
                "type": "oobleck",
                "config": {**shared, "latent_dim": 2 * latent_dim, "use_snake": True},
            },
            "decoder": {
                "type": "oobleck",
                "config": {
                    "out_channels": 2,
                    "channels": channels,
                    "c_mults": c_mults,
                    "strides": strides,
                    "latent_dim": latent_dim,
                    "use_snake": True,
                    "final_tanh": False,
                },
            },
            "bottleneck": {"type": "vae"},
            "latent_dim": latent_dim,
            "downsampling_ratio": math.prod(strides),
            "io_channels": 2,
        },
    }


# The autoencoder section of Stable Audio Open 1.0's model_config.json.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "stable-audio-open-1.0": _oobleck_config(44100, 128, [1, 2, 4, 8, 16], [2, 4, 4, 8, 8], 64),
    "tiny": _oobleck_config(16000, 4, [1, 2, 2], [4, 4, 8], 8),
}


@dataclass(frozen=True)
class FrontendInfo:
    """Rates and sizes of a named frozen autoencoder (read without building it)."""

    sample_rate: int
    "Rate of the waveforms it encodes and decodes."
    channels: int
    "Audio channels it works in."
    downsampling_ratio: int
    "Samples per latent frame."
    latent_dim: int
    "D, dims per latent frame."

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.downsampling_ratio


def frontend_info(architecture: str) -> FrontendInfo:
    """`FrontendInfo` of a named architecture (see `VAEConfig.architecture`)."""
    if architecture == "mel-hifigan":
        from lmmsn.tokenizer import mel_hifigan as mh

        return FrontendInfo(mh.SAMPLE_RATE, 1, mh.DOWNSAMPLING_RATIO, mh.LATENT_DIM)
    if architecture not in ARCHITECTURES:
        raise KeyError(f"unknown frozen autoencoder {architecture!r}; known: {[*ARCHITECTURES, 'mel-hifigan']}")
    arch = ARCHITECTURES[architecture]
    model = arch["model"]
    return FrontendInfo(arch["sample_rate"], model["io_channels"], model["downsampling_ratio"], model["latent_dim"])


@runtime_checkable
class LatentAutoencoder(Protocol):
    """What LM-MSN needs of a frozen waveform <-> latent autoencoder."""

    sample_rate: int
    channels: int
    downsampling_ratio: int
    latent_dim: int

    def encode(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """[B, C, N] waveform -> [B, D, T] latents (deterministic)."""
        ...

    def decode(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[B, D, T] latents -> [B, C, N] waveform."""
        ...


@dataclass
class VAEConfig:
    """Which frozen VAE to use and how to feed it."""

    architecture: Literal["stable-audio-open-1.0", "tiny", "mel-hifigan"] = "stable-audio-open-1.0"
    "Named frozen autoencoder: an Oobleck VAE of ARCHITECTURES, or mel-hifigan (lmmsn.tokenizer.mel_hifigan)."
    checkpoint: str | None = None
    "Oobleck VAEs: local .safetensors/.ckpt file, a hub id (online machines), or None for random weights. mel-hifigan: its PCA basis file (None: the packaged default)."
    checkpoint_sha256: str | None = None
    "SHA-256 of the checkpoint / basis file; when set, a load with another file is refused (exports of mel-hifigan tokenizers record it)."
    seed: int = 0
    "Without a checkpoint, the random weights are drawn from this seed, so data prep, training and every later load see the same VAE (same torch version)."
    length_mode: Literal["floor", "pad"] = "floor"
    "floor: drop the samples past the last whole frame (10 s -> 215 frames, as SAO and the paper); pad: zero-pad to a whole frame and trim the decode back."
    sample_posterior: bool = False
    "Sample z from the VAE posterior instead of taking its mean."

    def __post_init__(self) -> None:
        if self.checkpoint == "":
            self.checkpoint = None


_PREFIXES = ("pretransform.model.", "autoencoder.", "model.")


def _autoencoder_state_dict(checkpoint: str) -> dict[str, torch.Tensor]:
    """Autoencoder weights from a local file or a hub id; no arbitrary unpickling."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        if "/" in checkpoint and not checkpoint.startswith((".", "/", "~")) and checkpoint.count("/") == 1:
            from huggingface_hub import hf_hub_download

            try:
                path = Path(hf_hub_download(checkpoint, "model.safetensors"))
            except Exception as exc:  # offline, gated, or unknown repo
                raise FileNotFoundError(
                    f"VAE checkpoint '{checkpoint}' is neither a local file nor downloadable ({exc}); "
                    "pass the path of the released model.safetensors or model.ckpt"
                ) from exc
        else:
            raise FileNotFoundError(f"VAE checkpoint '{checkpoint}' does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    # The released SAO checkpoint holds the whole diffusion model, its VAE under
    # `pretransform.model.`; a stable-audio-tools autoencoder training .ckpt uses
    # `autoencoder.`. Keep only autoencoder weights, without the prefix.
    for prefix in _PREFIXES:
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if picked:
            return picked
    return state


class StableAudioVAE(nn.Module):
    """Frozen stable-audio-tools autoencoder behind the `LatentAutoencoder` protocol.

    Args:
        config: which architecture and weights.
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or VAEConfig()
        arch = copy.deepcopy(ARCHITECTURES[self.config.architecture])
        with torch.random.fork_rng(devices=[]):  # a seeded draw that leaves the caller's stream alone
            torch.manual_seed(self.config.seed)
            self.model = create_autoencoder(arch)
        if self.config.checkpoint is not None:
            state = _autoencoder_state_dict(self.config.checkpoint)
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            if missing:
                raise ValueError(
                    f"VAE checkpoint '{self.config.checkpoint}' lacks {len(missing)} weights of "
                    f"'{self.config.architecture}' (first: {missing[:3]})"
                )
            if unexpected:
                logger.warning("VAE checkpoint has %d unused entries (first: %s)", len(unexpected), unexpected[:3])
        self.sample_rate: int = arch["sample_rate"]
        self.channels: int = arch["model"]["io_channels"]
        self.downsampling_ratio: int = arch["model"]["downsampling_ratio"]
        self.latent_dim: int = arch["model"]["latent_dim"]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> StableAudioVAE:
        """The VAE is frozen: it stays in eval mode whatever its parent does."""
        return super().train(False)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.downsampling_ratio

    def num_frames(self, num_samples: int) -> int:
        """Latent frames produced for `num_samples` input samples (at `sample_rate`)."""
        if self.config.length_mode == "pad":
            return math.ceil(num_samples / self.downsampling_ratio)
        return num_samples // self.downsampling_ratio

    def prepare(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Validate, resample, convert channels and fit the length to whole frames.

        Args:
            wav: [B, C, N], [C, N] or [N] float waveform.
            sample_rate: rate of `wav` (None: already `self.sample_rate`).

        Returns:
            [B, channels, T * downsampling_ratio] on the VAE's device and dtype.
        """
        check_waveform(wav)
        if wav.dim() == 1:
            wav = wav[None, None]
        elif wav.dim() == 2:
            wav = wav[None]
        elif wav.dim() != 3:
            raise AudioError(f"waveform must be [B, C, N], [C, N] or [N]; got shape {tuple(wav.shape)}")
        if sample_rate is not None and sample_rate != self.sample_rate:
            wav = resample(wav, sample_rate, self.sample_rate)
        wav = convert_channels(wav, self.channels)
        frames = self.num_frames(wav.shape[-1])
        if frames == 0:
            raise AudioError(
                f"waveform of {wav.shape[-1]} samples is shorter than one latent frame "
                f"({self.downsampling_ratio} samples at {self.sample_rate} Hz)"
            )
        target = frames * self.downsampling_ratio
        if target > wav.shape[-1]:
            wav = nn.functional.pad(wav, (0, target - wav.shape[-1]))
        wav = wav[..., :target]
        param = next(self.model.parameters())
        return wav.to(device=param.device, dtype=param.dtype)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """[B, C, N] waveform -> [B, D, T] latents (posterior mean unless configured to sample)."""
        x = self.prepare(wav, sample_rate)  # [B, C, T * ratio]
        stats = self.model.encoder(x)  # [B, 2D, T]: posterior mean and pre-softplus scale
        mean, scale = stats.chunk(2, dim=1)  # [B, D, T] each
        if not self.config.sample_posterior:
            return mean
        std = nn.functional.softplus(scale) + 1e-4  # stable-audio-tools' vae_sample
        return mean + std * torch.randn_like(mean)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[B, D, T] latents -> [B, C, T * ratio] waveform, cut to `length` samples if given."""
        if z.dim() != 3 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be [B, {self.latent_dim}, T]; got shape {tuple(z.shape)}")
        param = next(self.model.parameters())
        wav = self.model.decoder(z.to(device=param.device, dtype=param.dtype))  # [B, C, T * ratio]
        return wav if length is None else wav[..., :length]


def build_vae(config: VAEConfig | None = None) -> LatentAutoencoder:
    """The frozen autoencoder for `config` (default: Stable Audio Open 1.0, random weights)."""
    config = config or VAEConfig()
    if config.architecture == "mel-hifigan":
        from lmmsn.tokenizer.mel_hifigan import MelHifiGAN

        return MelHifiGAN(config)
    return StableAudioVAE(config)


def pinned(config: VAEConfig) -> VAEConfig:
    """`config` with the SHA-256 of its mel-hifigan basis filled in (other architectures: unchanged).

    Exports call this, so a tokenizer names the exact basis its latents were made with.
    """
    if config.architecture != "mel-hifigan" or config.checkpoint_sha256 is not None:
        return config
    from dataclasses import replace

    from lmmsn.tokenizer.mel_hifigan import DEFAULT_BASIS, sha256_file

    return replace(config, checkpoint_sha256=sha256_file(config.checkpoint or DEFAULT_BASIS))
