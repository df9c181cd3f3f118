"""Constrained, KV-cached decoding of mixed text / audio-token sequences.

The LLM writes audio as `<soa> a_i a_j ... <eoa>` (paper Fig. 2b). Sampling
freely from the whole vocabulary would let a text token land inside an audio
span, which the tokenizer cannot decode. `AudioSpanLogitsProcessor` is a
transformers `LogitsProcessor` that, for every row of the batch, reads the
state of the sequence so far and masks the next-token scores:

- inside an audio span (the last `<soa>` comes after the last `<eoa>`): only
  audio ids and `<eoa>` may follow; `<eoa>` is forbidden until `min_tokens`
  audio tokens were written and forced once `max_tokens` were (the length
  bound `seconds * frame_rate`);
- outside a span: audio ids and `<eoa>` are forbidden; `<soa>` only when
  audio output is allowed.

Decoding itself is transformers `generate` (KV cache, left-padded batches,
greedy / temperature / top-p / top-k sampling) under `torch.inference_mode`;
`sample` adds seeding that neither disturbs nor depends on the global RNG.

Dimensions: B batch, L sequence length so far, V vocabulary size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor, LogitsProcessorList

logger = logging.getLogger(__name__)


def audio_token_budget(seconds: float, frame_rate: float) -> int:
    """Number of audio tokens that cover `seconds` (floor, at least 1).

    The VAE keeps whole latent frames (10 s at 44100 / 2048 Hz -> 215).
    """
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    # A small tolerance so 10 s * 21.5 frames/s lands on 215, not 214.99... -> 214.
    return max(1, int(math.floor(seconds * frame_rate + 1e-6)))


@dataclass
class AudioSpanConstraint:
    """The id layout and limits the processor enforces."""

    soa_id: int
    """Token id of `<soa>`."""
    eoa_id: int
    """Token id of `<eoa>`."""
    audio_ids: Sequence[int]
    """Token ids of the audio codes (any order; need not be contiguous)."""
    max_tokens: int | None = None
    """Most audio tokens in one span; `<eoa>` is forced after that (None: no bound)."""
    min_tokens: int = 1
    """Fewest audio tokens in one span before `<eoa>` may be sampled."""
    allow_audio_output: bool = True
    """Whether the model may open an audio span (`<soa>`) outside one."""
    extra_forbidden_ids: Sequence[int] = field(default_factory=tuple)
    """Ids never allowed anywhere (e.g. padding)."""

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.min_tokens < 0:
            raise ValueError(f"min_tokens must be >= 0, got {self.min_tokens}")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens {self.min_tokens} > max_tokens {self.max_tokens}")
        if len(self.audio_ids) == 0:
            raise ValueError("audio_ids is empty")
        if self.soa_id in self.audio_ids or self.eoa_id in self.audio_ids:
            raise ValueError("<soa>/<eoa> ids overlap the audio ids")


class AudioSpanLogitsProcessor(LogitsProcessor):
    """Mask next-token scores so audio spans hold only audio ids, of bounded length.

    Stateless: the state of each row (inside a span or not, tokens written in
    it) is recomputed from `input_ids` at every step, so the processor works
    with any batch size, left padding, beam search and prompts that already
    open a span (`... ASSISTANT: <soa>`). The cost is O(B * L) per step,
    negligible beside the forward pass.
    """

    def __init__(self, constraint: AudioSpanConstraint, vocab_size: int) -> None:
        self.constraint = constraint
        self.vocab_size = vocab_size
        c = constraint
        top = max(max(c.audio_ids), c.soa_id, c.eoa_id)
        if top >= vocab_size:
            raise ValueError(f"token id {top} is outside the vocabulary of size {vocab_size}")
        is_audio = torch.zeros(vocab_size, dtype=torch.bool)
        is_audio[list(c.audio_ids)] = True
        self._is_audio = is_audio  # [V]
        # Allowed next tokens inside a span (audio + <eoa>) and outside one.
        inside = is_audio.clone()
        inside[c.eoa_id] = True
        outside = ~is_audio
        outside[c.eoa_id] = False
        outside[c.soa_id] = c.allow_audio_output
        for i in c.extra_forbidden_ids:
            inside[i] = outside[i] = False
        self._inside = inside
        self._outside = outside
        self._cache_device: torch.device | None = None

    def _on(self, device: torch.device) -> None:
        if self._cache_device != device:
            self._is_audio = self._is_audio.to(device)
            self._inside = self._inside.to(device)
            self._outside = self._outside.to(device)
            self._cache_device = device

    def span_state(self, input_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inside [B] bool, audio tokens written in the open span [B] long)."""
        c = self.constraint
        self._on(input_ids.device)
        B, L = input_ids.shape
        pos = torch.arange(1, L + 1, device=input_ids.device).expand(B, L)  # [B, L], 1-based
        last_soa = torch.where(input_ids == c.soa_id, pos, 0).amax(dim=1)  # [B]
        last_eoa = torch.where(input_ids == c.eoa_id, pos, 0).amax(dim=1)  # [B]
        inside = last_soa > last_eoa  # [B]
        in_span = pos > last_soa[:, None]  # [B, L]
        count = (self._is_audio[input_ids.clamp(0, self.vocab_size - 1)] & in_span).sum(dim=1)  # [B]
        return inside, count

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        c = self.constraint
        V = scores.shape[-1]
        inside, count = self.span_state(input_ids)
        allowed = torch.where(inside[:, None], self._inside[:V], self._outside[:V])  # [B, V]
        if c.max_tokens is not None:
            full = inside & (count >= c.max_tokens)  # [B]: only <eoa> may follow
            if full.any():
                allowed[full] = False
                allowed[full, c.eoa_id] = True
        if c.min_tokens > 0:
            short = inside & (count < c.min_tokens)  # [B]: <eoa> not yet
            allowed[short, c.eoa_id] = False
        return scores.masked_fill(~allowed, float("-inf"))


