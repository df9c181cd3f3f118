"""Shard samples -> token batches for the audio LM (pretraining pairs and conversations).

Reads `lmmsn.data.format` samples (through `lmmsn.data.loader.shard_samples`)
that hold `codes` and, in their JSON, either `captions` (pretraining) or an
instruction record (fine-tuning): `conversations` (list of user/assistant or
human/gpt messages, the clip at an `<audio>` placeholder) or an OpenAQA record
(`instruction`, `input`, `output`). Each sample becomes an `Example`
(`lmmsn.llm.prompts`); examples are grouped by length and padded per batch.

Length bucketing (instead of packing, which would need varlen attention): a
buffer of `batch_size * bucket_batches` examples is sorted by length, cut into
batches of `batch_size`, and the batches are yielded in a seeded random order,
so a batch holds similar lengths and padding stays small. The number of
batches only depends on the number of examples, so the loader's per-rank
balancing keeps DDP ranks in step.

Randomness (caption choice, pair order, batch order) comes from a
`random.Random` seeded with (seed, epoch, rank, worker): a run is reproducible.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import IterableDataset, get_worker_info

from lmmsn.data.format import Sample, ShardFormatError
from lmmsn.llm.prompts import (
    AUDIO_PLACEHOLDER,
    IGNORE_INDEX,
    Example,
    draw_audio_first,
    normalise_messages,
    openaqa_messages,
    render_chat,
    render_pretraining,
    tokenize_rendered,
)
from lmmsn.llm.vocabulary import AudioVocabulary

logger = logging.getLogger(__name__)

Mode = Literal["pretrain", "finetune"]


def pretraining_example(
    sample: Sample,
    tokenizer: Any,
    vocabulary: AudioVocabulary,
    rng: random.Random,
    audio_first_prob: float = 0.5,
    max_length: int | None = None,
) -> Example:
    """A caption/audio pair (random caption, random order) with every token a target."""
    captions = sample.meta.get("captions")
    if sample.codes is None or not captions:
        raise ShardFormatError(f"sample {sample.key}: pretraining needs codes and a non-empty 'captions' list")
    caption = rng.choice(list(captions))
    audio_first = draw_audio_first(rng, audio_first_prob)
    try:
        rendered = render_pretraining(caption, sample.codes, vocabulary, audio_first)
    except ValueError as exc:
        raise ShardFormatError(f"sample {sample.key}: {exc}") from exc
    return tokenize_rendered(rendered, tokenizer, max_length)


def sample_messages(sample: Sample) -> list[dict[str, str]]:
    """The conversation of an instruction sample, with an `<audio>` placeholder for its clip."""
    meta = sample.meta
    if "conversations" in meta:
        messages = [dict(m) for m in meta["conversations"]]
        try:
            normalise_messages(messages)
        except ValueError as exc:
            raise ShardFormatError(f"sample {sample.key}: {exc}") from exc
        if sample.codes is not None and not any(AUDIO_PLACEHOLDER in str(m.get("content", m.get("value", ""))) for m in messages):
            first = messages[0]
            field = "content" if "content" in first else "value"
            first[field] = f"{AUDIO_PLACEHOLDER}\n{first[field]}"
        return messages
    if "instruction" in meta:
        return openaqa_messages(meta)
    raise ShardFormatError(f"sample {sample.key}: no 'conversations' or OpenAQA 'instruction'/'output' in its JSON")


def instruction_example(
    sample: Sample, tokenizer: Any, vocabulary: AudioVocabulary, max_length: int | None = None
) -> Example:
    """A Vicuna v1.1 conversation with only the assistant replies as targets."""
    messages = sample_messages(sample)
    audio = [sample.codes] if sample.codes is not None else []
    try:
        rendered = render_chat(messages, vocabulary, audio, add_generation_prompt=False)
    except ValueError as exc:
        raise ShardFormatError(f"sample {sample.key}: {exc}") from exc
    return tokenize_rendered(rendered, tokenizer, max_length)


def collate(examples: Sequence[Example], pad_id: int, pad_to_multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """Right-pad examples into a batch.

    Returns:
        input_ids [B, L], attention_mask [B, L] (1 on real tokens), labels [B, L]
        (IGNORE_INDEX on padding); L is the longest example rounded up to
        `pad_to_multiple_of`.
    """
    longest = max(len(e) for e in examples)
    length = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    batch = len(examples)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)  # [B, L]
    labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)  # [B, L]
    mask = torch.zeros((batch, length), dtype=torch.long)  # [B, L]
    for i, e in enumerate(examples):
        n = len(e)
        input_ids[i, :n] = e.input_ids
        labels[i, :n] = e.labels
        mask[i, :n] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def bucket_batches(
    examples: Iterator[Example], batch_size: int, bucket_batches: int, rng: random.Random
) -> Iterator[list[Example]]:
    """Group examples of similar length (see the module docstring)."""
    buffer_size = batch_size * max(1, bucket_batches)
    buffer: list[Example] = []

    def flush() -> Iterator[list[Example]]:
        buffer.sort(key=len)
        batches = [buffer[i : i + batch_size] for i in range(0, len(buffer), batch_size)]
        rng.shuffle(batches)
        buffer.clear()
        yield from batches

    for example in examples:
        buffer.append(example)
        if len(buffer) >= buffer_size:
            yield from flush()
    if buffer:
        yield from flush()


@dataclass
class BatchSettings:
    """How samples become token batches."""

    batch_size: int = 8
    "Examples per batch (per device)."
    max_length: int = 512
    "Longest example in tokens (longer ones are truncated)."
    bucket_batches: int = 16
    "Batches per length-sorting buffer (1 disables bucketing)."
    audio_first_prob: float = 0.5
    "Pretraining: probability of the order <audio> <caption>."
    pad_to_multiple_of: int = 8
    "Batch length rounded up to this."

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_length < 8 or self.bucket_batches < 1:
            raise ValueError("batch_size and bucket_batches must be >= 1 and max_length >= 8")
        if not 0.0 <= self.audio_first_prob <= 1.0:
            raise ValueError(f"audio_first_prob must be in [0, 1], got {self.audio_first_prob}")


class TokenBatches(IterableDataset):
    """Padded token batches from an iterable of shard samples; use with `DataLoader(batch_size=None)`.

    Args:
        samples: an IterableDataset of `Sample` (e.g. `shard_samples(...)`).
        tokenizer: the extended tokenizer.
        vocabulary: the `AudioVocabulary`.
        mode: "pretrain" (caption/audio pairs) or "finetune" (conversations).
        settings: `BatchSettings`.
        seed: base seed of caption choice, pair order and batch order.
        rank: mixed into the seed (the loader already splits data by rank).
    """

    def __init__(
        self,
        samples: Any,
        tokenizer: Any,
        vocabulary: AudioVocabulary,
        mode: Mode,
        settings: BatchSettings | None = None,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        super().__init__()
        if mode not in ("pretrain", "finetune"):
            raise ValueError(f"mode must be 'pretrain' or 'finetune', got {mode!r}")
        self.samples = samples
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.mode = mode
        self.settings = settings or BatchSettings()
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else tokenizer.eos_token_id)

    def set_epoch(self, epoch: int) -> None:
        """New random order for this epoch (also passed to the sample reader)."""
        self.epoch = epoch
        if hasattr(self.samples, "set_epoch"):
            self.samples.set_epoch(epoch)

    def _examples(self, rng: random.Random) -> Iterator[Example]:
        s = self.settings
        for sample in self.samples:
            if self.mode == "pretrain":
                example = pretraining_example(sample, self.tokenizer, self.vocabulary, rng, s.audio_first_prob, s.max_length)
            else:
                example = instruction_example(sample, self.tokenizer, self.vocabulary, s.max_length)
            if not bool((example.labels != IGNORE_INDEX).any()):
                # Kept (dropping would unbalance DDP ranks) but it teaches nothing.
                logger.warning("sample %s has no target token within max_length=%d", sample.key, s.max_length)
            yield example

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}-{worker}")
        s = self.settings
        for batch in bucket_batches(self._examples(rng), s.batch_size, s.bucket_batches, rng):
            yield collate(batch, self.pad_id, s.pad_to_multiple_of)


def write_fixture_shards(
    directory: str | Path,
    mode: Mode,
    *,
    num_samples: int = 16,
    num_shards: int = 2,
    codebook_size: int = 32,
    frames: tuple[int, int] = (6, 20),
    seed: int = 0,
) -> list[str]:
    """Write tiny shards of random codes with captions or conversations (tests, tiny configs).

    Returns:
        The shard paths. Codes are random: the fixture checks plumbing, not learning.
    """
    import webdataset as wds

    from lmmsn.data.format import encode_sample

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = ["dog", "barks", "rain", "falls", "a", "car", "engine", "music", "piano", "birds", "chirp", "wind"]
    paths = []
    per_shard = -(-num_samples // num_shards)
    index = 0
    for shard in range(num_shards):
        path = directory / f"{mode}-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for _ in range(min(per_shard, num_samples - index)):
                length = rng.randint(*frames)
                codes = torch.tensor([rng.randrange(codebook_size) for _ in range(length)])
                caption = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
                meta: dict[str, Any] = {
                    "captions": [caption, caption.upper()], "dataset": "fixture", "source_path": f"fixture/{index}.wav",
                    "offset_s": 0.0, "duration_s": length / 21.5, "sample_rate": 44100,
                }
                if mode == "finetune":
                    meta["conversations"] = [
                        {"from": "human", "value": f"{AUDIO_PLACEHOLDER}\nWhat can be heard?"},
                        {"from": "gpt", "value": caption},
                    ]
                sink.write(encode_sample(f"s{index:06d}", meta, codes=codes))
                index += 1
        paths.append(str(path))
    return paths


__all__ = [
    "BatchSettings",
    "TokenBatches",
    "bucket_batches",
    "collate",
    "instruction_example",
    "pretraining_example",
    "sample_messages",
    "write_fixture_shards",
]
