"""Prompt formats: pretraining caption/audio pairs, the Vicuna v1.1 chat template, OpenAQA records.

Pretraining (paper Sec. 3.2) pairs a caption with its audio in either order,
drawn at random per sample:

    "<caption> <soa><a_..>...<eoa></s>"   (text -> audio)
    "<soa><a_..>...<eoa> <caption></s>"   (audio -> text)

Instruction tuning uses Vicuna v1.1's template (FastChat `vicuna_v1.1`,
`SeparatorStyle.ADD_COLON_TWO`, sep " ", sep2 "</s>"):

    "<system> USER: <msg> ASSISTANT: <reply></s>USER: <msg> ASSISTANT:"

Audio goes inside a turn: the literal placeholder `<audio>` in a message is
replaced, in order, by the span of the next audio clip (`format_audio`).

Training renders and inference prompts come from the same functions, so they
cannot diverge: an inference prompt is the training render of the same
conversation cut where the model takes over (`generation_prompt`,
`caption_prompt`; tested token for token). Fine-tuning also holds generation
conversations built from caption pairs (`generation_messages`: the caption in
the user turn, the clip in the assistant turn), the turn `generate` prompts.

Tokenization renders the whole string once and tokenizes it with character
offsets, so the ids equal what inference gets from tokenizing the same text.
Labels come from character spans (only assistant replies and their `</s>`
count in instruction tuning; everything counts in pretraining):

* a reply's span starts at the space that separates "ASSISTANT:" from it.
  SentencePiece / Metaspace tokenizers (Llama 2, Vicuna: "▁A") and byte-level
  BPE ("ĠA") both fold that space into the reply's first token, and a reply
  that starts with audio gets a lone "▁" / "Ġ" token before `<soa>`: the
  model must write both after a prompt ending in "ASSISTANT:".
* a token is a label when any of its characters lies in a target span
  (a zero-width token when its position does), never the tokenizer's own
  `<s>`. Labelling a token by its first character alone dropped the first
  word of every reply with these tokenizers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from lmmsn.llm.vocabulary import SOA_TOKEN, AudioVocabulary

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
"The exact Vicuna v1.1 system prompt."
USER_ROLE = "USER"
ASSISTANT_ROLE = "ASSISTANT"
EOS_TEXT = "</s>"
"Vicuna's end-of-turn separator (LLaMA's eos token); other bases end turns with their own (`end_of_turn`)."
AUDIO_PLACEHOLDER = "<audio>"
"Marks where an audio clip goes in a message."
IGNORE_INDEX = -100
GENERATE_INSTRUCTION = "Generate audio of: {prompt}"
"User message of generation conversations ({prompt}: the caption); training and `Pipeline.generate` share it."
CAPTION_INSTRUCTION = "Describe the audio."
"User question of captioning conversations built from caption pairs; `Pipeline.caption`'s default."
PromptStyle = Literal["chat", "pretrain"]
"chat: Vicuna v1.1 template (fine-tuned models); pretrain: bare caption/audio pairs (pretrained models)."

_ROLE_ALIASES = {
    "user": USER_ROLE, "human": USER_ROLE, USER_ROLE: USER_ROLE,
    "assistant": ASSISTANT_ROLE, "gpt": ASSISTANT_ROLE, ASSISTANT_ROLE: ASSISTANT_ROLE,
}


def end_of_turn(text_tokenizer: Any) -> str:
    """The text that ends a reply or a pretraining pair for this base: its eos token.

    "</s>" for LLaMA / Vicuna and the demo base; Gemma's is "<eos>". Rendering Vicuna's
    literal "</s>" for a base whose eos differs trains the model to write those
    characters as text and never its eos id, so generation runs to max_new_tokens.
    A tokenizer without an eos token keeps Vicuna's.
    """
    eos = getattr(text_tokenizer, "eos_token", None)
    return eos if isinstance(eos, str) and eos else EOS_TEXT


@dataclass
class Rendered:
    """A prompt as text plus the character spans that are training targets."""

    text: str
    target_spans: list[tuple[int, int]]
    "Half-open [start, end) character ranges whose tokens are labels."


@dataclass
class Example:
    """One tokenized training example."""

    input_ids: torch.Tensor
    "[L] int64."
    labels: torch.Tensor
    "[L] int64; IGNORE_INDEX where no loss is taken (labels are NOT shifted)."

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def _fill_audio(content: str, audio: list[str], where: str) -> str:
    parts = content.split(AUDIO_PLACEHOLDER)
    if len(parts) - 1 > len(audio):
        raise ValueError(f"{where}: {len(parts) - 1} '{AUDIO_PLACEHOLDER}' placeholders but only {len(audio)} audio clips")
    out = parts[0]
    for part in parts[1:]:
        out += audio.pop(0) + part
    return out


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Messages as (role, content) with role USER / ASSISTANT.

    Accepts `{"role": "user"|"assistant", "content": ...}` and ShareGPT/LLaVA
    `{"from": "human"|"gpt", "value": ...}`.
    """
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValueError(f"message {i}: expected a mapping with role/content (or from/value), got {message!r}")
        role = message.get("role", message.get("from"))
        content = message.get("content", message.get("value"))
        if role not in _ROLE_ALIASES or not isinstance(content, str):
            raise ValueError(f"message {i}: needs role user/assistant (or from human/gpt) and text content, got {dict(message)!r}")
        out.append((_ROLE_ALIASES[role], content))
    return out


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    vocabulary: AudioVocabulary | None = None,
    audio: Sequence[Any] = (),
    *,
    system: str = VICUNA_SYSTEM,
    add_generation_prompt: bool | None = None,
    continue_final_message: bool = False,
    eos: str = EOS_TEXT,
) -> Rendered:
    """Vicuna v1.1 rendering with the character spans of the assistant replies.

    Args:
        messages: alternating user / assistant messages (see `normalize_messages`).
        vocabulary: needed when `audio` is given.
        audio: audio clips (codes [T]) filling the `<audio>` placeholders in order.
        system: system prompt.
        add_generation_prompt: end with "ASSISTANT:" for the model to continue.
            None: only when the last message is the user's.
        continue_final_message: the last message is the start of an assistant reply
            that the model continues (no `</s>` after it), as in transformers'
            `apply_chat_template`; e.g. "<soa>" to make it write audio.
        eos: the text that ends a reply: the base's eos token (`end_of_turn`); Vicuna's "</s>".

    Returns:
        `Rendered`; each target span covers a reply, the space before it and its `</s>`
        (module docstring).
    """
    turns = normalize_messages(messages)
    if audio and vocabulary is None:
        raise ValueError("render_chat: audio clips given without a vocabulary")
    if continue_final_message and (not turns or turns[-1][0] != ASSISTANT_ROLE):
        raise ValueError("render_chat: continue_final_message needs an assistant message last")
    spans_text = [vocabulary.format_audio(codes) for codes in audio] if audio else []
    text = system + " "
    targets: list[tuple[int, int]] = []
    for i, (role, content) in enumerate(turns):
        expected = USER_ROLE if i % 2 == 0 else ASSISTANT_ROLE
        if role != expected:
            raise ValueError(f"message {i}: expected a {expected} turn (roles must alternate, user first), got {role}")
        content = _fill_audio(content, spans_text, f"message {i}")
        if role == USER_ROLE:
            text += f"{USER_ROLE}: {content} "
        else:
            text += f"{ASSISTANT_ROLE}:"
            start = len(text)  # the separating space: part of the reply's first token
            last = continue_final_message and i == len(turns) - 1
            text += " " + content + ("" if last else eos)
            targets.append((start, len(text)))
    if spans_text:
        raise ValueError(f"render_chat: {len(spans_text)} audio clips left without an '{AUDIO_PLACEHOLDER}' placeholder")
    if add_generation_prompt is None:
        add_generation_prompt = bool(turns) and turns[-1][0] == USER_ROLE
    if add_generation_prompt and not continue_final_message:
        text += f"{ASSISTANT_ROLE}:"
    return Rendered(text, targets)


