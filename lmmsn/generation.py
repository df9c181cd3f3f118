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

`sample` decodes with one of two engines, under `torch.inference_mode` and
with seeding that neither disturbs nor depends on the global RNG:

- "lmmsn" (default), `decode`: our own loop over the model's forward with a
  KV cache (transformers `StaticCache`, allocated once for prompt + new
  tokens, or `DynamicCache`). It applies the same processors in the same
  order as transformers `generate` and draws with the same `torch.multinomial`
  call, so with the same seed it writes the same tokens (tested), but keeps
  the span state incrementally (O(B) per step instead of O(B L)), computes
  logits for the last position only and skips `generate`'s per-step
  bookkeeping. It also does classifier-free guidance on audio spans
  (MusicGen, Copet et al. 2023, Sec. 2.4): conditional and unconditional
  prompts run as one batch of 2B rows, and inside an audio span the scores are
  cond + (s - 1)(cond - uncond), s = `SamplingConfig.guidance_scale`; both
  rows of a pair then receive the drawn token. s = 1 gives exactly the
  conditional scores.
  With `compile_step` (static cache only) the one-token forward runs through
  `torch.compile` (fixed shapes: the attention mask is allocated at its full
  length once, future positions being masked by causality through
  `cache_position`), compiled once per model and reused across calls; on CPU
  with the tiny model it removes most of the per-module Python overhead that
  dominates a step (bench/generate_engines.py).
- "transformers": `model.generate` (beam search and every other option of
  transformers, no guidance).

Dimensions: B batch, L sequence length so far, V vocabulary size.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

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
        inside, count = self.span_state(input_ids)
        return self.mask(scores, inside, count)

    def advance(self, tokens: torch.Tensor, inside: torch.Tensor, count: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The span state after appending `tokens` [B] (what `span_state` gives one token later)."""
        c = self.constraint
        self._on(tokens.device)
        is_soa, is_eoa = tokens == c.soa_id, tokens == c.eoa_id
        count = torch.where(is_soa, 0, count + (inside & self._is_audio[tokens.clamp(0, self.vocab_size - 1)]))
        inside = (inside | is_soa) & ~is_eoa
        return inside, count

    def _biases(self, V: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """[4, V]: 0 where allowed, -inf where not, for the states outside / inside / inside and full / inside and short."""
        key = (V, device, dtype)
        if getattr(self, "_bias_key", None) != key:
            c = self.constraint
            allowed = torch.stack([self._outside[:V], self._inside[:V], torch.zeros(V, dtype=torch.bool, device=device),
                                   self._inside[:V].clone()])
            allowed[2, c.eoa_id] = True  # full: only <eoa> may follow
            allowed[3, c.eoa_id] = False  # short: <eoa> not yet
            zero = torch.zeros((), dtype=dtype, device=device)
            self._bias = torch.where(allowed, zero, torch.tensor(float("-inf"), dtype=dtype, device=device))
            self._bias_key = key
        return self._bias

    def mask(self, scores: torch.Tensor, inside: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """Scores [B, V] with the tokens the span state (inside [B], count [B]) forbids at -inf.

        One precomputed row of 0 / -inf per state, added (no host sync, nothing rebuilt per step);
        allowed scores are unchanged, so the result equals masking them with `masked_fill`.
        """
        c = self.constraint
        self._on(scores.device)
        bias = self._biases(scores.shape[-1], scores.device, scores.dtype)
        full = count >= c.max_tokens if c.max_tokens is not None else torch.zeros_like(inside)
        short = count < c.min_tokens
        state = torch.where(inside, torch.where(full, 2, torch.where(short, 3, 1)), 0)  # [B]
        return scores + bias[state]


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
    guidance_scale: float = 1.0
    """Classifier-free guidance scale s on audio spans (1: off; needs unconditional prompts)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not math.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")

    def warpers(self) -> list[LogitsProcessor]:
        """The sampling warpers `generate` appends after the other processors, in its order."""
        if self.temperature == 0:
            return []
        out: list[LogitsProcessor] = []
        if self.temperature != 1.0:
            out.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k:
            out.append(TopKLogitsWarper(top_k=self.top_k, min_tokens_to_keep=1))
        if self.top_p is not None and self.top_p < 1.0:
            out.append(TopPLogitsWarper(top_p=self.top_p, min_tokens_to_keep=1))
        return out

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
    engine: Literal["lmmsn", "transformers"] = "lmmsn",
    unconditional_ids: torch.LongTensor | None = None,
    unconditional_mask: torch.Tensor | None = None,
    compile_step: bool = False,
) -> torch.LongTensor:
    """Generate continuations of a left-padded batch (engines: see the module docstring).

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
        cache_implementation: KV cache: "static" (allocated once) or None / "dynamic";
            the "transformers" engine passes any of its kinds on to `generate`.
        engine: "lmmsn" (`decode`) or "transformers" (`model.generate`).
        unconditional_ids, unconditional_mask: [B, L_u] left-padded prompts of the
            unconditional rows of classifier-free guidance (needed when
            `sampling.guidance_scale` != 1; engine "lmmsn" only).
        compile_step: engine "lmmsn" with cache_implementation "static": compile the
            one-token step (`torch.compile`, once per model).

    Returns:
        [B, L'] new token ids only (prompt removed), padded with `pad_token_id`.
    """
    from tqdm.auto import tqdm

    guided = sampling.guidance_scale != 1.0
    if engine == "lmmsn":
        bar = tqdm(total=max_new_tokens, desc="tokens", unit="tok", disable=not progress, leave=False)
        devices = [input_ids.device] if input_ids.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices, enabled=seed is not None), torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)
                return decode(model, input_ids, attention_mask, max_new_tokens=max_new_tokens, sampling=sampling,
                              constraint=constraint, vocab_size=vocab_size, eos_token_id=eos_token_id,
                              pad_token_id=pad_token_id, static_cache=cache_implementation == "static",
                              unconditional_ids=unconditional_ids, unconditional_mask=unconditional_mask,
                              on_token=bar.update, compile_step=compile_step)
        finally:
            bar.close()
    if engine != "transformers":
        raise ValueError(f"engine must be 'lmmsn' or 'transformers', got {engine!r}")
    if guided:
        raise ValueError("classifier-free guidance (guidance_scale != 1) needs engine='lmmsn'")
    if compile_step:
        raise ValueError("compile_step is an option of engine='lmmsn'")

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


