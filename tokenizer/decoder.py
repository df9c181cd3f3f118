"""DiT vector-field estimator: v(x_t, t | quantized codes) (paper Sec. III, IV-A).

"The DiT decoder has a similar transformer block but without causal attention
and added timestep embeddings of 256 dimensions." Following DiT (Peebles &
Xie 2023, `models.py`): the timestep goes through a 256-dim sinusoidal
embedding and an MLP to the model width, and modulates every block with
adaLN-Zero; the final layer is adaLN + a zero-initialised linear, so the
untrained network outputs v = 0.

Conditioning on the quantized sequence is frame-aligned: the decoder input at
frame t is proj(x_t[t]) + proj(q[t]), i.e. a linear layer over their
concatenation (codes and latents share the frame rate), and bidirectional
attention lets every frame use the whole code sequence.

For the VQ+MSE ablation the same network is called with t = 0 and x = 0 and
its output is the latent itself (`lmmsn.tokenizer.flow.FlowConfig.objective`).

Dimensions: B batch, T frames, L latent dim, Q codebook dim, D model dim, F = 256.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lmmsn.tokenizer.blocks import TransformerBlock, check_block_sizes, modulate


@dataclass
class DecoderConfig:
    """DiT decoder (same block shape as the encoder, bidirectional, adaLN-Zero)."""

    dim: int = 64
    "Model width D."
    num_layers: int = 12
    "DiT blocks."
    num_heads: int = 4
    "Attention heads (head dim must be even)."
    ffn_dim: int = 768
    "Feed-forward hidden dim."
    timestep_dim: int = 256
    "Sinusoidal timestep embedding size F (paper: 256)."
    dropout: float = 0.0
    "Dropout in attention and FFN."
    rope_base: float = 10000.0
    "Rotary position frequency base."

    def __post_init__(self) -> None:
        check_block_sizes("decoder", self.dim, self.num_layers, self.num_heads, self.ffn_dim)
        if self.timestep_dim <= 0 or self.timestep_dim % 2:
            raise ValueError(f"timestep_dim must be positive and even, got {self.timestep_dim}")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t [B] in [0, 1] -> [B, dim] (DiT's TimestepEmbedder.timestep_embedding).

    t is scaled by 1000 so the [0, 1] flow time spans the same frequencies as
    DiT's integer diffusion steps.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # [B, F/2]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """t [B] -> sinusoid [B, F] -> MLP -> [B, D]."""

    def __init__(self, dim: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        freq = timestep_embedding(t, self.frequency_dim).to(self.mlp[0].weight.dtype)
        return self.mlp(freq)


class DiTDecoder(nn.Module):
    """Vector-field estimator v(x [B, T, L], t [B], q [B, T, Q]) -> [B, T, L].

    Args:
        config: block sizes and timestep embedding.
        latent_dim: L.
        cond_dim: Q, the codebook dim.
    """

    def __init__(self, config: DecoderConfig, latent_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.config = config
        self.x_proj = nn.Linear(latent_dim, config.dim)
        self.cond_proj = nn.Linear(cond_dim, config.dim)
        self.t_embed = TimestepEmbedder(config.dim, config.timestep_dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.dim,
                config.num_heads,
                config.ffn_dim,
                causal=False,
                adaln=True,
                dropout=config.dropout,
                rope_base=config.rope_base,
            )
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim, elementwise_affine=False, eps=1e-6)
        self.final_adaln = nn.Sequential(nn.SiLU(), nn.Linear(config.dim, 2 * config.dim))
        self.out_proj = nn.Linear(config.dim, latent_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DiT's initialisation.

        Xavier linears; timestep MLP N(0, 0.02); every adaLN modulation and the
        output projection zero-initialised (adaLN-Zero): each block starts as
        the identity and the network's first prediction is v = 0, which keeps
        early flow-matching losses at the scale of the target instead of
        adding a random field to it.
        """
        for block in self.blocks:
            block.reset_parameters()
        for linear in (self.x_proj, self.cond_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        for layer in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
        for layer in (self.final_adaln[-1], self.out_proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, T, L] noisy latents, t [B] times, cond [B, T, Q] quantized codes, mask [B, T] -> [B, T, L]."""
        h = self.x_proj(x) + self.cond_proj(cond)  # [B, T, D]
        c = self.t_embed(t)  # [B, D]
        for block in self.blocks:
            h = block(h, mask, c)
        shift, scale = self.final_adaln(c).chunk(2, dim=-1)  # [B, D] each
        return self.out_proj(modulate(self.final_norm(h), shift, scale))  # [B, T, L]


__all__ = ["DecoderConfig", "DiTDecoder", "TimestepEmbedder", "timestep_embedding"]
