"""A tiny random LLaMA and a locally trained tokenizer, for tests and `tiny_*` configs.

Nothing is downloaded: a byte-level BPE tokenizer is trained with the
`tokenizers` library on a few built-in sentences and wrapped in
`PreTrainedTokenizerFast` with LLaMA's special tokens (`<unk>` 0, `<s>` 1,
`</s>` 2); the model is `LlamaForCausalLM` from a tiny `LlamaConfig` with
random weights (untied input/output embeddings, as in Vicuna). Both are saved
with `save_pretrained` so they load from the path like any hub model:

    path = write_tiny_base("/tmp/tiny-llama")
    AudioLM.from_base(path, codebook_size=32, lora=LoraConfig())
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER_FILE = "lmmsn_tiny_base.txt"

_SENTENCES = [
    "A chat between a curious user and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "USER: What is the sound? ASSISTANT: A dog is barking in the distance.",
    "Describe the audio. Rain falls on a metal roof while thunder rumbles.",
    "Generate the sound of a car engine starting and a door closing.",
    "A man speaks, then a crowd applauds and cheers loudly.",
    "Birds chirp in a forest with wind blowing through the leaves.",
    "Music with a piano melody, soft drums and a bass line.",
    "What genre is this music? It is jazz with a saxophone solo.",
    "Is there speech in the recording? Yes, a woman is talking.",
    "Water runs from a tap and splashes into a sink.",
    "An engine idles, a horn honks twice, and footsteps approach.",
]


@dataclass
class TinyLlamaConfig:
    """Shape of the tiny random LLaMA."""

    vocab_size: int = 384
    "Size of the BPE vocabulary to train (text tokens)."
    hidden_size: int = 32
    "Model width."
    num_hidden_layers: int = 2
    "Decoder layers."
    num_attention_heads: int = 4
    "Attention heads."
    intermediate_size: int = 64
    "MLP width."
    max_position_embeddings: int = 2048
    "Longest sequence."
    seed: int = 0
    "Seed of the random weights."


def build_tiny_text_tokenizer(vocab_size: int = 384):
    """A byte-level BPE `PreTrainedTokenizerFast` with LLaMA-like special tokens (adds `<s>`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_SENTENCES, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=2048,
    )


def write_tiny_base(directory: str | Path, settings: TinyLlamaConfig | None = None) -> Path:
    """Write a tiny random `LlamaForCausalLM` + tokenizer into `directory`; returns it.

    Reuses the directory when it already holds a tiny base (marker file), so
    configs can point at a fixed path and tests stay fast. Written into a
    temporary sibling and renamed, so concurrent ranks cannot see half a model.
    """
    import os
    import shutil
    import tempfile

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = settings or TinyLlamaConfig()
    directory = Path(directory)
    marker = directory / MARKER_FILE
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == repr(settings):
        return directory
    if directory.is_dir() and any(directory.iterdir()) and not marker.is_file():
        raise FileExistsError(f"{directory}: exists and is not a tiny base written by write_tiny_base")
    directory.parent.mkdir(parents=True, exist_ok=True)
    final, directory = directory, Path(tempfile.mkdtemp(prefix=".tiny-", dir=directory.parent))
    tokenizer = build_tiny_text_tokenizer(settings.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        num_key_value_heads=settings.num_attention_heads,
        intermediate_size=settings.intermediate_size,
        max_position_embeddings=settings.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / MARKER_FILE).write_text(repr(settings) + "\n", encoding="utf-8")
    done = final / MARKER_FILE
    if done.is_file() and done.read_text(encoding="utf-8").strip() == repr(settings):
        shutil.rmtree(directory)  # another process finished first; same content
        return final
    if final.exists():  # empty, or a tiny base of other settings
        shutil.rmtree(final)
    try:
        os.replace(directory, final)
    except OSError:  # lost a race against another process
        shutil.rmtree(directory, ignore_errors=True)
    logger.info("wrote tiny random LLaMA (%d text tokens) to %s", len(tokenizer), final)
    return final


__all__ = ["TinyLlamaConfig", "build_tiny_text_tokenizer", "write_tiny_base"]
