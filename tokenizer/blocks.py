"""Transformer blocks shared by the causal encoder and the DiT decoder.

Both networks of the tokenizer (paper Sec. III / IV-A) use "the same block
shape": pre-norm multi-head self-attention + a GELU feed-forward network. The
encoder runs it causally; the DiT decoder runs it bidirectionally and
modulates it with adaLN-Zero (Peebles & Xie, "Scalable Diffusion Models with
Transformers", Sec. 3.2).

Positions are rotary (RoPE, Su et al. 2021) inside attention: relative
positions suit clips cropped at arbitrary offsets and keep the encoder causal
(no absolute position table to look ahead into). Attention is
`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient
kernels on GPU).

Dimensions: B batch, T frames, H heads, E head dim, D model dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_block_sizes(what: str, dim: int, num_layers: int, num_heads: int, ffn_dim: int) -> None:
    """Validate a transformer stack's sizes (shared by the encoder and decoder configs).

    Raises:
        ValueError: a size is not positive, or `dim` does not split into `num_heads` heads of even
            size (rotary positions rotate pairs of channels).
    """
    if min(dim, num_layers, num_heads, ffn_dim) <= 0:
        raise ValueError(f"{what} dim, num_layers, num_heads and ffn_dim must be positive")
    if dim % num_heads or (dim // num_heads) % 2:
        raise ValueError(f"{what} dim {dim} must split into {num_heads} heads of even size")


def rotary_tables(length: int, head_dim: int, base: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of rotary embeddings, each [T, E/2] float32."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq  # [T, E/2]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the last dim of x [B, H, T, E]."""
    x1, x2 = x.float().chunk(2, dim=-1)  # [B, H, T, E/2] each
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation: x [B, T, D], shift/scale [B, D]."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions over SDPA.

    Args:
        dim: model dim D.
        num_heads: H; D must be divisible by H and the head dim E even.
        dropout: attention dropout (training only).
        rope_base: rotary frequency base.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, rope_base: float = 10000.0) -> None:
        super().__init__()
        if dim % num_heads or (dim // num_heads) % 2:
            raise ValueError(f"dim {dim} must split into {num_heads} heads of even size")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.rope_base = rope_base
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        """x [B, T, D]; mask [B, T] bool (True = valid frame) -> [B, T, D].

        Causal attention ignores `mask`: padding sits at the end of a
        sequence, so a valid frame never attends to it anyway, and the fast
        `is_causal` kernels stay usable.
        """
        b, t, d = x.shape
        q, k, v = self._qkv(x, 0)  # [B, H, T, E] each
        attn_mask = None
        if mask is not None and not causal:
            # Keys: valid frames; each frame may also see itself so fully padded
            # rows stay finite (their outputs are ignored downstream).
            eye = torch.eye(t, dtype=torch.bool, device=x.device)
            attn_mask = (mask[:, None, None, :] | eye)  # [B, 1, T, T]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
        )  # [B, H, T, E]
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


    def _qkv(self, x: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values [B, H, T, E] of x [B, T, D] at frames offset.. (rotary on q and k)."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_tables(offset + t, self.head_dim, self.rope_base, x.device)
        cos, sin = cos[offset:], sin[offset:]
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def forward_cached(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None,
                       offset: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Causal attention of a chunk x [B, C, D] at frames offset.. over the earlier frames' keys and
        values (`cache`, None for the first chunk); returns (out [B, C, D], the cache with this chunk)."""
        b, c, d = x.shape
        q, k, v = self._qkv(x, offset)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # [B, H, offset + C, E]
        keys = torch.arange(k.shape[2], device=x.device)
        allowed = keys[None, :] <= (offset + torch.arange(c, device=x.device))[:, None]  # [C, offset + C]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # [B, H, C, E]
        return self.proj(out.transpose(1, 2).reshape(b, c, d)), (k, v)


class FeedForward(nn.Module):
    """Linear -> GELU (tanh) -> Linear, as in DiT."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x), approximate="tanh")))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block, optionally modulated by adaLN-Zero.

    Args:
        dim: model dim D.
        num_heads: attention heads.
        ffn_dim: hidden dim of the feed-forward network.
        causal: causal self-attention (encoder) or bidirectional (decoder).
        adaln: modulate both sub-layers with shift/scale/gate computed from a
            conditioning vector c [B, D] (DiT's adaLN-Zero).
        dropout: attention / FFN dropout.
        rope_base: rotary frequency base.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        causal: bool = False,
        adaln: bool = False,
        dropout: float = 0.0,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        self.causal = causal
        # With adaLN the norms' affine parameters would duplicate the modulation.
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not adaln, eps=1e-6)
        self.attn = Attention(dim, num_heads, dropout, rope_base)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not adaln, eps=1e-6)
        self.ffn = FeedForward(dim, ffn_dim, dropout)
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)) if adaln else None

    def reset_parameters(self) -> None:
        """Xavier linears; adaLN-Zero: the modulation outputs start at zero, so
        every gate is 0 and the block starts as the identity (DiT Sec. 3.2)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        if self.adaln is not None:
            nn.init.zeros_(self.adaln[-1].weight)
            nn.init.zeros_(self.adaln[-1].bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, D]; mask [B, T] bool; c [B, D] (adaLN only) -> [B, T, D]."""
        if self.adaln is None:
            x = x + self.attn(self.norm1(x), mask, self.causal)
            return x + self.ffn(self.norm2(x))
        if c is None:
            raise ValueError("an adaLN block needs a conditioning vector c [B, D]")
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(c).chunk(6, dim=-1)  # [B, D] each
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1), mask, self.causal)
        return x + gate2[:, None] * self.ffn(modulate(self.norm2(x), shift2, scale2))

    def forward_cached(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None,
                       offset: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """`forward` of a causal block on a chunk at frames offset.., attending over `cache`
        (`Attention.forward_cached`); returns (x, the new cache)."""
        if not self.causal or self.adaln is not None:
            raise ValueError("forward_cached is for causal blocks without adaLN (the encoder's)")
        h, cache = self.attn.forward_cached(self.norm1(x), cache, offset)
        x = x + h
        return x + self.ffn(self.norm2(x)), cache


__all__ = ["Attention", "FeedForward", "TransformerBlock", "apply_rotary", "modulate", "rotary_tables"]
