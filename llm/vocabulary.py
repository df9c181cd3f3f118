"""Audio-token vocabulary: codes <-> LLM token ids, audio spans, parsing of generations.

The paper (Sec. 3.2) extends the LLM's vocabulary with one token per codebook
entry, `<a_0>` ... `<a_{K-1}>`, plus `<soa>` / `<eoa>` that open and close an
audio span. They are added to the HF tokenizer as *special* added tokens in
one contiguous block, in this order:

    first_audio_id + c   for code c in [0, K)      (<a_c>)
    first_audio_id + K                             (<soa>)
    first_audio_id + K + 1                         (<eoa>)

so codes <-> ids is an offset (no lookup table) and `ids[i] - first_audio_id`
recovers a code. For Vicuna (32,000 text tokens) and K = 8196 the extended
vocabulary has 40,198 tokens.

Parsing generated ids (`AudioVocabulary.parse`) never raises on a malformed
generation. The documented behaviour, tested in `tests/llm/test_vocabulary.py`:

1. Text ids outside audio spans gather into `TextSegment`s (consecutive ids
   form one segment; decoded when a tokenizer is given).
2. `<soa>` opens a span; audio ids inside it become the codes of an
   `AudioSegment`; `<eoa>` closes it (`closed=True`).
3. Text ids *inside* an open span are dropped (the span goes on) and counted
   in `AudioSegment.dropped`: an LLM writing audio that slips a text token
   in should not lose the rest of its sound.
4. A span still open at the end of the ids ends there (`closed=False`).
5. A `<soa>` inside an open span ends the current span (`closed=False`) and
   opens a new one.
6. Audio ids outside any span form an `AudioSegment` with `opened=False`
   (e.g. when the prompt itself ended with `<soa>`); it ends at the next
   `<soa>`, `<eoa>` (then `closed=True`) or text id.
7. A stray `<eoa>` outside any span is dropped.
8. Out-of-range ids (negative, or above `<eoa>`, e.g. padding rows of a
   resized embedding) are dropped wherever they appear; inside a span they
   count in `dropped`.
9. Empty spans (`<soa><eoa>`) give an `AudioSegment` with no codes.
10. Elements that are no token ids (NaN, inf, fractional floats, None, bools,
    strings, other objects) are out-of-range ids (rule 8); integral floats
    (`3.0`) are ids. 2-D tensors and nested lists are read row-major; None
    or an empty input gives no segments; a single int is a one-id sequence.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

VOCABULARY_FILE = "audio_vocabulary.json"
FORMAT_VERSION = 1
SOA_TOKEN = "<soa>"
EOA_TOKEN = "<eoa>"


def audio_token(code: int) -> str:
    """The token string of audio code `code` (`<a_12>`)."""
    return f"<a_{code}>"


@dataclass
class TextSegment:
    """A run of text token ids in a parsed generation."""

    ids: list[int]
    text: str | None = None
    "Decoded text (None when `parse` got no text tokenizer)."


@dataclass
class AudioSegment:
    """An audio span in a parsed generation."""

    codes: list[int]
    opened: bool = True
    "Whether the span started with <soa> (False: bare audio ids)."
    closed: bool = True
    "Whether the span ended with <eoa> (False: cut off or interrupted)."
    dropped: int = 0
    "Non-audio ids (text or out-of-range) skipped inside the span."

    @property
    def complete(self) -> bool:
        """True for a well-formed `<soa> ... <eoa>` span."""
        return self.opened and self.closed


@dataclass
class _OpenSpan:
    codes: list[int] = field(default_factory=list)
    opened: bool = True
    dropped: int = 0


def _as_list(ids: Any) -> list[int]:
    if isinstance(ids, torch.Tensor):
        return [int(i) for i in ids.reshape(-1).tolist()]
    return [int(i) for i in ids]


_NOT_AN_ID = -1
"What `_token_ids` gives for an element that is no token id (below every id, so rule 8 drops it)."


def _token_ids(ids: Any) -> list[int]:
    """Whatever `parse` is given, as a flat list of ints; never raises.

    Integers (Python, NumPy, 0-d tensors) and integral finite floats (`3.0` from a float
    tensor) are ids; NaN, inf, fractions, None, bools, strings and other objects become
    `_NOT_AN_ID`. Nested sequences and 2-D tensors are read row-major, as `reshape(-1)` does.
    """
    if ids is None:
        return []
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    elif hasattr(ids, "tolist") and hasattr(ids, "shape"):  # NumPy arrays and scalars
        try:
            ids = ids.tolist()
        except Exception:  # an object that only looks like an array
            return [_NOT_AN_ID]
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        ids = [ids]
    out: list[int] = []
    stack = [iter(ids)]
    while stack:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        except Exception:  # a broken iterator ends its part of the input
            stack.pop()
            continue
        if isinstance(item, bool):
            out.append(_NOT_AN_ID)
        elif isinstance(item, int):
            out.append(int(item))
        elif isinstance(item, float):
            out.append(int(item) if math.isfinite(item) and item.is_integer() else _NOT_AN_ID)
        elif isinstance(item, torch.Tensor) or (hasattr(item, "tolist") and hasattr(item, "shape")):
            out.extend(_token_ids(item))
        elif isinstance(item, (list, tuple, range)):
            stack.append(iter(item))
        else:
            out.append(_NOT_AN_ID)
    return out


class AudioVocabulary:
    """Maps audio codes to token ids of an extended LLM vocabulary.

    Args:
        codebook_size: K, the number of audio codes.
        first_audio_id: token id of `<a_0>`; `<soa>` / `<eoa>` follow `<a_{K-1}>`.
    """

    def __init__(self, codebook_size: int, first_audio_id: int) -> None:
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        if first_audio_id < 0:
            raise ValueError(f"first_audio_id must be >= 0, got {first_audio_id}")
        self.codebook_size = int(codebook_size)
        self.first_audio_id = int(first_audio_id)

    # ---- construction -------------------------------------------------------------------------

    @staticmethod
    def token_strings(codebook_size: int) -> list[str]:
        """The K + 2 new token strings, in id order."""
        return [audio_token(c) for c in range(codebook_size)] + [SOA_TOKEN, EOA_TOKEN]

    @classmethod
    def extend(cls, text_tokenizer: Any, codebook_size: int) -> AudioVocabulary:
        """Add the audio tokens to `tokenizer` (in place) and return the vocabulary.

        Idempotent: a tokenizer that already holds the tokens (e.g. one saved by
        `AudioLM.save_pretrained`) is checked, not extended again.

        Args:
            text_tokenizer: any HF tokenizer (`PreTrainedTokenizerBase`).
            codebook_size: K.

        Raises:
            ValueError: the tokens exist but not as one contiguous block.
        """
        from transformers import AddedToken

        strings = cls.token_strings(codebook_size)
        vocab = text_tokenizer.get_vocab()
        present = [s in vocab for s in strings]
        if not any(present):
            tokens = [AddedToken(s, special=True, normalized=False) for s in strings]
            text_tokenizer.add_tokens(tokens, special_tokens=True)
            vocab = text_tokenizer.get_vocab()
        elif not all(present):
            missing = [s for s, p in zip(strings, present, strict=True) if not p][:5]
            raise ValueError(f"tokenizer holds some audio tokens but not all (missing e.g. {missing})")
        ids = [vocab[s] for s in strings]
        first = ids[0]
        if ids != list(range(first, first + len(strings))):
            raise ValueError(
                "audio tokens are not contiguous in the tokenizer "
                f"(<a_0> = {first}, {SOA_TOKEN} = {ids[-2]}, {EOA_TOKEN} = {ids[-1]})"
            )
        return cls(codebook_size, first)

    # ---- ids ----------------------------------------------------------------------------------

    @property
    def soa_id(self) -> int:
        """Token id of `<soa>`."""
        return self.first_audio_id + self.codebook_size

    @property
    def eoa_id(self) -> int:
        """Token id of `<eoa>`."""
        return self.first_audio_id + self.codebook_size + 1

    @property
    def audio_ids(self) -> range:
        """The K audio token ids (a range)."""
        return range(self.first_audio_id, self.first_audio_id + self.codebook_size)

    @property
    def new_ids(self) -> list[int]:
        """Every id this vocabulary added (K audio ids, `<soa>`, `<eoa>`): the trainable rows."""
        return list(range(self.first_audio_id, self.eoa_id + 1))

    @property
    def size(self) -> int:
        """Smallest vocabulary size holding every id (= eoa_id + 1)."""
        return self.eoa_id + 1

    def codes_to_ids(self, codes: Any) -> torch.Tensor:
        """Codes (tensor, array or list) -> int64 token ids of the same shape.

        Raises:
            ValueError: a code is outside [0, K).
        """
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"audio codes must be in [0, {self.codebook_size}), got range "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        return codes + self.first_audio_id

    def ids_to_codes(self, ids: Any) -> torch.Tensor:
        """Audio token ids -> int64 codes of the same shape.

        Raises:
            ValueError: an id is not an audio token (use `parse` for mixed ids).
        """
        ids = torch.as_tensor(ids, dtype=torch.long)
        if not bool(self.is_audio(ids).all()):
            raise ValueError(
                f"ids_to_codes got non-audio ids (audio ids are {self.audio_ids.start}.."
                f"{self.audio_ids.stop - 1}); use parse() for generated sequences"
            )
        return ids - self.first_audio_id

    def is_audio(self, ids: Any) -> Any:
        """Whether each id is an audio code token (not `<soa>`/`<eoa>`).

        Returns a bool for an int, else a bool tensor of the input's shape.
        """
        if isinstance(ids, int):
            return self.first_audio_id <= ids < self.soa_id
        ids = torch.as_tensor(ids, dtype=torch.long)
        return (ids >= self.first_audio_id) & (ids < self.soa_id)

    def is_new(self, ids: Any) -> torch.Tensor:
        """Whether each id is one of the added tokens (audio, `<soa>` or `<eoa>`); bool tensor."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        return (ids >= self.first_audio_id) & (ids <= self.eoa_id)

    def format_audio(self, codes: Iterable[int] | torch.Tensor) -> str:
        """The text form of an audio span: `<soa><a_3><a_17><eoa>`.

        Tokenizing it with the extended tokenizer gives `audio_span_ids(codes)`.
        """
        codes = _as_list(codes)
        self.codes_to_ids(codes)  # range check
        return SOA_TOKEN + "".join(audio_token(c) for c in codes) + EOA_TOKEN

    def audio_span_ids(self, codes: Iterable[int] | torch.Tensor) -> list[int]:
        """`<soa>` + audio ids + `<eoa>` as a list of token ids."""
        ids = self.codes_to_ids(_as_list(codes)).tolist()
        return [self.soa_id, *ids, self.eoa_id]

    # ---- parsing ------------------------------------------------------------------------------

    def parse(self, ids: Sequence[int] | torch.Tensor, text_tokenizer: Any = None) -> list[TextSegment | AudioSegment]:
        """Split generated ids into text and audio segments (see the module docstring).

        Args:
            ids: [L] generated token ids (1-D tensor or list; anything else per rule 10).
            text_tokenizer: optional HF tokenizer; when given, text segments are decoded
                (special tokens such as `</s>` skipped).

        Returns:
            Segments in order. Never raises on malformed input.
        """
        segments: list[TextSegment | AudioSegment] = []
        text: list[int] = []
        span: _OpenSpan | None = None

        def flush_text() -> None:
            if text:
                segments.append(TextSegment(list(text)))
                text.clear()

        def close_span(closed: bool) -> None:
            nonlocal span
            if span is not None:
                segments.append(AudioSegment(span.codes, opened=span.opened, closed=closed, dropped=span.dropped))
                span = None

        for token in _token_ids(ids):
            if token < 0 or token > self.eoa_id:  # rule 8 (and rule 10: elements that are no ids)
                if span is not None:
                    span.dropped += 1
                continue
            if token == self.soa_id:  # rules 2 and 5
                flush_text()
                close_span(closed=False)
                span = _OpenSpan()
            elif token == self.eoa_id:  # rules 2, 6 and 7
                close_span(closed=True)
            elif self.first_audio_id <= token < self.soa_id:
                if span is None:  # rule 6
                    flush_text()
                    span = _OpenSpan(opened=False)
                span.codes.append(token - self.first_audio_id)
            elif span is not None and span.opened:  # rule 3
                span.dropped += 1
            else:  # rules 1 and 6
                close_span(closed=False)
                text.append(token)
        flush_text()
        close_span(closed=False)  # rule 4
        if text_tokenizer is not None:
            for segment in segments:
                if isinstance(segment, TextSegment):
                    segment.text = text_tokenizer.decode(segment.ids, skip_special_tokens=True)
        return segments

    def audio_codes(self, ids: Sequence[int] | torch.Tensor) -> list[list[int]]:
        """The codes of every audio segment of `parse(ids)` (convenience for generation)."""
        return [s.codes for s in self.parse(ids) if isinstance(s, AudioSegment)]

    # ---- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain description (what `save` writes)."""
        return {
            "format_version": FORMAT_VERSION,
            "codebook_size": self.codebook_size,
            "first_audio_id": self.first_audio_id,
            "soa_id": self.soa_id,
            "eoa_id": self.eoa_id,
            "audio_token_format": audio_token(0).replace("0", "{code}"),
        }

    def save(self, directory: str | Path) -> Path:
        """Write `audio_vocabulary.json` into `directory` (created if needed); returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / VOCABULARY_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> AudioVocabulary:
        """Read a vocabulary written by `save`.

        Raises:
            FileNotFoundError / ValueError naming the file.
        """
        path = Path(directory) / VOCABULARY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no audio vocabulary file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            version = data["format_version"]
            vocab = cls(int(data["codebook_size"]), int(data["first_audio_id"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a valid audio vocabulary: {exc!r}") from exc
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {version}, this LM-MSN reads {FORMAT_VERSION}")
        if data.get("eoa_id", vocab.eoa_id) != vocab.eoa_id:
            raise ValueError(f"{path}: eoa_id {data['eoa_id']} disagrees with codebook_size/first_audio_id")
        return vocab

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AudioVocabulary)
            and other.codebook_size == self.codebook_size
            and other.first_audio_id == self.first_audio_id
        )

    def __hash__(self) -> int:
        return hash((self.codebook_size, self.first_audio_id))

    def __repr__(self) -> str:
        return (
            f"AudioVocabulary(codebook_size={self.codebook_size}, first_audio_id={self.first_audio_id}, "
            f"soa_id={self.soa_id}, eoa_id={self.eoa_id})"
        )


__all__ = ["EOA_TOKEN", "SOA_TOKEN", "AudioSegment", "AudioVocabulary", "TextSegment", "audio_token"]
