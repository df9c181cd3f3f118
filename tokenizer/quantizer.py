"""Vector quantizer: one codebook of K x Q vectors (paper: 8196 x 64).

Nearest-neighbour lookup with the straight-through estimator (van den Oord
et al. 2017, "Neural Discrete Representation Learning", Eq. 3): the decoder's
gradient reaches the encoder as if quantization were the identity.

How the codebook learns is configurable (`QuantizerConfig.update`):

- "ema" (default): codebook vectors are exponential moving averages of the
  encoder outputs assigned to them (VQ-VAE paper App. A.1; SoundStream,
  EnCodec). Chosen as default because it needs no codebook-loss weight, is
  insensitive to the optimiser's learning rate (the paper's AdamW 1e-4 would
  move an 8196-entry codebook slowly) and is what audio codecs ship with.
  Only the commitment loss (beta * ||x - sg(q)||^2) trains the encoder side.
- "loss": the codebook is a parameter trained by the codebook loss
  ||sg(x) - q||^2 plus the same commitment loss (the original VQ-VAE).

Dead codes are replaced by randomly chosen encoder outputs of the current
batch (Dhariwal et al. 2020, Jukebox; audiocraft). A code is dead when its EMA
assignment count falls below `dead_code_fraction` times the mean EMA count,
i.e. a fraction of the count every code would get under uniform use (frames
per step / K). A threshold in absolute counts, as Jukebox's 1.0 with its very
large batches, is a trap at other scales: with ~550 frames per batch and
K = 1024 the uniform count is 0.54, so an absolute threshold of 1 declared
most codes dead at every step and the codebook churned for a whole run. A
restarted code gets the mean count, a grace period of about
ln(1 / fraction) / (1 - ema_decay) steps (230 at 0.1 and 0.99) to win
vectors before it can be declared dead again. Counts start at zero, so the
first training step initialises the whole codebook from data. Under DDP the
statistics are summed over ranks and the replacement vectors come from rank
0, so every rank holds the same codebook without DDP broadcasting buffers.

Usage statistics returned every step: perplexity of the batch's code
histogram, the fraction of the codebook used in the batch, `active_fraction`
(codes above the dead threshold *before* this step's restarts, so restarted
codes never count as active) and `replaced` (restarts this step).

Dimensions: B batch, T frames, Q codebook dim, K codebook size, N = valid frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizerConfig:
    """Vector-quantizer codebook."""

    codebook_size: int = 8196
    "K entries (paper: 8196, as printed)."
    dim: int = 64
    "Q, dim of each entry (paper: 64)."
    update: Literal["ema", "loss"] = "ema"
    "How the codebook learns: EMA of assigned vectors, or codebook loss through the optimiser."
    commitment_weight: float = 0.25
    "beta of the commitment loss ||x - sg(q)||^2."
    codebook_weight: float = 1.0
    "Weight of the codebook loss ||sg(x) - q||^2 (update='loss' only)."
    ema_decay: float = 0.99
    "EMA decay of counts and sums (update='ema'; counts also drive dead-code detection in 'loss' mode)."
    epsilon: float = 1e-5
    "Laplace smoothing of EMA counts."
    dead_code_fraction: float = 0.1
    "Codes whose EMA count falls below this fraction of the mean EMA count (uniform use) are re-initialised from batch vectors; 0 disables."

    def __post_init__(self) -> None:
        if self.codebook_size < 2 or self.dim <= 0:
            raise ValueError(f"codebook needs >= 2 entries of positive dim, got {self.codebook_size} x {self.dim}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.commitment_weight < 0 or self.codebook_weight < 0:
            raise ValueError("quantizer loss weights must be >= 0")
        if not 0.0 <= self.dead_code_fraction < 1.0:
            raise ValueError(f"dead_code_fraction must be in [0, 1), got {self.dead_code_fraction}")


@dataclass
class QuantizerOutput:
    """What one quantizer forward returns."""

    quantized: torch.Tensor
    "[B, T, Q], straight-through in training."
    codes: torch.Tensor
    "[B, T] int64."
    loss: torch.Tensor
    "Scalar: commitment (+ codebook) loss over valid frames."
    perplexity: torch.Tensor
    "Scalar: exp(entropy) of the batch's code histogram."
    used_fraction: torch.Tensor
    "Scalar: fraction of the K codes used at least once in the batch."
    active_fraction: torch.Tensor
    "Scalar: fraction of codes above the dead threshold before this step's restarts (training; in eval: now)."
    replaced: int | torch.Tensor = 0
    "Codes re-initialised this step (a 0-dim tensor in training: no host sync)."


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _masked_mean(value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of value [B, T, Q] over valid frames (and Q)."""
    if mask is None:
        return value.mean()
    weights = mask[..., None].to(value.dtype)
    return (value * weights).sum() / (weights.sum() * value.shape[-1]).clamp_min(1.0)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantizer with EMA or loss-trained codebook.

    Args:
        config: codebook size, dim, update rule and dead-code handling.
    """

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config
        embed = torch.randn(config.codebook_size, config.dim)  # [K, Q]; replaced from data at step 1
        if config.update == "ema":
            self.register_buffer("embed", embed)
        else:
            self.embed = nn.Parameter(embed)
        self.register_buffer("cluster_size", torch.zeros(config.codebook_size))  # [K] EMA counts
        self.register_buffer("embed_sum", torch.zeros(config.codebook_size, config.dim))  # [K, Q] EMA sums

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest codes: x [..., Q] -> [...] int64 (squared Euclidean distance, in float32)."""
        flat = x.reshape(-1, x.shape[-1]).float()  # [N, Q]
        embed = self.embed.float()  # [K, Q]
        with torch.autocast(device_type=flat.device.type, enabled=False):
            dist2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1)[None]  # [N, K]
        return dist2.argmin(dim=1).view(x.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook lookup: codes [...] -> [..., Q]."""
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")
        return F.embedding(codes, self.embed)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizerOutput:
        """Quantize x [B, T, Q]; mask [B, T] bool marks valid frames (stats and updates use only those).

        Written without data-dependent shapes or host syncs (masked frames weigh 0 instead of
        being selected; dead codes are replaced with `torch.where`), so the training step
        compiles as one graph (tests/tokenizer/test_quantizer.py: 0 graph breaks).
        """
        codes = self.encode(x)  # [B, T]
        weight = torch.ones(codes.shape, device=x.device) if mask is None else mask.float()  # [B, T]
        flat_x = x.detach().reshape(-1, x.shape[-1]).float()  # [N, Q]
        flat_codes, flat_w = codes.reshape(-1), weight.reshape(-1)  # [N]
        counts = torch.zeros(self.codebook_size, device=x.device).index_add_(0, flat_codes, flat_w)  # [K]
        sums = torch.zeros_like(self.embed_sum).index_add_(0, flat_codes, flat_x * flat_w[:, None])  # [K, Q]
        if _distributed():
            stats = torch.cat([counts[:, None], sums], dim=1)
            dist.all_reduce(stats)
            counts, sums = stats[:, 0], stats[:, 1:]

        replaced: int | torch.Tensor = 0
        if self.training:
            replaced, active = self._update(flat_x, flat_w, counts, sums)
            if self.config.dead_code_fraction > 0:
                if torch.compiler.is_compiling():  # in the graph: both, selected (no data-dependent branch)
                    codes = torch.where(replaced > 0, self.encode(x), codes)
                elif int(replaced) > 0:  # eager: re-encode only when codes moved (one host sync)
                    codes = self.encode(x)
        else:
            active = (self.cluster_size >= self.dead_threshold()).float().mean()

        quantized = F.embedding(codes, self.embed)  # [B, T, Q]; codes come from encode: in range
        loss = self.config.commitment_weight * _masked_mean((x - quantized.detach()).pow(2), mask)
        if self.config.update == "loss":
            loss = loss + self.config.codebook_weight * _masked_mean((x.detach() - quantized).pow(2), mask)
        if self.training:
            quantized = x + (quantized - x).detach()  # straight-through estimator

        probs = counts / counts.sum().clamp_min(1.0)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        return QuantizerOutput(
            quantized=quantized,
            codes=codes,
            loss=loss,
            perplexity=perplexity,
            used_fraction=(counts > 0).float().mean(),
            active_fraction=active,
            replaced=replaced,
        )

    def dead_threshold(self) -> torch.Tensor:
        """EMA count under which a code is dead: dead_code_fraction x the mean EMA count (0-dim)."""
        return self.config.dead_code_fraction * self.cluster_size.mean()

    @torch.no_grad()
    def _update(self, flat_x: torch.Tensor, flat_w: torch.Tensor, counts: torch.Tensor,
                sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EMA statistics, EMA codebook (update='ema') and dead-code replacement.

        Args:
            flat_x: [N, Q] frames; flat_w: [N] their weights (1 valid, 0 masked).

        Returns:
            (codes replaced: a 0-dim tensor, fraction of codes active before the replacement).
        """
        decay = self.config.ema_decay
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
        if self.config.update == "ema":
            total = self.cluster_size.sum()
            k, eps = self.codebook_size, self.config.epsilon
            smoothed = (self.cluster_size + eps) / (total + k * eps) * total  # [K], Laplace smoothing
            used = self.cluster_size > 0
            # Codes never assigned keep their vector instead of collapsing towards 0.
            ema = self.embed_sum / smoothed.clamp_min(1e-12)[:, None]
            self.embed.data.copy_(torch.where(used[:, None], ema, self.embed.data.float()).to(self.embed.dtype))
        threshold = self.dead_threshold()
        dead = self.cluster_size < threshold  # [K]
        active = 1.0 - dead.float().mean()
        if self.config.dead_code_fraction <= 0:
            return torch.zeros((), device=dead.device, dtype=torch.long), active
        # Replacement vectors: random valid frames of rank 0's batch (one drawn for every code, used
        # where the code is dead), broadcast to all ranks; no valid frame: the code keeps its vector.
        has_valid = flat_w.sum() > 0
        index = torch.multinomial(flat_w + (~has_valid).float(), self.codebook_size, replacement=True)  # [K]
        new = torch.where(has_valid, flat_x[index], self.embed.data.float())  # [K, Q]
        if _distributed():
            dist.broadcast(new, src=0)
        grace = self.cluster_size.mean()  # a restarted code starts at uniform use
        self.embed.data.copy_(torch.where(dead[:, None], new, self.embed.data.float()).to(self.embed.dtype))
        self.cluster_size.copy_(torch.where(dead, grace, self.cluster_size))
        self.embed_sum.copy_(torch.where(dead[:, None], new * grace, self.embed_sum))
        return dead.sum(), active
