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

from lmmsn.tokenizer.blocks import TransformerBlock, check_block_sizes


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
    residual: bool = False
    "Add the input latents (linearly mapped when L != Q) to the output, with the output projection zero-initialised: the encoder starts as that map and the VQ as k-means of the latents, and the blocks learn what context adds."

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
        self.skip: nn.Module | None = None
        if config.residual:
            self.skip = nn.Identity() if latent_dim == out_dim else nn.Linear(latent_dim, out_dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier linears, zero biases. Without the residual path the output projection is
        not zero-initialised: the output feeds the quantizer, which needs spread-out vectors
        from the first step; with it, the output starts as the skip map of the latents
        (already spread out), so the projection starts at zero."""
        for block in self.blocks:
            block.reset_parameters()
        for linear in (self.in_proj, self.out_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        if self.skip is not None:
            nn.init.zeros_(self.out_proj.weight)
            if isinstance(self.skip, nn.Linear):
                nn.init.orthogonal_(self.skip.weight)

    def forward(self, latents: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """latents [B, T, L], mask [B, T] bool (unused by causal attention) -> [B, T, Q]."""
        x = self.in_proj(latents)  # [B, T, D]
        for block in self.blocks:
            x = block(x, mask)
        out = self.out_proj(self.norm(x))  # [B, T, Q]
        return out if self.skip is None else out + self.skip(latents)


    @torch.no_grad()
    def forward_chunked(self, latents: torch.Tensor, chunk_frames: int) -> torch.Tensor:
        """`forward` in chunks of `chunk_frames` with a key/value cache: the same output, for any length.

        The encoder is causal, so frame t depends on frames <= t only; each chunk's queries attend
        to every earlier frame's cached keys and values (rotary positions absolute) and causally
        within the chunk. Memory: the cache (layers x 2 x T x D) and one chunk's attention
        [chunk x T], instead of [T x T] (tests/tokenizer/test_encoder.py: equal to one pass).
        """
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        caches: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.blocks)
        outs = []
        for start in range(0, latents.shape[1], chunk_frames):
            piece = latents[:, start : start + chunk_frames]  # [B, C, L]
            x = self.in_proj(piece)  # [B, C, D]
            for i, block in enumerate(self.blocks):
                x, caches[i] = block.forward_cached(x, caches[i], start)
            out = self.out_proj(self.norm(x))  # [B, C, Q]
            outs.append(out if self.skip is None else out + self.skip(piece))
        return torch.cat(outs, dim=1)  # [B, T, Q]


__all__ = ["CausalEncoder", "EncoderConfig"]