class ProgressProcessor(LogitsProcessor):
    """Advance a tqdm bar by one per generated token (changes no scores)."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.bar.update(1)
        return scores


@dataclass
class SamplingConfig:
    """How the LLM picks each next token."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float | None = None
    """Nucleus sampling mass (None or 1.0: off)."""
    top_k: int | None = None
    """Sample among the k most likely tokens (None or 0: off)."""
    repetition_penalty: float | None = None
    """transformers' repetition penalty (None: off)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    def generate_kwargs(self) -> dict:
        """Keyword arguments for `model.generate` (explicit, so model defaults never leak in)."""
        if self.temperature == 0:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p if self.top_p is not None else 1.0,
            "top_k": self.top_k if self.top_k is not None else 0,
            "repetition_penalty": self.repetition_penalty,
        }


def sample(
    model,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    sampling: SamplingConfig,
    constraint: AudioSpanConstraint | None,
    vocab_size: int,
    eos_token_id: int | list[int] | None,
    pad_token_id: int,
    seed: int | None = None,
    progress: bool = False,
    cache_implementation: str | None = None,
) -> torch.LongTensor:
    """Generate continuations of a left-padded batch with `model.generate`.

    Args:
        model: a transformers causal LM (or a peft model around one).
        input_ids: [B, L] prompt ids, left padded.
        attention_mask: [B, L], 0 on padding.
        max_new_tokens: most tokens to add per row.
        sampling: temperature / top-p / top-k.
        constraint: audio-span rules (None: unconstrained).
        vocab_size: number of rows of the output embedding.
        eos_token_id: id(s) that end a row.
        pad_token_id: id written after a row has ended.
        seed: seeds sampling for this call only (None: from the global RNG);
            same seed, device and batch size -> same tokens.
        progress: show a tqdm bar over generated tokens.
        cache_implementation: passed to `generate` (e.g. "static" on GPU).

    Returns:
        [B, L'] new token ids only (prompt removed), padded with `pad_token_id`.
    """
    from tqdm.auto import tqdm

    processors = LogitsProcessorList()
    if constraint is not None:
        processors.append(AudioSpanLogitsProcessor(constraint, vocab_size))
    bar = tqdm(total=max_new_tokens, desc="tokens", unit="tok", disable=not progress, leave=False)
    processors.append(ProgressProcessor(bar))
    kwargs = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        logits_processor=processors,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        use_cache=True,  # the prompt is encoded once; each step feeds one token
        **sampling.generate_kwargs(),
    )
    if cache_implementation is not None:
        kwargs["cache_implementation"] = cache_implementation
    devices = [input_ids.device] if input_ids.device.type == "cuda" else []
    try:
        # fork_rng: a seeded call leaves the caller's global RNG state untouched.
        with torch.random.fork_rng(devices=devices, enabled=seed is not None), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            out = model.generate(**kwargs)  # [B, L + new]
    finally:
        bar.close()
    return out[:, input_ids.shape[1] :]
