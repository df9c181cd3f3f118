"""AudioTokenizer: frozen VAE + causal encoder + VQ codebook + DiT flow-matching decoder.

The paper's tokenizer (Sec. III, Fig. 1): waveform -> frozen Stable Audio Open
VAE -> z [T, 64] -> causal transformer encoder -> VQ (8196 x 64) -> codes at
21.5 per second (0.28 kbps). Codes -> codebook vectors -> DiT vector field
integrated by an ODE (OT-CFM) -> z_hat -> VAE decoder -> waveform. The VQ+MSE
ablation swaps the flow for one deterministic DiT pass (`flow.objective`).

The parts are injected (`AudioTokenizer(vae, encoder, quantizer, decoder,
config)`); `build_tokenizer(config)` wires them. The VAE is optional for
latent-only work (training on precomputed latents): `encode`/`decode` need
it, `encode_latents`/`decode_latents` do not. Exports reference the VAE by its
`VAEConfig`, never copy its weights.

Dimensions: B batch, C channels, N samples, T frames, L latent dim, Q codebook dim.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from lmmsn.config import from_dict, to_dict
from lmmsn.export import load_exported_weights, read_exported_config, save_exported
from lmmsn.tokenizer import flow as flow_lib
from lmmsn.tokenizer.decoder import DecoderConfig, DiTDecoder
from lmmsn.tokenizer.encoder import CausalEncoder, EncoderConfig
from lmmsn.tokenizer.flow import FlowConfig
from lmmsn.tokenizer.quantizer import QuantizerConfig, QuantizerOutput, VectorQuantizer
from lmmsn.tokenizer.vae import LatentAutoencoder, VAEConfig, build_vae, frontend_info, pinned

logger = logging.getLogger(__name__)

EXPORT_KIND = "audio_tokenizer"


@dataclass
class TokenizerConfig:
    """Everything needed to rebuild an AudioTokenizer (the VAE by reference)."""

    vae: VAEConfig = field(default_factory=VAEConfig)
    "The frozen VAE: architecture + checkpoint reference (weights never copied)."
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    "Causal transformer encoder."
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    "VQ codebook."
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    "DiT vector-field estimator."
    flow: FlowConfig = field(default_factory=FlowConfig)
    "Objective (cfm / mse ablation) and ODE sampling defaults."
    latent_scale: float | list[float] = 1.0
    "Latents are multiplied by this (one number, or one per dim) before the encoder / as flow targets, divided after decoding (unit variance suits the N(0, I) flow source)."
    latent_mean: list[float] | None = None
    "Per-dimension mean subtracted before scaling and added back after decoding (None: no shift); `python -m lmmsn.tokenizer.latents SHARDS` measures it and latent_scale (the tokenizer recipe does so itself with data.normalize)."
    decode_window: int | None = None
    "Decode clips of more frames than this in overlapping windows of this many frames (cross-faded in latent space, one noise draw shared), so the decoder never sees more context than it was trained on; None: one pass over the whole clip."
    decode_overlap: int = 16
    "Frames by which consecutive decode windows overlap (the linear cross-fade's length)."

    def __post_init__(self) -> None:
        if self.decode_window is not None and not 0 <= self.decode_overlap < self.decode_window:
            raise ValueError(f"decode_overlap must be in [0, decode_window); got window {self.decode_window}, overlap {self.decode_overlap}")
        if self.decode_overlap < 0:
            raise ValueError(f"decode_overlap must be >= 0, got {self.decode_overlap}")
        scales = self.latent_scale if isinstance(self.latent_scale, list) else [self.latent_scale]
        if isinstance(self.latent_scale, list) and len(scales) != self.latent_dim:
            raise ValueError(f"latent_scale has {len(scales)} values, the VAE latent dim is {self.latent_dim}")
        if not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"latent_scale must be finite and positive, got {self.latent_scale}")
        if self.latent_mean is not None:
            if len(self.latent_mean) != self.latent_dim:
                raise ValueError(f"latent_mean has {len(self.latent_mean)} values, the VAE latent dim is {self.latent_dim}")
            if not all(math.isfinite(m) for m in self.latent_mean):
                raise ValueError("latent_mean must be finite")
        # The DiT reads x_t through a projection to its width and writes v through one back:
        # a width below the latent dim is a bottleneck that flow matching cannot get around
        # (the loss plateaus and decodes are no better than the mean latent).
        if self.flow.source == "codes" and self.quantizer.dim != self.latent_dim:
            raise ValueError(f"flow.source=codes starts the flow at the code vectors: quantizer.dim ({self.quantizer.dim}) "
                             f"must equal the latent dim ({self.latent_dim})")
        if self.decoder.dim < self.latent_dim:
            raise ValueError(f"decoder.dim {self.decoder.dim} is below the VAE latent dim {self.latent_dim} "
                             f"({self.vae.architecture}): the vector field would be squeezed through "
                             f"{self.decoder.dim} dims; use decoder.dim >= {self.latent_dim}")

    @property
    def latent_dim(self) -> int:
        """L, read from the VAE architecture (no VAE is built)."""
        return frontend_info(self.vae.architecture).latent_dim

    @property
    def frame_rate(self) -> float:
        """Latent frames (= tokens) per second of the VAE architecture."""
        return frontend_info(self.vae.architecture).frame_rate

    @property
    def bitrate(self) -> float:
        """Bits per second: tokens/s x log2(codebook size)."""
        return self.frame_rate * math.log2(self.quantizer.codebook_size)


SIZES: dict[str, TokenizerConfig] = {
    # Paper Sec. IV-A: SAO VAE (44.1 kHz, 64-dim latents), 12 causal blocks of
    # width 64 / FFN 768, 8196 x 64 codebook, DiT of the same block shape.
    "paper": TokenizerConfig(),
    # The CPU demo on the mel-hifigan frontend (64-dim latents at 21.5 frames/s, as SAO):
    # 4 causal blocks of width 128, 1024 codes (215 bit/s), DiT of 4 blocks of width 128.
    "demo": TokenizerConfig(
        vae=VAEConfig(architecture="mel-hifigan"),
        encoder=EncoderConfig(dim=128, num_layers=4, num_heads=4, ffn_dim=512),
        quantizer=QuantizerConfig(codebook_size=1024, dim=64),
        decoder=DecoderConfig(dim=128, num_layers=4, num_heads=4, ffn_dim=512, timestep_dim=128),
    ),
    # CPU tests: the tiny VAE (16 kHz, 8-dim latents), 2 blocks of width 16.
    "tiny": TokenizerConfig(
        vae=VAEConfig(architecture="tiny"),
        encoder=EncoderConfig(dim=16, num_layers=2, num_heads=2, ffn_dim=32),
        quantizer=QuantizerConfig(codebook_size=32, dim=8),
        decoder=DecoderConfig(dim=16, num_layers=2, num_heads=2, ffn_dim=32, timestep_dim=32),
    ),
}


def tokenizer_config(size: str, **changes) -> TokenizerConfig:
    """A copy of the named size ("tiny" | "paper"), with top-level fields replaced."""
    if size not in SIZES:
        raise KeyError(f"unknown tokenizer size {size!r}; known: {sorted(SIZES)}")
    base = from_dict(TokenizerConfig, to_dict(SIZES[size]))  # deep copy
    return replace(base, **changes)


@dataclass
class TokenizerLoss:
    """Losses and statistics of one training forward."""

    loss: torch.Tensor
    "Total: reconstruction (flow or MSE) + quantizer loss."
    recon_loss: torch.Tensor
    "Flow-matching loss (cfm) or latent MSE (mse), over valid frames."
    quantizer: QuantizerOutput
    "Codes, VQ loss and usage statistics."


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over valid frames of [B, T, L] tensors."""
    err = (pred.float() - target.float()).pow(2)
    if mask is None:
        return err.mean()
    weights = mask[..., None].float()
    return (err * weights).sum() / (weights.sum() * err.shape[-1]).clamp_min(1.0)


