"""The inference pipeline: text <-> audio tokens <-> waveform (paper Fig. 2b).

    generate("dog barking") = Vicuna prompt + "<soa>" -> LLM (constrained, KV-cached)
                              -> codes -> audio tokenizer decode (CFM ODE) -> VAE decode -> wav
    caption(wav)            = audio tokenizer encode -> prompt with an audio span -> LLM -> text

Exported pipeline directory (`Pipeline.save_pretrained`, `Pipeline.from_pretrained`):

    <dir>/format_version     "1"
    <dir>/config.yaml        kind: pipeline; component folders; prompt and sampling defaults
    <dir>/audio_tokenizer/   AudioTokenizer export (kind audio_tokenizer; the VAE by reference)
    <dir>/llm/               AudioLM export (kind audio_lm: peft adapter + extended text tokenizer +
                             audio_vocabulary.json; the base LLM by reference) or a merged model

Pipelines written before the audio/text tokenizer rename keep the audio tokenizer in
`<dir>/tokenizer/`; they load unchanged (`lmmsn.checkpoints.pipeline_components`).

Checkpoint resolution (`resolve_checkpoint`) lives in `lmmsn.checkpoints`, documented in checkpoints/README.md.

Dimensions: B batch, C channels, N samples, T audio tokens, L token ids.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lmmsn.audio import (
    AudioError,
    check_waveform,
    convert_channels,
    load_audio,
    resample,
    save_audio,
)
from lmmsn.checkpoints import (
    AUDIO_TOKENIZER_SUBDIR,
    LLM_SUBDIR,
    check_audio_tokenizer_export,
    check_pipeline_export,
    is_pipeline_dir,
    pipeline_components,
)
from lmmsn.checkpoints import PIPELINE_KIND as KIND
from lmmsn.config import from_dict, to_dict
from lmmsn.export import WEIGHTS_FILE, ExportError, save_exported
from lmmsn.generation import AudioSpanConstraint, SamplingConfig, audio_token_budget, sample
from lmmsn.llm.prompts import CAPTION_INSTRUCTION, GENERATE_INSTRUCTION, PromptStyle
from lmmsn.seeding import generator

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- config


@dataclass
class PipelineConfig:
    """Prompt format and sampling defaults, saved in the pipeline's config.yaml.

    Prompts are built by `lmmsn.llm.prompts`, the module that renders the training
    examples, so they are the training renders cut where the model takes over.
    """

    prompt_style: PromptStyle = "chat"
    "chat: Vicuna v1.1 template (fine-tuned models); pretrain: bare '<caption> <soa>' pairs."
    generate_instruction: str = GENERATE_INSTRUCTION
    "User message asking for audio ({prompt} is replaced); chat style only. The default is the one fine-tuning's generation conversations use."
    caption_instruction: str = CAPTION_INSTRUCTION
    "Default question asked by `caption`; chat style only (fine-tuning's captioning conversations ask it too)."
    input_seconds: float | None = 10.0
    "Audio given to caption / chat / encode is cut to its first input_seconds: the audio tokenizer and the LLM were trained on 10 s segments (paper; 215 tokens). None: whole files."
    seconds: float = 10.0
    "Default length bound of generated audio, in seconds."
    min_seconds: float = 0.0
    "Fewest seconds of audio before <eoa> may be sampled (at least one token)."
    temperature: float = 1.0
    "LLM sampling temperature for audio tokens (0: greedy)."
    top_p: float | None = None
    "LLM nucleus sampling for audio tokens (None: off)."
    top_k: int | None = None
    "LLM top-k for audio tokens (None: off)."
    text_temperature: float = 0.0
    "LLM temperature for text answers (0: greedy)."
    max_text_tokens: int = 256
    "Most tokens of a text answer."
    ode_steps: int | None = None
    "Audio tokenizer ODE steps (None: its config)."
    ode_temperature: float | None = None
    "Scale of the audio tokenizer's starting noise (None: its config; 0: deterministic)."

    def __post_init__(self) -> None:
        if "{prompt}" not in self.generate_instruction:
            raise ValueError("generate_instruction must contain '{prompt}'")
        if self.seconds <= 0 or self.min_seconds < 0 or self.min_seconds > self.seconds:
            raise ValueError(f"need 0 <= min_seconds <= seconds and seconds > 0 (got {self.min_seconds}, {self.seconds})")
        if self.max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1, got {self.max_text_tokens}")
        if self.input_seconds is not None and self.input_seconds <= 0:
            raise ValueError(f"input_seconds must be > 0 or null, got {self.input_seconds}")


# --------------------------------------------------------------------------- results


@dataclass
class GeneratedAudio:
    """One generated clip."""

    waveform: torch.Tensor
    "[C, N] float32 on CPU."
    sample_rate: int
    codes: torch.Tensor
    "[T] int64 audio codes the LLM wrote."
    prompt: str | None = None

    @property
    def seconds(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate

    def save(self, path: str | Path) -> Path:
        """Write the clip as WAV / FLAC / OGG (chosen by the extension)."""
        return save_audio(path, self.waveform, self.sample_rate)


@dataclass
class ChatResult:
    """The assistant's reply: its text and any audio it wrote."""

    text: str
    audio: list[GeneratedAudio] = field(default_factory=list)
    message: dict[str, Any] = field(default_factory=dict)
    "The reply as a message (content with '<audio>' placeholders, audio attached) to extend the chat."


