"""Text tokenizers of the three families LLMs ship, trained in-process with `tokenizers` (no downloads).

* "metaspace": SentencePiece-style BPE with a Metaspace pre-tokenizer ("▁A"), as
  transformers converts Llama 2 / Vicuna with `legacy=False`;
* "llama-legacy": the same vocabulary behind Llama's legacy normalizer
  (Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer), as Vicuna v1.5's tokenizer.json;
* "byte-level": GPT-2-style byte-level BPE ("ĠA"), the tiny test LLaMA's
  (`lmmsn.llm.tiny.build_tiny_text_tokenizer`).

All add `<s>` in front and know `</s>` / `<unk>`, like Llama's.
"""

from __future__ import annotations

import string

KINDS = ("metaspace", "llama-legacy", "byte-level")

_TEXT = [
    "A chat between a curious user and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "USER: What is the sound? ASSISTANT: A dog barks in the distance.",
    "USER: Describe the audio. ASSISTANT: Rain falls on a roof while thunder rumbles.",
    "USER: Generate audio of: dog barking ASSISTANT: A dog is barking.",
    "Birds chirp. A man speaks. Music plays. Water runs. A car engine starts.",
]


def build_text_tokenizer(kind: str):
    """A `PreTrainedTokenizerFast` of family `kind` (one of KINDS)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if kind == "byte-level":
        from lmmsn.llm.tiny import build_tiny_text_tokenizer

        return build_tiny_text_tokenizer()
    if kind not in KINDS:
        raise ValueError(kind)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=[*string.printable.strip(), "▁"])
    tokenizer.train_from_iterator(_TEXT, trainer=trainer)  # words never merge across "▁": SentencePiece's default
    if kind == "llama-legacy":
        tokenizer.pre_tokenizer = None
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    else:
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                             special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def pieces(tokenizer, ids) -> str:
    """The token strings of `ids` joined, "▁" / "Ġ" shown as spaces."""
    return "".join(tokenizer.convert_ids_to_tokens(list(ids))).replace("▁", " ").replace("Ġ", " ")