# ---- our decoding loop ---------------------------------------------------------------------------


def _left_pad_together(a: torch.Tensor, mask_a: torch.Tensor, b: torch.Tensor, mask_b: torch.Tensor,
                       pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack two left-padded batches [B, La], [B, Lb] into one [2B, max(La, Lb)] batch."""
    length = max(a.shape[1], b.shape[1])

    def grow(x: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(x, (length - x.shape[1], 0), value=value)

    return torch.cat([grow(a, pad), grow(b, pad)]), torch.cat([grow(mask_a, 0), grow(mask_b, 0)])


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"model -> its compiled one-token step (`_compiled_step`), so repeated calls compile once."


def _last_logits(model, input_ids, attention_mask, position_ids, cache, cache_position) -> torch.Tensor:
    """Float32 logits [R, V] of the last position of one forward with the KV cache."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache,
                cache_position=cache_position, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1, :].to(copy=True, dtype=torch.float32)


def _compiled_step(model):
    step = _COMPILED.get(model)
    if step is None:
        def forward(input_ids, attention_mask, position_ids, cache, cache_position):
            return _last_logits(model, input_ids, attention_mask, position_ids, cache, cache_position)

        step = _COMPILED[model] = torch.compile(forward, dynamic=False)
    return step


def _make_cache(model, max_len: int, static: bool):
    from transformers import DynamicCache, StaticCache

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if not static:
        return DynamicCache(config=config)
    return StaticCache(config=config, max_cache_len=max_len)


