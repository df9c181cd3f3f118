"""Causal transformer encoder: VAE latents -> vectors to quantize (paper Sec. III, IV-A).

"A feedforward transformer with causal attention, with 12 blocks, attention
dimension of 64, and hidden dimension of 768." We read "attention dimension"
as the model (residual) width, as in ESPnet's `adim` / `eunits` naming that
this wording matches: D = 64 split into 4 heads of 16, FFN hidden 768. Width,
heads and FFN are all configurable (`EncoderConfig`). Causal attention gives
the left-to-right bias of SEED (paper ref. [3]): frame t is encoded from
frames <= t only, which `tests/tokenizer/test_encoder.py` checks by gradient.

Dimensions: B batch, T frames, L latent dim, D model dim, Q codebook dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lmmsn.blocks import TransformerBlock, check_block_sizes


@dataclass
class EncoderConfig:
    """Causal transformer encoder."""

    dim: int = 64
    "Model (attention) width D; the paper's 'attention dimension 64'."
    num_layers: int = 12
    "Transformer blocks."
    num_heads: int = 4
    "Attention heads (head dim = dim / num_heads, must be even for rotary positions)."
    ffn_dim: int = 768
    "Feed-forward hidden dim (paper: 768)."
    dropout: float = 0.0
    "Dropout in attention and FFN."
    rope_base: float = 10000.0
    "Rotary position frequency base."

    def __post_init__(self) -> None:
        check_block_sizes("encoder", self.dim, self.num_layers, self.num_heads, self.ffn_dim)


class CausalEncoder(nn.Module):
    """Latents [B, T, L] -> pre-quantization vectors [B, T, Q], causal in T.

    Args:
        config: block sizes.
        latent_dim: L, the VAE latent dim.
        out_dim: Q, the codebook dim.
    """

    def __init__(self, config: EncoderConfig, latent_dim: int, out_dim: int) -> None:
        super().__init__()
        self.config = config
        self.in_proj = nn.Linear(latent_dim, config.dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.dim, config.num_heads, config.ffn_dim, causal=True, dropout=config.dropout, rope_base=config.rope_base
            )
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(config.dim)
        self.out_proj = nn.Linear(config.dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier linears, zero biases (no zero-init: the output feeds the quantizer,
        which needs spread-out vectors from the first step)."""
        for block in self.blocks:
            block.reset_parameters()
        for linear in (self.in_proj, self.out_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """latents [B, T, L], mask [B, T] bool (unused by causal attention) -> [B, T, Q]."""
        x = self.in_proj(latents)  # [B, T, D]
        for block in self.blocks:
            x = block(x, mask)
        return self.out_proj(self.norm(x))  # [B, T, Q]


__all__ = ["CausalEncoder", "EncoderConfig"]
