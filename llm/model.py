"""`AudioLM`: a transformers causal LM taught audio tokens with peft LoRA (paper Sec. 3.2).

The base model is any `transformers.AutoModelForCausalLM` (default Vicuna-7B
v1.5), never re-implemented here. `AudioLM.from_base`:

1. loads the base model and its text tokenizer (local path; hub ids on online machines);
2. adds `<a_0>`...`<a_{K-1}>`, `<soa>`, `<eoa>` (`AudioVocabulary.extend`);
3. resizes input and output embeddings to the new text tokenizer length.
   New-row initialisation: `resize_token_embeddings(mean_resizing=True)` draws
   every new row of `embed_tokens` and of `lm_head` from a normal with the mean
   and covariance of the existing rows (Hewitt, "Initializing new word
   embeddings", 2021), so new tokens start "typical": their initial logits are
   close to the average text logit and the loss of the first step is sane
   (or, with `audio_vectors`, the audio rows start from the tokenizer's codebook:
   `lmmsn.llm.audio_init`, not the paper's method);
4. applies LoRA (r 64, alpha 128, configurable dropout) to every linear layer
   (peft `target_modules="all-linear"`, which leaves `lm_head` out) and makes
   trainable ONLY the new rows, with peft `trainable_token_indices` in its dict
   form `{"embed_tokens": ids, "lm_head": ids}` (the list form only wraps the
   input embedding; on an untied model like Vicuna `lm_head` would stay
   frozen). peft keeps the new rows as separate parameters that replace those
   rows in the forward pass, so every original row stays bit-identical.

Export directory (`save_pretrained`):

    config.yaml            kind audio_lm, base_model, codebook_size, lora, dtype
    format_version
    adapter/               peft save_pretrained: LoRA + new rows (adapter_model.safetensors)
    text_tokenizer/        the extended text tokenizer (`tokenizer/` in exports before the rename: still read)
    audio_vocabulary.json
    merged/                (merge=True) standalone HF model + text tokenizer + vocabulary

`AudioLM.from_pretrained(dir)` reloads either the export root (base + adapter)
or a `merged/` folder (plain `AutoModelForCausalLM`).
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lmmsn.checkpoints import check_audio_lm_export
from lmmsn.config import from_dict
from lmmsn.export import ExportError, read_exported_config, save_exported
from lmmsn.llm.vocabulary import AudioVocabulary

logger = logging.getLogger(__name__)

KIND = "audio_lm"
ADAPTER_DIR = "adapter"
TEXT_TOKENIZER_DIR = "text_tokenizer"
LEGACY_TEXT_TOKENIZER_DIR = "tokenizer"  # exports written before the audio/text tokenizer rename
MERGED_DIR = "merged"


@dataclass
class LoraConfig:
    """LoRA on the base model (paper: r 64, alpha 128, every linear layer)."""

    r: int = 64
    "LoRA rank."
    alpha: int = 128
    "LoRA alpha (scale alpha / r)."
    dropout: float = 0.05
    "Dropout on the LoRA input."
    target_modules: str | list[str] = "all-linear"
    "peft target_modules: 'all-linear' (every linear layer but the output head) or names."

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0:
            raise ValueError(f"LoRA needs r >= 1 and alpha > 0, got r={self.r}, alpha={self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ExportConfig:
    """What an AudioLM export's config.yaml holds besides `kind` (`AudioLM.export_config`); unknown keys are errors."""

    base_model: str
    "Name or path of the base LLM (referenced, not copied)."
    codebook_size: int
    "K audio tokens."
    first_audio_id: int
    "Token id of <a_0>."
    vocab_size: int
    "Rows of the resized embedding matrices."
    lora: LoraConfig | None = None
    "The LoRA settings (None: none)."
    dtype: str | None = None
    "Weights dtype at export (informative)."


@contextmanager
def _export_errors(path: Path):
    """Errors of transformers / peft while reading `path` of an export: one ExportError naming the file."""
    try:
        yield
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"{path}: cannot be loaded ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from exc


