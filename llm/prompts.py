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

Tokenization renders the whole string once and tokenizes it with character
offsets, so the ids equal what inference gets from tokenizing the same text;
the label mask is taken from character spans (only assistant replies and
their `</s>` count in instruction tuning; everything counts in pretraining).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lmmsn.llm.vocabulary import AudioVocabulary

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
"The exact Vicuna v1.1 system prompt."
USER_ROLE = "USER"
ASSISTANT_ROLE = "ASSISTANT"
EOS_TEXT = "</s>"
"Vicuna's end-of-turn separator (LLaMA's eos token)."
AUDIO_PLACEHOLDER = "<audio>"
"Marks where an audio clip goes in a message."
IGNORE_INDEX = -100

_ROLE_ALIASES = {
    "user": USER_ROLE, "human": USER_ROLE, USER_ROLE: USER_ROLE,
    "assistant": ASSISTANT_ROLE, "gpt": ASSISTANT_ROLE, ASSISTANT_ROLE: ASSISTANT_ROLE,
}


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


def normalise_messages(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Messages as (role, content) with role USER / ASSISTANT.

    Accepts `{"role": "user"|"assistant", "content": ...}` and ShareGPT/LLaVA
    `{"from": "human"|"gpt", "value": ...}`.
    """
    out = []
    for i, message in enumerate(messages):
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
) -> Rendered:
    """Vicuna v1.1 rendering with the character spans of the assistant replies.

    Args:
        messages: alternating user / assistant messages (see `normalise_messages`).
        vocabulary: needed when `audio` is given.
        audio: audio clips (codes [T]) filling the `<audio>` placeholders in order.
        system: system prompt.
        add_generation_prompt: end with "ASSISTANT:" for the model to continue.
            None: only when the last message is the user's.

    Returns:
        `Rendered`; each target span covers a reply and its `</s>`.
    """
    turns = normalise_messages(messages)
    if audio and vocabulary is None:
        raise ValueError("render_chat: audio clips given without a vocabulary")
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
            text += f"{ASSISTANT_ROLE}: "
            start = len(text)
            text += content + EOS_TEXT
            targets.append((start, len(text)))
    if spans_text:
        raise ValueError(f"render_chat: {len(spans_text)} audio clips left without an '{AUDIO_PLACEHOLDER}' placeholder")
    if add_generation_prompt is None:
        add_generation_prompt = bool(turns) and turns[-1][0] == USER_ROLE
    if add_generation_prompt:
        text += f"{ASSISTANT_ROLE}:"
    return Rendered(text, targets)


def chat_prompt(
    messages: Sequence[Mapping[str, Any]],
    vocabulary: AudioVocabulary | None = None,
    audio: Sequence[Any] = (),
    *,
    system: str = VICUNA_SYSTEM,
    add_generation_prompt: bool | None = None,
) -> str:
    """The Vicuna v1.1 prompt string (see `render_chat` for the arguments).

    >>> chat_prompt([{"role": "user", "content": "Hi"}])  # doctest: +ELLIPSIS
    "A chat between ... questions. USER: Hi ASSISTANT:"
    """
    return render_chat(messages, vocabulary, audio, system=system, add_generation_prompt=add_generation_prompt).text


def render_pretraining(caption: str, codes: Any, vocabulary: AudioVocabulary, audio_first: bool) -> Rendered:
    """A caption/audio pair in one order; the whole text (with `</s>`) is a target."""
    span = vocabulary.format_audio(codes)
    text = f"{span} {caption}{EOS_TEXT}" if audio_first else f"{caption} {span}{EOS_TEXT}"
    return Rendered(text, [(0, len(text))])


def draw_audio_first(rng: random.Random, audio_first_prob: float) -> bool:
    """Draw the pair order of one pretraining sample (True: audio then caption)."""
    return rng.random() < audio_first_prob


def tokenize_rendered(rendered: Rendered, tokenizer: Any, max_length: int | None = None) -> Example:
    """Tokenize a rendered prompt (with the tokenizer's bos) and label the target spans.

    A token is a label when its first character lies in a target span. Longer
    examples are truncated to `max_length` tokens.
    """
    encoded = tokenizer(rendered.text, add_special_tokens=True, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    offsets = encoded["offset_mapping"]
    labels = []
    for token_id, (start, end) in zip(ids, offsets, strict=True):
        special = start == end == 0 and token_id == tokenizer.bos_token_id
        inside = any(a <= start < b for a, b in rendered.target_spans)
        labels.append(token_id if inside and not special else IGNORE_INDEX)
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
    "EOS_TEXT",
    "IGNORE_INDEX",
    "USER_ROLE",
    "VICUNA_SYSTEM",
    "Example",
    "Rendered",
    "chat_prompt",
    "draw_audio_first",
    "normalise_messages",
    "openaqa_messages",
    "render_chat",
    "render_pretraining",
    "tokenize_rendered",
]