class AudioTokenizer(nn.Module):
    """Waveform <-> discrete audio tokens.

    Args:
        vae: frozen latent autoencoder (None: latent-only; `encode`/`decode` unavailable).
        encoder: causal encoder [B, T, L] -> [B, T, Q].
        quantizer: VQ codebook.
        decoder: DiT vector field.
        config: the config the parts were built from (saved by `save_pretrained`).
    """

    def __init__(
        self,
        vae: LatentAutoencoder | None,
        encoder: CausalEncoder,
        quantizer: VectorQuantizer,
        decoder: DiTDecoder,
        config: TokenizerConfig,
    ) -> None:
        super().__init__()
        self.vae = vae
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.config = config
        mean = torch.tensor(config.latent_mean or [0.0] * config.latent_dim, dtype=torch.float32)
        scale = config.latent_scale if isinstance(config.latent_scale, list) else [config.latent_scale] * config.latent_dim
        # From the config, not the weights file.
        self.register_buffer("latent_mean", mean, persistent=False)  # [L]
        self.register_buffer("latent_scale", torch.tensor(scale, dtype=torch.float32), persistent=False)  # [L]

    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE latents -> the tokenizer's working space: (z - latent_mean) * latent_scale."""
        return (latents - self.latent_mean) * self.latent_scale

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize`."""
        return x / self.latent_scale + self.latent_mean

    # ----------------------------------------------------------------- properties
    @property
    def latent_dim(self) -> int:
        return self.vae.latent_dim if self.vae is not None else self.config.latent_dim

    @property
    def sample_rate(self) -> int:
        if self.vae is not None:
            return self.vae.sample_rate
        return frontend_info(self.config.vae.architecture).sample_rate

    @property
    def frame_rate(self) -> float:
        """Tokens per second."""
        if self.vae is not None:
            return self.vae.sample_rate / self.vae.downsampling_ratio
        return self.config.frame_rate

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def bitrate(self) -> float:
        """Bits per second: frame_rate x log2(codebook_size)."""
        return self.frame_rate * math.log2(self.codebook_size)

    def _device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def _require_vae(self) -> LatentAutoencoder:
        if self.vae is None:
            raise RuntimeError(
                "this AudioTokenizer was built without its VAE (latent-only); use encode_latents/decode_latents "
                "or load it with AudioTokenizer.from_pretrained(dir) / build_tokenizer(config, with_vae=True)"
            )
        return self.vae

    # ----------------------------------------------------------------- latents
    def _check_latents(self, latents: torch.Tensor) -> None:
        if latents.dim() != 3 or latents.shape[-1] != self.latent_dim:
            raise ValueError(f"latents must be [B, T, {self.latent_dim}] (time-major); got {tuple(latents.shape)}")

    @torch.no_grad()
    def encode_latents(self, latents: torch.Tensor, mask: torch.Tensor | None = None,
                       chunk_frames: int | None = None) -> torch.Tensor:
        """VAE latents [B, T, L] -> codes [B, T] int64 (padding frames, if masked, still get codes).

        chunk_frames: encode in chunks with a key/value cache (`CausalEncoder.forward_chunked`):
        the same codes, attention memory linear in T (long audio); None: one pass.
        """
        self._check_latents(latents)
        x = self.normalize(latents.to(self._device(), torch.float32))
        h = self.encoder(x, mask) if chunk_frames is None else self.encoder.forward_chunked(x, chunk_frames)  # [B, T, Q]
        return self.quantizer.encode(h)

    @torch.no_grad()
    def decode_latents(
        self,
        codes: torch.Tensor,
        steps: int | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        mask: torch.Tensor | None = None,
        window: int | None = None,
        overlap: int | None = None,
        method: str | None = None,
    ) -> torch.Tensor:
        """Codes [B, T] -> latents [B, T, L] by the ODE (cfm) or one pass (mse).

        Args:
            codes: [B, T] int64 in [0, codebook_size).
            steps / temperature / method: override `config.flow` for this call (method: a
                torchdiffeq solver name or "euler"/"midpoint"). steps=1, temperature=0,
                method="euler" is the decoder's estimate of the conditional mean E[z | codes]
                (`lmmsn.tokenizer.flow.CONDITIONAL_MEAN`).
            generator: source of the starting noise, for reproducible decodes.
            mask: [B, T] bool, valid frames of a padded batch.
            window / overlap: decode more than `window` frames in windows of `window` frames
                overlapping by `overlap`, cross-faded linearly (None: `config.decode_window` /
                `config.decode_overlap`; a window of None is one pass). Every window starts from
                its slice of one noise draw for the whole clip, so overlapping frames start equal.
        """
        codes = codes.to(self._device())
        window = self.config.decode_window if window is None else window
        overlap = self.config.decode_overlap if overlap is None else overlap
        length = codes.shape[1]
        if window is None or length <= window:
            return self._decode_pass(codes, steps, temperature, generator, mask, noise=None, method=method)
        if not 0 <= overlap < window:
            raise ValueError(f"decode overlap must be in [0, window); got window {window}, overlap {overlap}")
        dev = codes.device
        noise = None
        if self.config.flow.objective != "mse":
            noise = torch.randn((*codes.shape, self.latent_dim), device=dev, generator=generator)
        out = torch.zeros((*codes.shape, self.latent_dim), device=dev)
        weight = torch.zeros(length, device=dev)
        for start in window_starts(length, window, overlap):
            span = slice(start, start + window)
            part_mask = None
            if mask is not None:  # a row that is all padding here still needs one valid frame to attend to
                part_mask = mask[:, span].clone()
                part_mask[~part_mask.any(1)] = True
            z = self._decode_pass(codes[:, span], steps, temperature, None, part_mask,
                                  noise=None if noise is None else noise[:, span], method=method)
            w = crossfade(window, overlap, fade_in=start > 0, fade_out=start + window < length).to(dev)
            out[:, span] += z.float() * w[None, :, None]
            weight[span] += w
        return out / weight[None, :, None]

    def _decode_pass(self, codes: torch.Tensor, steps: int | None, temperature: float | None,
                     generator: torch.Generator | None, mask: torch.Tensor | None, noise: torch.Tensor | None,
                     method: str | None = None) -> torch.Tensor:
        """One decoder pass over all of `codes` [B, T] -> latents [B, T, L] (denormalized)."""
        q = self.quantizer.decode(codes)  # [B, T, Q]
        shape = (*codes.shape, self.latent_dim)
        if self.config.flow.objective == "mse":
            zeros = torch.zeros(shape, device=q.device, dtype=q.dtype)
            z = self.decoder(zeros, torch.zeros(codes.shape[0], device=q.device), q, mask)
        else:
            z = flow_lib.sample(
                lambda x, t: self._velocity(x, t, q, mask),
                shape,
                self.config.flow,
                steps=steps,
                temperature=temperature,
                method=method,
                generator=generator,
                device=q.device,
                dtype=q.dtype,
                source_mean=self._source_mean(q),
                noise=noise,
            )
        return self.denormalize(z)

    # ----------------------------------------------------------------- waveforms
    @torch.no_grad()
    def encode(self, wav: torch.Tensor, sample_rate: int | None = None, chunk_frames: int | None = None) -> torch.Tensor:
        """Waveform [B, C, N] or [C, N] -> codes [B, T] int64.

        chunk_frames: latents longer than this are encoded in chunks with a key/value cache
        (the same codes; for streaming, or attention kernels whose memory grows as T^2);
        None: one pass. On CPU one causal pass is the better default: torch's flash kernel
        keeps its memory linear in T, and chunking saved none and ran 2x slower on 30 minutes
        of latents (bench/long_encode.py, docs/performance.md).
        """
        z = self._require_vae().encode(wav, sample_rate).transpose(1, 2).float()  # [B, T, L]
        chunked = chunk_frames is not None and z.shape[1] > chunk_frames
        return self.encode_latents(z, chunk_frames=chunk_frames if chunked else None)

    @torch.no_grad()
    def decode(
        self,
        codes: torch.Tensor,
        steps: int | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        length: int | None = None,
        window: int | None = None,
        overlap: int | None = None,
        method: str | None = None,
    ) -> torch.Tensor:
        """Codes [B, T] -> waveform [B, C, N] (cut to `length` samples if given); window /
        overlap / method as in `decode_latents` (the VAE decodes the blended latents in one pass)."""
        vae = self._require_vae()
        if codes.dim() == 1:
            codes = codes[None]
        z = self.decode_latents(codes, steps=steps, temperature=temperature, generator=generator,
                                window=window, overlap=overlap, method=method)  # [B, T, L]
        return vae.decode(z.transpose(1, 2), length)

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The ODE's vector field: the decoder's output, or the velocity derived from its data prediction."""
        out = self.decoder(x, t, q, mask)
        if self.config.flow.prediction == "data":
            return flow_lib.velocity_from_data(out, x, t, self.config.flow.sigma_min)
        return out

    def _source_mean(self, quantized: torch.Tensor) -> torch.Tensor | None:
        """The flow's source mean: the code vectors (detached) with `flow.source: codes`, else None."""
        if self.config.flow.source != "codes":
            return None
        return quantized.detach()

    # ----------------------------------------------------------------- training
    def compute_loss(
        self, latents: torch.Tensor, mask: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> TokenizerLoss:
        """Training loss on latents [B, T, L] with valid-frame mask [B, T].

        cfm: OT-CFM regression of u_t (or of x1 with `flow.prediction: data`) at a
        random t per clip; mse: the decoder at t = 0 from zeros predicts the latents.
        Both add the VQ loss.
        """
        self._check_latents(latents)
        x1 = self.normalize(latents)  # [B, T, L]
        vq = self.quantizer(self.encoder(x1, mask), mask)
        if self.config.flow.objective == "mse":
            pred = self.decoder(torch.zeros_like(x1), torch.zeros(x1.shape[0], device=x1.device), vq.quantized, mask)
            recon = masked_mse(pred, x1, mask)
        else:
            flow = self.config.flow
            t, xt, ut = flow_lib.sample_path(x1, flow.sigma_min, generator, self._source_mean(vq.quantized), flow.source_scale)
            out = self.decoder(xt, t, vq.quantized, mask)
            recon = masked_mse(out, x1 if flow.prediction == "data" else ut, mask)
        return TokenizerLoss(loss=recon + vq.loss, recon_loss=recon, quantizer=vq)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters of each part (the VAE is frozen and not counted)."""
        return {
            name: sum(p.numel() for p in part.parameters())
            for name, part in (("encoder", self.encoder), ("quantizer", self.quantizer), ("decoder", self.decoder))
        }

    # ----------------------------------------------------------------- export
    def tokenizer_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights and codebook buffers, without the VAE."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("vae.")}

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `config.yaml` (the VAE by reference) + `model.safetensors` + `format_version`."""
        config = replace(self.config, vae=pinned(self.config.vae))  # the exact mel basis, by SHA-256
        path = save_exported(directory, EXPORT_KIND, to_dict(config), self.tokenizer_state_dict())
        logger.info("saved audio tokenizer to %s", path)
        return path

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        vae: LatentAutoencoder | None = None,
        device: str | torch.device | None = None,
        with_vae: bool = True,
    ) -> AudioTokenizer:
        """Rebuild from an exported directory's config alone, then load its weights.

        Args:
            directory: written by `save_pretrained`.
            vae: an already built VAE to use (None: build the referenced one if `with_vae`).
            device: where to put the model (None: CPU).
            with_vae: False gives a latent-only tokenizer (no VAE built).
        """
        config = read_tokenizer_config(directory)
        model = build_tokenizer(config, vae=vae, with_vae=with_vae)
        state = load_exported_weights(directory)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("vae.")]
        if missing or unexpected:
            raise ValueError(f"{directory}: weights do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.eval()
        return model.to(device) if device is not None else model


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """First frames of the decode windows over `length` frames: a hop of window - overlap,
    the last window ending at the last frame (it may overlap its neighbour by more)."""
    if length <= window:
        return [0]
    hop = window - overlap
    starts = list(range(0, length - window, hop))
    return starts + [length - window]


def crossfade(window: int, overlap: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """Blend weights [window] of one decode window: linear ramps over `overlap` frames at the
    ends that meet a neighbour, never exactly 0 (so every frame has weight), 1 elsewhere."""
    w = torch.ones(window)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if fade_in:
            w[:overlap] = torch.minimum(w[:overlap], ramp)
        if fade_out:
            w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def read_tokenizer_config(directory: str | Path) -> TokenizerConfig:
    """The config of an exported tokenizer directory (no model is built)."""
    source = str(Path(directory) / "config.yaml")
    return from_dict(TokenizerConfig, read_exported_config(directory, EXPORT_KIND), source=source)


def build_tokenizer(config: TokenizerConfig, vae: LatentAutoencoder | None = None, with_vae: bool = True) -> AudioTokenizer:
    """Wire an AudioTokenizer from its config.

    Args:
        config: sizes of every part.
        vae: a built VAE to use (must match `config.vae`'s latent dim); None builds `config.vae` if `with_vae`.
        with_vae: False builds no VAE (latent-only training and tests).
    """
    if vae is None and with_vae:
        vae = build_vae(config.vae)
    if vae is not None and vae.latent_dim != config.latent_dim:
        raise ValueError(f"VAE latent dim {vae.latent_dim} != config.vae ({config.vae.architecture}) latent dim {config.latent_dim}")
    latent_dim, code_dim = config.latent_dim, config.quantizer.dim
    return AudioTokenizer(
        vae=vae,
        encoder=CausalEncoder(config.encoder, latent_dim, code_dim),
        quantizer=VectorQuantizer(config.quantizer),
        decoder=DiTDecoder(config.decoder, latent_dim, code_dim),
        config=config,
    )


__all__ = ["SIZES", "AudioTokenizer", "TokenizerConfig", "TokenizerLoss", "build_tokenizer", "masked_mse", "tokenizer_config"]