def best_device_and_dtype(
    device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> tuple[torch.device, torch.dtype]:
    """CUDA + bfloat16 when available, else CPU + float32, unless told otherwise."""
    from lmmsn.llm.model import resolve_dtype

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dt = resolve_dtype(dtype)
    if dt is None:
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    return dev, dt


# --------------------------------------------------------------------------- audio inputs


def as_waveforms(audio: Any, sample_rate: int, channels: int, given_rate: int | None = None) -> list[torch.Tensor]:
    """Paths / tensors ([N], [C, N] or [B, C, N]) / lists of them -> list of [C, N] at `sample_rate`.

    Tensors are taken to be at `given_rate` (None: already at `sample_rate`).

    Raises:
        AudioError: wrong type, empty, NaN / inf, unreadable file.
    """
    if isinstance(audio, (list, tuple)):
        if not audio:
            raise AudioError("no audio given (empty list)")
        return [w for item in audio for w in as_waveforms(item, sample_rate, channels, given_rate)]
    if isinstance(audio, (str, Path)):
        wav, _ = load_audio(audio, sample_rate=sample_rate, channels=channels)
        return [wav]
    if not isinstance(audio, torch.Tensor):
        raise AudioError(f"audio must be a file path, a torch.Tensor or a list of them; got {type(audio).__name__}")
    if audio.dim() not in (1, 2, 3):
        raise AudioError(f"audio tensor must be [N], [C, N] or [B, C, N]; got shape {tuple(audio.shape)}")
    check_waveform(audio, name="audio tensor")
    wav = audio.detach().float().cpu()
    wav = wav[None] if wav.dim() == 1 else wav
    batch = [wav] if wav.dim() == 2 else list(wav)
    out = []
    for w in batch:
        w = convert_channels(w, channels)
        if given_rate is not None and given_rate != sample_rate:
            w = resample(w, given_rate, sample_rate)
        out.append(w)
    return out


# --------------------------------------------------------------------------- pipeline


class Pipeline:
    """Audio tokenizer + audio LLM (+ the audio tokenizer's VAE) for inference.

    Args:
        audio_tokenizer: an `AudioTokenizer` with its VAE.
        lm: an `AudioLM` (its `text_tokenizer` and `vocabulary` are used for prompts).
        config: prompt format and defaults.
    """

    def __init__(self, audio_tokenizer, lm, config: PipelineConfig | None = None) -> None:
        self.audio_tokenizer = audio_tokenizer.eval()
        self.lm = lm
        self.lm.model.eval()
        self.config = config or PipelineConfig()
        if self.audio_tokenizer.codebook_size != lm.vocabulary.codebook_size:
            raise ValueError(
                f"audio tokenizer codebook ({self.audio_tokenizer.codebook_size}) != LLM audio vocabulary "
                f"({lm.vocabulary.codebook_size})"
            )
        text_tok = lm.text_tokenizer
        text_tok.padding_side = "left"  # batched generation continues every row at the same position
        if text_tok.pad_token is None:
            text_tok.pad_token = text_tok.eos_token

    # ---- properties ----------------------------------------------------------------------

    @property
    def vocabulary(self):
        return self.lm.vocabulary

    @property
    def sample_rate(self) -> int:
        return self.audio_tokenizer.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.audio_tokenizer.frame_rate

    @property
    def device(self) -> torch.device:
        return next(self.lm.model.parameters()).device

    @property
    def channels(self) -> int:
        return int(self.audio_tokenizer.vae.channels)

    # ---- saving and loading --------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the pipeline directory (module docstring)."""
        directory = Path(directory)
        self.audio_tokenizer.save_pretrained(directory / AUDIO_TOKENIZER_SUBDIR)
        if self.lm.lora is None:
            self.lm.save_merged(directory / LLM_SUBDIR)
        else:
            self.lm.save_pretrained(directory / LLM_SUBDIR)
        document = {"audio_tokenizer": AUDIO_TOKENIZER_SUBDIR, "llm": LLM_SUBDIR, **to_dict(self.config)}
        save_exported(directory, KIND, document, state_dict=None)
        logger.info("saved pipeline to %s", directory)
        return directory

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        base_model: str | Path | None = None,
        with_vae: bool = True,
    ) -> Pipeline:
        """Load a pipeline directory.

        Args:
            directory: written by `save_pretrained`.
            device / dtype: default CUDA + bfloat16 when available, else CPU + float32 (the LLM
                takes `dtype`; the small audio tokenizer stays float32).
            base_model: where the LLM's base weights are, overriding the stored path.
            with_vae: False skips building the VAE (latent-only; no waveforms).
        """
        from lmmsn.llm.model import AudioLM

        directory = Path(directory)
        document = check_pipeline_export(directory, base_model)  # every file, before anything is built
        parts = pipeline_components(directory)
        config = from_dict(PipelineConfig, document, source=str(directory / "config.yaml"))
        dev, dt = best_device_and_dtype(device, dtype)
        audio_tokenizer = _audio_tokenizer_from_export(parts["audio_tokenizer"], device=dev, with_vae=with_vae)
        lm = AudioLM.from_pretrained(parts["llm"], device=dev, dtype=dt, base_model=base_model)
        logger.info("loaded pipeline %s on %s (%s)", directory, dev, dt)
        return cls(audio_tokenizer, lm, config)

    # ---- audio <-> codes -----------------------------------------------------------------

    def encode(
        self, audio: Any, sample_rate: int | None = None, *, max_seconds: float | None = None, windowed: bool = False
    ) -> list[torch.Tensor]:
        """Audio (see `as_waveforms`) -> list of codes [T] int64 (one per clip).

        Args:
            max_seconds: cut each clip to its first max_seconds (None: `config.input_seconds`;
                `math.inf`: whole files).
            windowed: instead of cutting, encode consecutive windows of that length
                separately and join their codes: the whole file, each window as long as
                the audio tokenizer's training segments (its causal encoder never sees more context).
        """
        seconds = self.config.input_seconds if max_seconds is None else max_seconds
        length = None if seconds is None or math.isinf(seconds) else max(1, int(round(seconds * self.sample_rate)))
        wavs = as_waveforms(audio, self.sample_rate, self.channels, sample_rate)
        dev = self.audio_tokenizer._device()
        out = []
        for w in wavs:  # [C, N]
            if length is None:
                pieces = [w]
            elif windowed:
                pieces = list(w.split(length, dim=-1))
            else:
                pieces = [w[:, :length]]
            out.append(torch.cat([self.audio_tokenizer.encode(p[None].to(dev), self.sample_rate)[0].cpu() for p in pieces]))
        return out

    def decode(
        self,
        codes: Sequence[torch.Tensor],
        *,
        steps: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> list[torch.Tensor]:
        """Codes [T] per clip -> waveforms [C, N] (CPU).

        Clip i draws its ODE starting noise from a generator seeded with `seed + i`.
        """
        steps = steps if steps is not None else self.config.ode_steps
        temperature = temperature if temperature is not None else self.config.ode_temperature
        dev = self.audio_tokenizer._device()
        out = []
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1 (0 ODE steps decode the starting noise itself), got {steps}")
        for i, c in enumerate(codes):
            gen = generator(None if seed is None else seed + i, dev)
            c = torch.as_tensor(c, dtype=torch.long).reshape(1, -1).to(dev)  # [1, T]
            wav = self.audio_tokenizer.decode(c, steps=steps, temperature=temperature, generator=gen)  # [1, C, N]
            out.append(wav[0].float().cpu())
        return out

    # ---- prompts (built by lmmsn.llm.prompts, which also renders the training examples) -------

    def _chat(self, messages: list[dict[str, Any]], audio: Sequence[torch.Tensor] = ()) -> str:
        from lmmsn.llm.prompts import chat_prompt, end_of_turn

        return chat_prompt(messages, self.vocabulary, list(audio), add_generation_prompt=True,
                           eos=end_of_turn(self.lm.text_tokenizer))  # earlier replies end as training ended them

    def generation_prompt(self, text: str) -> str:
        """The prompt string that makes the LLM write audio for `text` (ends with <soa>)."""
        from lmmsn.llm.prompts import generation_prompt

        return generation_prompt(text, style=self.config.prompt_style, instruction=self.config.generate_instruction)

    def caption_prompt(self, codes: torch.Tensor, question: str | None = None) -> str:
        """The prompt string asking for text about the clip `codes`."""
        from lmmsn.llm.prompts import caption_prompt

        return caption_prompt(codes, self.vocabulary, style=self.config.prompt_style,
                              question=question or self.config.caption_instruction)

    def _batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.lm.text_tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=True)
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def _sample(self, texts: list[str], *, max_new_tokens: int, sampling: SamplingConfig,
                constraint: AudioSpanConstraint, eos: int | list[int], seed: int | None,
                progress: bool, **kwargs: Any) -> list[list[int]]:
        ids, mask = self._batch(texts)
        vocab_size = int(self.lm.model.get_output_embeddings().weight.shape[0])
        new = sample(
            self.lm.model, ids, mask, max_new_tokens=max_new_tokens, sampling=sampling,
            constraint=constraint, vocab_size=vocab_size, eos_token_id=eos,
            pad_token_id=self.lm.text_tokenizer.pad_token_id, seed=seed, progress=progress, **kwargs,
        )
        rows = []
        stops = {eos} if isinstance(eos, int) else set(eos)
        for row in new.tolist():
            end = next((i for i, t in enumerate(row) if t in stops), None)
            rows.append(row if end is None else row[: end + 1])
        return rows

    def _constraint(self, max_tokens: int, min_tokens: int, allow_audio: bool) -> AudioSpanConstraint:
        v = self.vocabulary
        return AudioSpanConstraint(
            soa_id=v.soa_id, eoa_id=v.eoa_id, audio_ids=v.audio_ids, max_tokens=max_tokens,
            min_tokens=min_tokens, allow_audio_output=allow_audio,
        )

    # ---- public API ----------------------------------------------------------------------

    def generate(
        self,
        prompt: str | list[str],
        *,
        seconds: float | None = None,
        min_seconds: float | None = None,
        steps: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        ode_temperature: float | None = None,
        seed: int | None = None,
        progress: bool = False,
        cache_implementation: str | None = None,
        guidance_scale: float = 1.0,
        compile_step: bool = False,
    ) -> GeneratedAudio | list[GeneratedAudio]:
        """Text -> audio. A list of prompts runs as one left-padded batch.

        Args:
            prompt: a description, or a list of them.
            seconds: most audio to write (bounds the span at floor(seconds * frame_rate) tokens).
            min_seconds: fewest seconds before the LLM may close the span.
            steps: audio tokenizer ODE steps. temperature / top_p / top_k: LLM sampling of audio
                tokens (temperature 0: greedy). ode_temperature: the ODE's starting-noise scale.
            seed: same seed, device and batch size -> identical audio.
            progress: show a progress bar over generated tokens.
            cache_implementation: transformers KV-cache kind (e.g. "static" on GPU).
            guidance_scale: classifier-free guidance s on audio spans (MusicGen): scores cond +
                (s - 1)(cond - uncond); 1 = off (no unconditional rows run). The unconditional
                prompt is the same generation prompt with an empty caption (`generation_prompt("")`).
            compile_step: with cache_implementation "static", run the LLM's one-token steps through
                `torch.compile` (compiled once per model; `lmmsn.generation.decode`).

        Returns:
            One `GeneratedAudio` for a string, a list for a list.

        Raises:
            ValueError: guidance_scale is not a finite number >= 0.
        """
        single = isinstance(prompt, str)
        prompts = [prompt] if single else list(prompt)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompt must be a string or a non-empty list of strings")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) \
                or not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0 (1: off), got {guidance_scale!r}")
        cfg = self.config
        budget = audio_token_budget(seconds if seconds is not None else cfg.seconds, self.frame_rate)
        min_s = min_seconds if min_seconds is not None else cfg.min_seconds
        if not 0 <= min_s <= (seconds if seconds is not None else cfg.seconds):  # NaN fails too
            raise ValueError(f"min_seconds must be in [0, seconds], got {min_s} (seconds "
                             f"{seconds if seconds is not None else cfg.seconds})")
        min_tokens = min(budget, audio_token_budget(min_s, self.frame_rate)) if min_s > 0 else 1
        sampling = SamplingConfig(
            temperature=cfg.temperature if temperature is None else temperature,
            top_p=cfg.top_p if top_p is None else top_p,
            top_k=cfg.top_k if top_k is None else top_k, guidance_scale=float(guidance_scale),
        )
        guidance = {}
        if guidance_scale != 1:  # one unconditional row per prompt, run in the same batch
            uncond_ids, uncond_mask = self._batch([self.generation_prompt("")] * len(prompts))
            guidance = {"unconditional_ids": uncond_ids, "unconditional_mask": uncond_mask}
        rows = self._sample(
            [self.generation_prompt(p) for p in prompts], max_new_tokens=budget + 1, sampling=sampling,
            constraint=self._constraint(budget, min_tokens, allow_audio=True), eos=self.vocabulary.eoa_id,
            seed=seed, progress=progress, cache_implementation=cache_implementation, compile_step=compile_step,
            **guidance,
        )
        v = self.vocabulary
        codes = [v.ids_to_codes([t for t in row if v.is_audio(t)]) for row in rows]  # [T] each
        for c in codes:
            if c.numel() == 0:  # cannot happen with min_tokens >= 1; guards against a broken model/processor
                raise RuntimeError("the LLM wrote an empty audio span")
        wavs = self.decode(codes, steps=steps, temperature=ode_temperature, seed=seed)
        out = [GeneratedAudio(w, self.sample_rate, c, p) for w, c, p in zip(wavs, codes, prompts, strict=True)]
        return out[0] if single else out

    def caption(
        self,
        audio: Any,
        prompt: str | None = None,
        *,
        sample_rate: int | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        progress: bool = False,
    ) -> str | list[str]:
        """Audio -> text. A list of clips (or a [B, C, N] tensor) runs as one batch.

        Args:
            audio: a path, a tensor ([N], [C, N] or [B, C, N]) or a list of them.
            prompt: the question (default `config.caption_instruction`).
            sample_rate: rate of tensor inputs (None: the audio tokenizer's rate).
            max_new_tokens: longest answer (default `config.max_text_tokens`).
            temperature: LLM temperature (default `config.text_temperature`, greedy).
            seed: seeds sampling when temperature > 0.

        Raises:
            AudioError: empty, NaN / inf, unreadable or wrongly typed audio.
        """
        _check_max_new_tokens(max_new_tokens)
        many = isinstance(audio, (list, tuple)) or (isinstance(audio, torch.Tensor) and audio.dim() == 3)
        codes = self.encode(audio, sample_rate)
        texts = [self.caption_prompt(c, prompt) for c in codes]
        sampling = SamplingConfig(temperature=self.config.text_temperature if temperature is None else temperature)
        eos = self.lm.text_tokenizer.eos_token_id
        rows = self._sample(
            texts, max_new_tokens=self.config.max_text_tokens if max_new_tokens is None else max_new_tokens, sampling=sampling,
            constraint=self._constraint(1, 0, allow_audio=False), eos=eos, seed=seed, progress=progress,
        )
        answers = [self.lm.text_tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]
        return answers if many else answers[0]

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        seconds: float | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        ode_temperature: float | None = None,
        steps: int | None = None,
        seed: int | None = None,
        progress: bool = False,
    ) -> ChatResult:
        """One assistant turn of a multi-turn conversation; turns may hold audio.

        Args:
            messages: `{"role": "user"|"assistant", "content": str, "audio": clip or list}`;
                a clip is a path, a [C, N] tensor at the audio tokenizer's rate, or a
                `GeneratedAudio` (its codes are reused). Clips fill `<audio>` placeholders in
                order; clips without a placeholder go first in the message.
            seconds: bound of each audio span the assistant writes.
            max_new_tokens: most text tokens (audio spans are added on top).
            temperature: LLM temperature (default `config.text_temperature`).

        Returns:
            `ChatResult` with the reply text (audio spans shown as '<audio>') and the audio.
        """
        from lmmsn.llm.prompts import AUDIO_PLACEHOLDER

        _check_max_new_tokens(max_new_tokens)
        rendered, clips = [], []
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping):
                raise TypeError(f"message {i}: expected a mapping, got {type(m).__name__}")
            content = m.get("content", "")
            items = m.get("audio") or []
            items = items if isinstance(items, (list, tuple)) else [items]
            for item in items:
                clips.append(item.codes if isinstance(item, GeneratedAudio) else self.encode(item)[0])
            missing = len(items) - content.count(AUDIO_PLACEHOLDER)
            if missing > 0:
                content = (AUDIO_PLACEHOLDER + "\n") * missing + content
            rendered.append({"role": m.get("role"), "content": content})
        text = self._chat(rendered, clips)
        budget = audio_token_budget(seconds if seconds is not None else self.config.seconds, self.frame_rate)
        sampling = SamplingConfig(temperature=self.config.text_temperature if temperature is None else temperature)
        rows = self._sample(
            [text], max_new_tokens=(self.config.max_text_tokens if max_new_tokens is None else max_new_tokens) + budget + 2,
            sampling=sampling, constraint=self._constraint(budget, 1, allow_audio=True),
            eos=self.lm.text_tokenizer.eos_token_id, seed=seed, progress=progress,
        )
        from lmmsn.llm.vocabulary import AudioSegment

        parts, codes = [], []
        for seg in self.vocabulary.parse(rows[0], self.lm.text_tokenizer):
            if isinstance(seg, AudioSegment):
                if seg.codes:
                    codes.append(torch.tensor(seg.codes, dtype=torch.long))
                    parts.append(AUDIO_PLACEHOLDER)
            else:
                parts.append(seg.text)
        reply = "".join(parts).strip()
        wavs = self.decode(codes, steps=steps, temperature=ode_temperature, seed=seed)
        audio = [GeneratedAudio(w, self.sample_rate, c) for w, c in zip(wavs, codes, strict=True)]
        return ChatResult(reply, audio, {"role": "assistant", "content": reply, "audio": audio})