def chat_prompt(
    messages: Sequence[Mapping[str, Any]],
    vocabulary: AudioVocabulary | None = None,
    audio: Sequence[Any] = (),
    *,
    system: str = VICUNA_SYSTEM,
    add_generation_prompt: bool | None = None,
    continue_final_message: bool = False,
    eos: str = EOS_TEXT,
) -> str:
    """The Vicuna v1.1 prompt string (see `render_chat` for the arguments).

    >>> chat_prompt([{"role": "user", "content": "Hi"}])  # doctest: +ELLIPSIS
    "A chat between ... questions. USER: Hi ASSISTANT:"
    """
    return render_chat(messages, vocabulary, audio, system=system, add_generation_prompt=add_generation_prompt,
                       continue_final_message=continue_final_message, eos=eos).text


# ---- conversations built from caption pairs (fine-tuning mix and inference) ----------------------


def generation_messages(caption: str, instruction: str = GENERATE_INSTRUCTION) -> list[dict[str, str]]:
    """A generation conversation: the caption in the user turn, the clip in the assistant turn."""
    return [{"role": "user", "content": instruction.format(prompt=caption)},
            {"role": "assistant", "content": AUDIO_PLACEHOLDER}]


def caption_messages(caption: str | None = None, question: str = CAPTION_INSTRUCTION) -> list[dict[str, str]]:
    """A captioning conversation: the clip and `question` in the user turn, then `caption` (when given)."""
    messages = [{"role": "user", "content": f"{AUDIO_PLACEHOLDER}\n{question}"}]
    if caption is not None:
        messages.append({"role": "assistant", "content": caption})
    return messages


def _pair_text(caption: str, span: str, audio_first: bool) -> str:
    """The pretraining pair without its `</s>`; shared by training renders and pretrain-style prompts."""
    return f"{span} {caption}" if audio_first else f"{caption} {span}"