def _check_adapter_names(model: torch.nn.Module, path: Path) -> None:
    """peft ignores tensors of an adapter file that fit no module; an export holds none."""
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    expected = set(get_peft_model_state_dict(model, save_embedding_layers=False))
    with safe_open(str(path), framework="pt") as f:
        unexpected = sorted(set(f.keys()) - expected)
    if unexpected:
        raise ExportError(f"{path}: {len(unexpected)} tensor(s) fit no module of the model (e.g. {unexpected[:2]})")


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """'bfloat16' / torch.bfloat16 / None -> torch dtype or None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def _module_names(model: torch.nn.Module) -> tuple[str, str]:
    """Leaf names of the input embedding and output head (e.g. embed_tokens, lm_head)."""
    names = {id(m): n for n, m in model.named_modules()}
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embedding (not a causal LM head)")
    return names[id(embed)].split(".")[-1], names[id(head)].split(".")[-1]


class AudioLM:
    """A causal LM with an audio vocabulary and LoRA adapters.

    Attributes:
        model: the peft model (or a plain HF model once merged / loaded merged).
        text_tokenizer: the extended HF text tokenizer.
        vocabulary: the `AudioVocabulary`.
        base_model: name or path of the base model.
        lora: the `LoraConfig` (None for a merged model).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        text_tokenizer: Any,
        vocabulary: AudioVocabulary,
        base_model: str,
        lora: LoraConfig | None,
    ) -> None:
        self.model = model
        self.text_tokenizer = text_tokenizer
        self.vocabulary = vocabulary
        self.base_model = str(base_model)
        self.lora = lora

    # ---- building -----------------------------------------------------------------------------

    @staticmethod
    def _load_base(name_or_path: str, dtype: torch.dtype | None, attn_implementation: str | None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from lmmsn.llm.gguf import is_gguf, load_gguf

        if is_gguf(name_or_path):  # a .gguf file (e.g. the packaged Gemma-3-270m), dequantised to dtype
            return load_gguf(name_or_path, dtype, attn_implementation)
        kwargs: dict[str, Any] = {}
        if dtype is not None:
            kwargs["dtype"] = dtype
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        try:
            text_tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        except OSError as exc:
            raise OSError(
                f"cannot load base model {name_or_path!r}: {exc}. Use a local directory "
                "(this machine may be offline) or write a tiny one with lmmsn.llm.tiny.write_tiny_base"
            ) from exc
        return model, text_tokenizer

    @classmethod
    def from_base(
        cls,
        model_name_or_path: str | Path,
        codebook_size: int,
        lora: LoraConfig | None = None,
        *,
        dtype: str | torch.dtype | None = None,
        attn_implementation: str | None = None,
        pad_to_multiple_of: int | None = None,
        gradient_checkpointing: bool = False,
        audio_vectors: torch.Tensor | None = None,
    ) -> AudioLM:
        """Load a base causal LM, extend its vocabulary and apply LoRA + trainable new rows.

        Args:
            model_name_or_path: local directory (or hub id when online), or a `.gguf` file
                (`lmmsn.llm.gguf`: dequantised to `dtype`, float32 by default).
            codebook_size: K audio tokens.
            lora: LoRA settings (default `LoraConfig()`).
            dtype: weights dtype of the base model (e.g. "bfloat16"); LoRA weights
                are kept in float32 by peft.
            attn_implementation: e.g. "sdpa", "flash_attention_2".
            pad_to_multiple_of: pad the embedding matrices to a multiple (the extra
                rows are never produced by the text tokenizer and stay frozen).
            gradient_checkpointing: recompute activations in backward.
            audio_vectors: [K, d] vectors of the codes (the tokenizer's VQ codebook,
                `lmmsn.llm.audio_init.codebook_vectors`): the audio rows start from them
                (`init_audio_rows`); None: mean resizing only (the paper's method).
        """
        lora = lora or LoraConfig()
        model, text_tokenizer = cls._load_base(str(model_name_or_path), resolve_dtype(dtype), attn_implementation)
        vocabulary = AudioVocabulary.extend(text_tokenizer, codebook_size)
        return cls.from_model(
            model,
            vocabulary,
            lora,
            text_tokenizer=text_tokenizer,
            base_model=str(model_name_or_path),
            pad_to_multiple_of=pad_to_multiple_of,
            gradient_checkpointing=gradient_checkpointing,
            audio_vectors=audio_vectors,
        )

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        vocabulary: AudioVocabulary,
        lora: LoraConfig | None = None,
        *,
        text_tokenizer: Any = None,
        base_model: str = "<in-memory>",
        pad_to_multiple_of: int | None = None,
        gradient_checkpointing: bool = False,
        audio_vectors: torch.Tensor | None = None,
    ) -> AudioLM:
        """Steps 3-4 of `from_base` on an already built model (benchmarks, custom loading).

        Args:
            model: a transformers causal LM whose vocabulary ends before
                `vocabulary.first_audio_id`.
            vocabulary: the audio vocabulary (from `AudioVocabulary.extend`).
            lora, pad_to_multiple_of, gradient_checkpointing, audio_vectors: as in `from_base`.
            text_tokenizer: the extended text tokenizer (None: none, e.g. in benchmarks).
            base_model: recorded in the export config.
        """
        import peft

        lora = lora or LoraConfig()
        if model.get_output_embeddings() is not None and getattr(model.config, "tie_word_embeddings", False):
            logger.warning("%s ties input and output embeddings; the new rows are shared", base_model)
        with torch.no_grad():
            model.resize_token_embeddings(vocabulary.size, pad_to_multiple_of=pad_to_multiple_of, mean_resizing=True)
            if audio_vectors is not None:
                from lmmsn.llm.audio_init import init_audio_rows

                init_audio_rows(model, vocabulary, audio_vectors)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        embed_name, head_name = _module_names(model)
        new_ids = vocabulary.new_ids
        config = peft.LoraConfig(  # ours (LoraConfig) is the recipe-facing subset
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            trainable_token_indices={embed_name: new_ids, head_name: new_ids},
            task_type="CAUSAL_LM",
        )
        peft_model = peft.get_peft_model(model, config)
        logger.info("AudioLM from %s: %s", base_model, vocabulary)
        return cls(peft_model, text_tokenizer, vocabulary, base_model, lora)

    # ---- use ----------------------------------------------------------------------------------

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Logits [B, L, V] for input_ids [B, L]."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs).logits

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Name -> parameter for everything that trains (LoRA + new rows)."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def to(self, *args: Any, **kwargs: Any) -> AudioLM:
        self.model.to(*args, **kwargs)
        return self

    def export_config(self) -> dict[str, Any]:
        """What config.yaml holds (besides kind)."""
        return {
            "base_model": self.base_model,
            "codebook_size": self.vocabulary.codebook_size,
            "first_audio_id": self.vocabulary.first_audio_id,
            "vocab_size": int(self.model.get_input_embeddings().weight.shape[0]),
            "lora": asdict(self.lora) if self.lora is not None else None,
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
        }

    # ---- saving and loading ----------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, merge: bool = False) -> Path:
        """Write the export directory (module docstring); `merge` adds `merged/`.

        Merging works on a copy (the training model keeps its adapters), so it
        needs the model's memory twice.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.lora is None:
            raise ValueError("this AudioLM holds a merged model: save it with save_merged()")
        # The new rows live in the trainable-token parameters; the resized base
        # matrices themselves are unchanged, so they are not saved (peft would
        # otherwise copy both full matrices because the vocabulary was resized).
        self.model.save_pretrained(str(directory / ADAPTER_DIR), save_embedding_layers=False)
        self.text_tokenizer.save_pretrained(str(directory / TEXT_TOKENIZER_DIR))
        self.vocabulary.save(directory)
        save_exported(directory, KIND, self.export_config(), state_dict=None)
        if merge:
            merged = copy.deepcopy(self.model).merge_and_unload()
            self._save_standalone(merged, directory / MERGED_DIR)
        logger.info("saved AudioLM to %s%s", directory, " (+ merged)" if merge else "")
        return directory

    def _save_standalone(self, model: torch.nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))
        self.text_tokenizer.save_pretrained(str(directory))
        self.vocabulary.save(directory)

    def save_merged(self, directory: str | Path) -> Path:
        """Write only a standalone merged model directory (HF format + vocabulary)."""
        model = copy.deepcopy(self.model)
        if self.lora is not None:
            model = model.merge_and_unload()
        self._save_standalone(model, Path(directory))
        return Path(directory)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        is_trainable: bool = False,
        base_model: str | Path | None = None,
        attn_implementation: str | None = None,
    ) -> AudioLM:
        """Load an export directory (base + adapter) or a merged one.

        Args:
            directory: written by `save_pretrained` (or its `merged/` folder).
            device: where to put the model (default: CPU).
            dtype: base weights dtype (default: the base checkpoint's).
            is_trainable: keep LoRA and the new rows trainable (to continue training).
            base_model: override the base model path stored in config.yaml
                (e.g. the same weights at another location).
            attn_implementation: passed to transformers.
        """
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        directory = Path(directory)
        torch_dtype = resolve_dtype(dtype)
        check_audio_lm_export(directory, base_model)  # every file read below, before anything is loaded
        if not (directory / "config.yaml").is_file() and (directory / "config.json").is_file():
            kwargs: dict[str, Any] = {"dtype": torch_dtype} if torch_dtype is not None else {}
            if attn_implementation is not None:
                kwargs["attn_implementation"] = attn_implementation
            model = AutoModelForCausalLM.from_pretrained(str(directory), **kwargs)
            text_tokenizer = AutoTokenizer.from_pretrained(str(directory))
            vocabulary = AudioVocabulary.load(directory)
            if device is not None:
                model.to(device)
            return cls(model, text_tokenizer, vocabulary, str(directory), None)
        config_path = directory / "config.yaml"
        config = from_dict(ExportConfig, read_exported_config(directory, KIND), source=str(config_path))
        base = str(base_model or config.base_model)
        text_dir = directory / TEXT_TOKENIZER_DIR
        if not text_dir.is_dir() and (directory / LEGACY_TEXT_TOKENIZER_DIR).is_dir():
            text_dir = directory / LEGACY_TEXT_TOKENIZER_DIR
        with _export_errors(text_dir):
            text_tokenizer = AutoTokenizer.from_pretrained(str(text_dir))
        with _export_errors(directory / "audio_vocabulary.json"):
            vocabulary = AudioVocabulary.load(directory)
        if (config.codebook_size, config.first_audio_id) != (vocabulary.codebook_size, vocabulary.first_audio_id):
            raise ExportError(f"{config_path}: codebook_size {config.codebook_size} / first_audio_id "
                              f"{config.first_audio_id} disagree with {directory / 'audio_vocabulary.json'} ({vocabulary})")
        if AudioVocabulary.extend(text_tokenizer, vocabulary.codebook_size) != vocabulary:
            raise ExportError(f"{text_dir}: text tokenizer and {directory / 'audio_vocabulary.json'} disagree")
        if config.vocab_size < vocabulary.size:
            raise ExportError(f"{config_path}: vocab_size {config.vocab_size} < {vocabulary.size}, the audio vocabulary's end")
        model, _ = cls._load_base(base, torch_dtype, attn_implementation)
        with torch.no_grad():
            # The new rows' init is irrelevant: the adapter holds their trained values.
            model.resize_token_embeddings(config.vocab_size, mean_resizing=False)
        adapter = directory / ADAPTER_DIR
        with _export_errors(adapter / "adapter_model.safetensors"):
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=is_trainable)
        _check_adapter_names(model, adapter / "adapter_model.safetensors")
        if device is not None:
            model.to(device)
        if not is_trainable:
            model.eval()
        return cls(model, text_tokenizer, vocabulary, base, config.lora)


__all__ = ["ADAPTER_DIR", "KIND", "MERGED_DIR", "TEXT_TOKENIZER_DIR", "AudioLM", "LoraConfig", "resolve_dtype"]