def decode(
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
    static_cache: bool = True,
    unconditional_ids: torch.LongTensor | None = None,
    unconditional_mask: torch.Tensor | None = None,
    on_token=None,
    compile_step: bool = False,
) -> torch.LongTensor:
    """Our KV-cached sampling loop (the "lmmsn" engine of `sample`; no seeding or grad mode of its own).

    Per step, as transformers `generate` does for greedy / multinomial sampling: float32 scores
    of the last position, repetition penalty, the audio-span mask, temperature, top-k, top-p,
    softmax, `torch.multinomial(probs, 1)` (or argmax), padding of finished rows; a row
    finishes at an eos id, all stop when every row has.

    Args:
        model, input_ids, attention_mask, max_new_tokens, sampling, constraint, vocab_size,
        eos_token_id, pad_token_id: as in `sample`.
        static_cache: a `StaticCache` sized for prompt + new tokens (else `DynamicCache`).
        unconditional_ids, unconditional_mask: [B, L_u] prompts of the guidance rows.
        on_token: called once per decoding step (progress).
        compile_step: run the one-token steps through `torch.compile` (needs `static_cache`).

    Returns:
        [B, L'] new token ids, padded with `pad_token_id` after a row's eos.
    """
    if compile_step and not static_cache:
        raise ValueError("compile_step needs a static cache (cache_implementation='static'): fixed shapes")
    scale = sampling.guidance_scale
    batch = input_ids.shape[0]
    device = input_ids.device
    if scale != 1.0:
        if unconditional_ids is None:
            raise ValueError("guidance_scale != 1 needs unconditional_ids (the unconditional prompts)")
        if unconditional_ids.shape[0] != batch:
            raise ValueError(f"{unconditional_ids.shape[0]} unconditional prompts for {batch} prompts")
        if unconditional_mask is None:
            unconditional_mask = torch.ones_like(unconditional_ids)
        ids, mask = _left_pad_together(input_ids, attention_mask, unconditional_ids.to(device),
                                       unconditional_mask.to(device), pad_token_id)
    else:
        ids, mask = input_ids, attention_mask
    rows, prompt_len = ids.shape
    total = prompt_len + max_new_tokens
    full_mask = torch.zeros(rows, total, dtype=mask.dtype, device=device)  # [2B or B, L + new]
    full_mask[:, :prompt_len] = mask
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # [R, L]: left padding shifts positions
    next_position = positions[:, -1] + 1  # [R]
    cache = _make_cache(model, total, static_cache)
    processor = AudioSpanLogitsProcessor(constraint, vocab_size) if constraint is not None else None
    penalty = (RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty)
               if sampling.repetition_penalty not in (None, 1.0) else None)
    warpers = sampling.warpers()
    eos = torch.tensor([] if eos_token_id is None else
                       [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), device=device)
    if processor is not None:
        inside, count = processor.span_state(input_ids)  # [B] each, from the conditional prompts
    seen = input_ids  # [B, L + t]: what the repetition penalty reads (generate's input_ids)
    out = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    unfinished = torch.ones(batch, dtype=torch.bool, device=device)
    step_ids, step_pos = ids, positions
    if compile_step:  # one mask shape for every step: later positions are masked by causality anyway
        step_fn, fixed_mask = _compiled_step(model), full_mask.clone()
        fixed_mask[:, prompt_len:] = 1
    for t in range(max_new_tokens):
        length = prompt_len + t
        cache_position = torch.arange(length - step_ids.shape[1], length, device=device)
        if compile_step and t > 1:
            # Every step of this call has the shapes the step at t = 1 was checked with, so the
            # guards' per-call evaluation (most of a tiny model's compiled step) is skipped; dynamo
            # still tells its compiled variants (other batch sizes or lengths) apart.
            with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                logits = step_fn(step_ids, fixed_mask, step_pos, cache, cache_position)  # [R, V]
        elif compile_step and t == 1:  # the prompt's forward (t = 0, its own shape) stays eager
            logits = step_fn(step_ids, fixed_mask, step_pos, cache, cache_position)  # [R, V]
        else:
            logits = _last_logits(model, step_ids, full_mask[:, :length], step_pos, cache, cache_position)  # [R, V]
        scores = logits[:batch]
        if scale != 1.0:
            cond, uncond = logits[:batch], logits[batch:]
            guided = cond + (scale - 1.0) * (cond - uncond)
            scores = torch.where(inside[:, None], guided, cond) if processor is not None else guided
        if penalty is not None:
            scores = penalty(seen, scores)
        if processor is not None:
            scores = processor.mask(scores, inside, count)
        for warper in warpers:
            scores = warper(seen, scores)
        if sampling.temperature == 0:
            token = scores.argmax(dim=-1)  # [B]
        else:
            token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)  # [B]
        token = torch.where(unfinished, token, pad_token_id)
        out[:, t] = token
        if on_token is not None:
            on_token(1)
        if eos.numel():
            unfinished &= ~torch.isin(token, eos)
        if not bool(unfinished.any()):
            return out[:, : t + 1]
        if processor is not None:
            inside, count = processor.advance(token, inside, count)
        if penalty is not None or warpers:
            seen = torch.cat([seen, token[:, None]], dim=1)
        step_ids = token[:, None].repeat(rows // batch, 1)  # [R, 1]: each pair gets the drawn token
        step_pos = next_position[:, None] + t  # [R, 1]
        full_mask[:, length] = 1
    return out


__all__ = [
    "AudioSpanConstraint", "AudioSpanLogitsProcessor", "ProgressProcessor", "SamplingConfig",
    "audio_token_budget", "decode", "sample",
]