def generation_prompt(
    text: str, *, style: PromptStyle = "chat", instruction: str = GENERATE_INSTRUCTION, system: str = VICUNA_SYSTEM
) -> str:
    """The prompt that makes the LLM write audio for `text`; ends with `<soa>`.

    It is the training render of the same pair cut after `<soa>`: chat style, the
    generation conversation (`generation_messages`) with the assistant reply
    continued from "<soa>"; pretrain style, the text-first pair.
    """
    if style == "pretrain":
        return _pair_text(text, SOA_TOKEN, audio_first=False)
    if style != "chat":
        raise ValueError(f"prompt style must be 'chat' or 'pretrain', got {style!r}")
    user, _ = generation_messages(text, instruction)
    messages = [user, {"role": "assistant", "content": SOA_TOKEN}]
    return render_chat(messages, system=system, continue_final_message=True).text


def caption_prompt(
    codes: Any,
    vocabulary: AudioVocabulary,
    *,
    style: PromptStyle = "chat",
    question: str = CAPTION_INSTRUCTION,
    system: str = VICUNA_SYSTEM,
) -> str:
    """The prompt asking for text about the clip `codes`: the training render cut where the answer starts."""
    if style == "pretrain":
        return vocabulary.format_audio(codes)  # the audio-first pair, cut before " <caption></s>"
    if style != "chat":
        raise ValueError(f"prompt style must be 'chat' or 'pretrain', got {style!r}")
    return render_chat(caption_messages(None, question), vocabulary, [codes], system=system,
                       add_generation_prompt=True).text


# ---- pretraining pairs ---------------------------------------------------------------------------


def render_pretraining(
    caption: str, codes: Any, vocabulary: AudioVocabulary, audio_first: bool, eos: str = EOS_TEXT
) -> Rendered:
    """A caption/audio pair in one order; the whole text (with its end, `eos`) is a target."""
    text = _pair_text(caption, vocabulary.format_audio(codes), audio_first) + eos
    return Rendered(text, [(0, len(text))])


def draw_audio_first(rng: random.Random, audio_first_prob: float) -> bool:
    """Draw the pair order of one pretraining sample (True: audio then caption)."""
    return rng.random() < audio_first_prob


def token_labels(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Which tokens are labels: any of their characters (a zero-width token: its position) in a span.

    Args:
        offsets: (start, end) character offsets per token.
        spans: half-open target character ranges.
    """
    out = []
    for start, end in offsets:
        if start == end:
            out.append(any(a <= start < b for a, b in spans))
        else:
            out.append(any(start < b and end > a for a, b in spans))
    return out


def tokenize_rendered(rendered: Rendered, text_tokenizer: Any, max_length: int | None = None) -> Example:
    """Tokenize a rendered prompt (with the tokenizer's bos) and label the target spans.

    A token is a label when any of its characters lies in a target span
    (`token_labels`; module docstring); the `<s>` the tokenizer adds never is.
    Longer examples are truncated to `max_length` tokens.
    """
    encoded = text_tokenizer(rendered.text, add_special_tokens=True, return_offsets_mapping=True,
                        return_special_tokens_mask=True)
    ids = list(encoded["input_ids"])
    added = encoded["special_tokens_mask"]  # 1 on tokens the post-processor added (<s>), not on text ones
    inside = token_labels(encoded["offset_mapping"], rendered.target_spans)
    labels = [t if keep and not extra else IGNORE_INDEX for t, keep, extra in zip(ids, inside, added, strict=True)]
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return Example(torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long))


_OPENAQA_AUDIO_RE = re.compile(re.escape(AUDIO_PLACEHOLDER))


def openaqa_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """An OpenAQA record (LTU format) as chat messages with one audio clip.

    OpenAQA-5M records hold `instruction`, optional `input`, `output` and an
    audio reference (`audio_id`). The clip goes first in the user turn, as in
    LTU's prompt ("<audio>\\n<instruction>").

    Raises:
        ValueError: `instruction` or `output` is missing.
    """
    instruction, output = record.get("instruction"), record.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        raise ValueError(f"OpenAQA record needs 'instruction' and 'output' strings, got keys {sorted(record)}")
    extra = record.get("input") or ""
    user = f"{AUDIO_PLACEHOLDER}\n{instruction}" + (f"\n{extra}" if extra else "")
    if _OPENAQA_AUDIO_RE.search(instruction + extra):
        user = instruction + (f"\n{extra}" if extra else "")  # the record places the clip itself
    return [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


__all__ = [
    "ASSISTANT_ROLE",
    "AUDIO_PLACEHOLDER",
    "CAPTION_INSTRUCTION",
    "EOS_TEXT",
    "end_of_turn",
    "GENERATE_INSTRUCTION",
    "IGNORE_INDEX",
    "USER_ROLE",
    "VICUNA_SYSTEM",
    "Example",
    "PromptStyle",
    "Rendered",
    "caption_messages",
    "caption_prompt",
    "chat_prompt",
    "draw_audio_first",
    "generation_messages",
    "generation_prompt",
    "normalize_messages",
    "openaqa_messages",
    "render_chat",
    "render_pretraining",
    "token_labels",
    "tokenize_rendered",
]