def _check_max_new_tokens(max_new_tokens: int | None) -> None:
    # None means the config's default; 0 used to mean it too (`or`), silently.
    if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int)
                                       or max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be an int >= 1 (None: config.max_text_tokens), got {max_new_tokens!r}")


def _audio_tokenizer_from_export(path: Path, device: str | torch.device | None = None, with_vae: bool = True):
    """`AudioTokenizer.from_pretrained` of a checked export; weights that do not fit config.yaml are an ExportError."""
    from lmmsn.tokenizer.model import AudioTokenizer

    check_audio_tokenizer_export(path)
    try:
        return AudioTokenizer.from_pretrained(path, device=device, with_vae=with_vae)
    except (RuntimeError, ValueError) as exc:  # load_state_dict's size mismatch, missing / unexpected names
        if isinstance(exc, ExportError) or type(exc).__name__ == "ConfigError":
            raise
        detail = " ".join(str(exc).split())
        raise ExportError(f"{path / WEIGHTS_FILE}: weights do not fit {path / 'config.yaml'}: {detail[:300]}") from exc


def load_audio_tokenizer(path: str | Path, device: str | torch.device | None = None):
    """An `AudioTokenizer` from its export or from a pipeline directory's `audio_tokenizer/`."""
    path = Path(path)
    if is_pipeline_dir(path):
        path = pipeline_components(path)["audio_tokenizer"]
    return _audio_tokenizer_from_export(path, device=device)  # checked first: a clear error when it is neither


__all__ = ["ChatResult", "GeneratedAudio", "Pipeline", "PipelineConfig", "as_waveforms", "best_device_and_dtype",
           "load_audio_tokenizer"]
