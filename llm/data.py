"""Shard samples -> token batches for the audio LM (pretraining pairs and conversations).

Reads `lmmsn.data.format` samples (through `lmmsn.data.loader.shard_samples`)
that hold `codes` and, in their JSON, `captions` (pretraining; fine-tuning
generation / captioning conversations) and/or an instruction record for
fine-tuning (below). Each sample becomes exactly one `Example`
(`lmmsn.llm.prompts`); examples are grouped by length and padded per batch.

Instruction samples. `conversations` holds either one dialogue (a list of
user/assistant or human/gpt messages, LLaVA / ShareGPT style) or a list of
alternative dialogues about the same clip (what `data_prep.adapters.openaqa`
writes: one two-turn dialogue per OpenAQA QA pair, each with its own `<audio>`
placeholder); an OpenAQA record (`instruction`, `input`, `output`) also works.
A clip with several dialogues gives ONE of them per epoch (`pick_dialogue`):
a seeded permutation of its dialogues, a new one every len(dialogues) epochs,
so every dialogue is used once per that many epochs. Why one per clip rather
than one example per QA pair: one sample stays one example, so the number of
batches per rank follows from the per-shard sample counts in `index.json`
that the loader balances DDP ranks with (a clip with 9 pairs and one with 2
would otherwise make ranks uneven); each dialogue is trained on as LTU trains
it (one question, the clip first, no other answers of the same clip in
context, which could give the answer away); the clip's VAE latents and codes
are stored once. An epoch is then one pass over clips, not QA pairs: size
`trainer.max_steps` from the number of pairs.

Fine-tuning mix. A fine-tuning sample with captions becomes, with probability
`BatchConfig.generation_fraction`, a generation conversation (the caption
in the user turn, the clip as the assistant's reply: what `Pipeline.generate`
prompts; with probability `BatchConfig.caption_dropout` its caption is emptied,
the unconditional prompt of classifier-free guidance); otherwise its dialogue,
or a captioning conversation when it has no dialogue (caption-only corpora such
as AudioCaps join the fine-tuning mix).

Bad samples (no codes, no usable captions or dialogue, malformed messages,
codes outside the vocabulary, ...) are skipped with a warning naming the
shard and key, within `BadSampleBudget` (as Megatron-Energon's
`failure_tolerance`): more than `max_consecutive` bad samples in a row, or a
bad fraction above `max_fraction` once `min_samples` were read, stops the run
with `TooManyBadSamples`. DDP ranks stay in step: a skipped sample is replaced
by the previous good example of the same stream (the first good one when the
stream starts with bad samples), so every stream yields exactly as many
examples as the loader gave it samples, and the number of batches per rank
never depends on how many samples were skipped (a repeat of a rare bad
sample's neighbour costs less than a hung collective).

Length bucketing: a buffer of `batch_size * bucket_batches` examples is sorted
by length, cut into batches of `batch_size`, and the batches are yielded in a
seeded random order, so a batch holds similar lengths and padding stays small.
The number of batches only depends on the number of examples, so the loader's
per-rank balancing keeps DDP ranks in step. With `BatchConfig.packing` the same
buffers are packed whole into rows and dealt into the same number of batches
(`lmmsn.llm.packing`).

Randomness (caption choice, pair order, generation draw, batch order) comes
from a `random.Random` seeded with (seed, epoch, rank, worker); the dialogue
of an epoch from (seed, key, cycle): a run is reproducible.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import IterableDataset, get_worker_info

from lmmsn.data.format import Sample, ShardFormatError
from lmmsn.llm.packing import packed_batches
from lmmsn.llm.prompts import (
    AUDIO_PLACEHOLDER,
    IGNORE_INDEX,
    Example,
    caption_messages,
    draw_audio_first,
    end_of_turn,
    generation_messages,
    normalize_messages,
    openaqa_messages,
    render_chat,
    render_pretraining,
    tokenize_rendered,
)
from lmmsn.llm.vocabulary import AudioVocabulary

logger = logging.getLogger(__name__)

Mode = Literal["pretrain", "finetune"]


class TooManyBadSamples(RuntimeError):
    """More bad samples than `BadSampleBudget` allows."""


def _captions(sample: Sample) -> list[str]:
    captions = sample.meta.get("captions") or []
    if isinstance(captions, str) or not isinstance(captions, Sequence):
        raise ShardFormatError(f"sample {sample.key}: 'captions' must be a list of strings, got {captions!r}")
    return [c for c in captions if isinstance(c, str) and c.strip()]


def pretraining_example(
    sample: Sample,
    text_tokenizer: Any,
    vocabulary: AudioVocabulary,
    rng: random.Random,
    audio_first_prob: float = 0.5,
    max_length: int | None = None,
) -> Example:
    """A caption/audio pair (random caption, random order) with every token a target.

    Raises:
        ShardFormatError: no codes, no non-empty caption, or codes outside the vocabulary.
    """
    captions = _captions(sample)
    if sample.codes is None or not captions:
        raise ShardFormatError(f"sample {sample.key}: pretraining needs codes and a non-empty 'captions' list")
    caption = rng.choice(captions)
    audio_first = draw_audio_first(rng, audio_first_prob)
    try:
        rendered = render_pretraining(caption, sample.codes, vocabulary, audio_first, eos=end_of_turn(text_tokenizer))
    except ValueError as exc:
        raise ShardFormatError(f"sample {sample.key}: {exc}") from exc
    return tokenize_rendered(rendered, text_tokenizer, max_length)


def _with_audio(messages: list[dict[str, Any]], has_audio: bool) -> list[dict[str, Any]]:
    """The dialogue with an `<audio>` placeholder first in its first message when it has none."""
    if has_audio and not any(AUDIO_PLACEHOLDER in str(m.get("content", m.get("value", ""))) for m in messages):
        first = messages[0]
        field_name = "content" if "content" in first else "value"
        first[field_name] = f"{AUDIO_PLACEHOLDER}\n{first[field_name]}"
    return messages


def sample_dialogues(sample: Sample) -> list[list[dict[str, Any]]]:
    """The alternative dialogues of an instruction sample ([] when it has none).

    `conversations` may be one dialogue (a list of messages) or a list of
    dialogues (module docstring); each gets an `<audio>` placeholder for the
    clip when it has none.

    Raises:
        ShardFormatError: `conversations` is neither shape, or a message is malformed.
    """
    meta = sample.meta
    if "conversations" in meta:
        value = meta["conversations"]
        if not isinstance(value, list) or not value:
            raise ShardFormatError(f"sample {sample.key}: 'conversations' must be a non-empty list")
        if all(isinstance(d, list) for d in value):
            dialogues = value
        elif all(isinstance(m, Mapping) for m in value):
            dialogues = [value]
        else:
            raise ShardFormatError(f"sample {sample.key}: 'conversations' must be a list of messages or a list "
                                   "of dialogues (lists of messages), not a mix")
        out = []
        for n, dialogue in enumerate(dialogues):
            try:
                if not dialogue:
                    raise ValueError("empty dialogue")
                normalize_messages(dialogue)
            except ValueError as exc:
                raise ShardFormatError(f"sample {sample.key}: dialogue {n}: {exc}") from exc
            out.append(_with_audio([dict(m) for m in dialogue], sample.codes is not None))
        return out
    if "instruction" in meta:
        try:
            return [openaqa_messages(meta)]
        except ValueError as exc:
            raise ShardFormatError(f"sample {sample.key}: {exc}") from exc
    return []


def pick_dialogue(num_dialogues: int, key: str, epoch: int, seed: int = 0) -> int:
    """Which of a clip's dialogues epoch `epoch` uses: each once per `num_dialogues` epochs, in a seeded order."""
    cycle, position = divmod(epoch, num_dialogues)
    order = list(range(num_dialogues))
    random.Random(f"{seed}-{key}-{cycle}").shuffle(order)
    return order[position]


def instruction_example(
    sample: Sample,
    text_tokenizer: Any,
    vocabulary: AudioVocabulary,
    max_length: int | None = None,
    *,
    rng: random.Random | None = None,
    epoch: int = 0,
    seed: int = 0,
    generation_fraction: float = 0.0,
    caption_dropout: float = 0.0,
) -> Example:
    """A Vicuna v1.1 conversation of the fine-tuning mix, only the assistant replies as targets.

    With captions and probability `generation_fraction` (drawn from `rng`): a generation
    conversation; else the epoch's dialogue (`pick_dialogue`); else, for a caption-only
    sample, a captioning conversation (module docstring).

    Raises:
        ShardFormatError: no usable dialogue or caption, or the conversation does not render.
    """
    rng = rng or random.Random(f"{seed}-{epoch}-{sample.key}")
    dialogues = sample_dialogues(sample)
    captions = _captions(sample) if sample.codes is not None else []
    if captions and generation_fraction > 0 and rng.random() < generation_fraction:
        caption = rng.choice(captions)
        if caption_dropout > 0 and rng.random() < caption_dropout:
            caption = ""  # the unconditional prompt of classifier-free guidance (Pipeline.generate's)
        messages = generation_messages(caption)
    elif dialogues:
        messages = dialogues[pick_dialogue(len(dialogues), sample.key, epoch, seed)]
    elif captions:
        messages = caption_messages(rng.choice(captions))
    else:
        raise ShardFormatError(f"sample {sample.key}: fine-tuning needs 'conversations', an OpenAQA record or "
                               "captions with codes; it has none")
    audio = [sample.codes] if sample.codes is not None else []
    try:
        rendered = render_chat(messages, vocabulary, audio, add_generation_prompt=False, eos=end_of_turn(text_tokenizer))
    except ValueError as exc:
        raise ShardFormatError(f"sample {sample.key}: {exc}") from exc
    return tokenize_rendered(rendered, text_tokenizer, max_length)


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


def length_buffers(examples: Iterator[Example], size: int) -> Iterator[list[Example]]:
    """The stream cut into buffers of `size` examples (the last may be shorter): bucketing's unit."""
    buffer: list[Example] = []
    for example in examples:
        buffer.append(example)
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def bucket_batches(
    examples: Iterator[Example], batch_size: int, bucket_batches: int, rng: random.Random
) -> Iterator[list[Example]]:
    """Group examples of similar length (see the module docstring)."""
    for buffer in length_buffers(examples, batch_size * max(1, bucket_batches)):
        buffer.sort(key=len)
        batches = [buffer[i : i + batch_size] for i in range(0, len(buffer), batch_size)]
        rng.shuffle(batches)
        yield from batches


@dataclass
class BatchConfig:
    """How samples become token batches."""

    batch_size: int = 8
    "Examples per batch (per device)."
    max_length: int = 512
    "Longest example in tokens (longer ones are truncated)."
    bucket_batches: int = 16
    "Batches per length-sorting buffer (1 disables bucketing)."
    audio_first_prob: float = 0.5
    "Pretraining: probability of the order <audio> <caption>."
    generation_fraction: float = 0.25
    "Fine-tuning: probability that a sample with captions becomes a generation conversation (caption -> audio); the paper gives no ratio, 0.25 is our choice."
    caption_dropout: float = 0.0
    ("Fine-tuning: probability that a generation conversation's caption is emptied, the prompt "
     "`Pipeline.generate(guidance_scale=s)` uses as unconditional (MusicGen-style classifier-free guidance needs "
     "the model to have seen it); 0, the paper's recipe, leaves guidance's unconditional prompt untrained.")
    pad_to_multiple_of: int = 8
    "Batch length rounded up to this."
    packing: bool = False
    ("Pack each length-sorting buffer's examples into rows of max_length tokens and deal the rows into as many "
     "batches as bucketing makes (`lmmsn.llm.packing.packed_batches`): positions restart per example and "
     "attention never crosses examples; batch counts, DDP balance and mid-epoch resume are unchanged, and a "
     "batch holds batch_size examples on average, not exactly.")

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_length < 8 or self.bucket_batches < 1:
            raise ValueError("batch_size and bucket_batches must be >= 1 and max_length >= 8")
        for name in ("audio_first_prob", "generation_fraction", "caption_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class BadSampleBudget:
    """How many bad samples a training stream tolerates (module docstring); counted per worker and epoch."""

    max_consecutive: int = 100
    "Stop after more than this many bad samples in a row (Megatron-Energon's failure_tolerance default; 0: stop at the first)."
    max_fraction: float = 0.1
    "Stop when more than this fraction of the samples read so far were bad ..."
    min_samples: int = 1000
    "... once at least this many samples were read (early counts are noise)."

    def __post_init__(self) -> None:
        if self.max_consecutive < 0 or self.min_samples < 1 or not 0.0 <= self.max_fraction <= 1.0:
            raise ValueError("max_consecutive must be >= 0, min_samples >= 1 and max_fraction in [0, 1]")


@dataclass
class _BadCounter:
    budget: BadSampleBudget
    where: str
    read: int = 0
    bad: int = 0
    consecutive: int = 0
    last: list[str] = field(default_factory=list)

    def good(self) -> None:
        self.read += 1
        self.consecutive = 0

    def failed(self, sample: Sample, exc: Exception) -> None:
        self.read += 1
        self.bad += 1
        self.consecutive += 1
        message = f"{sample.shard or '?'} key {sample.key}: {exc}"
        self.last = [*self.last[-2:], message]
        logger.warning("skipping bad sample in %s (%d bad of %d read in %s)", message, self.bad, self.read, self.where)
        b = self.budget
        if self.consecutive > b.max_consecutive:
            raise TooManyBadSamples(f"{self.consecutive} bad samples in a row in {self.where} (budget "
                                    f"max_consecutive={b.max_consecutive}); last: {'; '.join(self.last)}")
        if self.read >= b.min_samples and self.bad > b.max_fraction * self.read:
            raise TooManyBadSamples(f"{self.bad} of {self.read} samples bad in {self.where} (budget max_fraction="
                                    f"{b.max_fraction} after {b.min_samples}); last: {'; '.join(self.last)}")


class TokenBatches(IterableDataset):
    """Padded token batches from an iterable of shard samples; use with `DataLoader(batch_size=None)`.

    Args:
        samples: an IterableDataset of `Sample` (e.g. `shard_samples(...)`).
        text_tokenizer: the extended text tokenizer.
        vocabulary: the `AudioVocabulary`.
        mode: "pretrain" (caption/audio pairs) or "finetune" (conversations).
        settings: `BatchConfig`.
        seed: base seed of caption choice, pair order and batch order.
        rank: mixed into the seed (the loader already splits data by rank).
        budget: bad samples tolerated (`BadSampleBudget`).
    """

    def __init__(
        self,
        samples: Any,
        text_tokenizer: Any,
        vocabulary: AudioVocabulary,
        mode: Mode,
        settings: BatchConfig | None = None,
        seed: int = 0,
        rank: int = 0,
        budget: BadSampleBudget | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("pretrain", "finetune"):
            raise ValueError(f"mode must be 'pretrain' or 'finetune', got {mode!r}")
        self.samples = samples
        self.text_tokenizer = text_tokenizer
        self.vocabulary = vocabulary
        self.mode = mode
        self.settings = settings or BatchConfig()
        self.budget = budget or BadSampleBudget()
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        self._resume: tuple[int, int] | None = None
        pad = text_tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else text_tokenizer.eos_token_id)

    def set_epoch(self, epoch: int) -> None:
        """New random order for this epoch (also passed to the sample reader)."""
        self.epoch = epoch
        if hasattr(self.samples, "set_epoch"):
            self.samples.set_epoch(epoch)

    def example(self, sample: Sample, rng: random.Random) -> Example:
        """The example of one sample in this mode (raises ShardFormatError for a bad sample)."""
        s = self.settings
        if self.mode == "pretrain":
            return pretraining_example(sample, self.text_tokenizer, self.vocabulary, rng, s.audio_first_prob, s.max_length)
        return instruction_example(sample, self.text_tokenizer, self.vocabulary, s.max_length, rng=rng, epoch=self.epoch,
                                   seed=self.seed, generation_fraction=s.generation_fraction,
                                   caption_dropout=s.caption_dropout)

    def _examples(self, rng: random.Random, where: str) -> Iterator[Example]:
        """One example per sample: bad ones replaced by the previous good example (module docstring)."""
        counter = _BadCounter(self.budget, where)
        last: Example | None = None
        owed = 0  # bad samples before the first good one, paid back with it
        for sample in self.samples:
            try:
                example = self.example(sample, rng)
            except (ShardFormatError, ValueError) as exc:
                counter.failed(sample, exc)
                if last is None:
                    owed += 1
                else:
                    yield last
                continue
            counter.good()
            if not bool((example.labels != IGNORE_INDEX).any()):
                # Kept (dropping would unbalance DDP ranks) but it teaches nothing.
                logger.warning("sample %s has no target token within max_length=%d", sample.key, self.settings.max_length)
            last = example
            for _ in range(owed + 1):
                yield example
            owed = 0
        if owed:
            raise TooManyBadSamples(f"{where}: all {owed} samples were bad; nothing to train on "
                                    f"(last: {'; '.join(counter.last)})")

    def resume_at(self, epoch: int, batches: int) -> None:
        """Make the next pass over `epoch` start after its first `batches` batches (a mid-epoch resume).

        The epoch's stream is deterministic (seeded by seed, epoch, rank, worker), so
        regenerating and dropping the batches already trained on continues it exactly.
        With DataLoader workers each drops its share of the round-robin order
        (`worker_skip`): every remaining batch comes exactly once, but a new DataLoader
        starts its round robin at worker 0, so unless `batches` is a multiple of the
        active workers the same batches come interleaved in another order.
        """
        self._resume = (epoch, batches)

    def _worker_batches(self, num_workers: int) -> list[int] | None:
        """Batches each DataLoader worker yields this epoch, when the sample reader balances them."""
        plan = getattr(self.samples, "plan", None)
        if plan is None:
            return None
        _, _, quota = plan(num_workers)
        return None if quota is None else [-(-q // self.settings.batch_size) for q in quota]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}-{worker}")
        s = self.settings
        where = f"rank {self.rank} worker {worker} epoch {self.epoch}"
        skip = 0
        resume = self._resume
        if resume is not None and resume[0] == self.epoch and resume[1] > 0:
            counts = self._worker_batches(num_workers) if num_workers > 1 else None
            skip = worker_skip(resume[1], worker, num_workers, counts)
        examples = self._examples(rng, where)
        if s.packing:
            batches = packed_batches(length_buffers(examples, s.batch_size * s.bucket_batches), s.batch_size, rng,
                                     self.pad_id, s.max_length, s.pad_to_multiple_of)
        else:
            batches = (collate(b, self.pad_id, s.pad_to_multiple_of)
                       for b in bucket_batches(examples, s.batch_size, s.bucket_batches, rng))
        for n, batch in enumerate(batches):
            if n >= skip:
                yield batch


def worker_skip(batches: int, worker: int, num_workers: int, counts: Sequence[int] | None = None) -> int:
    """How many of the first `batches` batches of a DataLoader over an IterableDataset came from `worker`.

    The DataLoader takes batches from its workers in turn, leaving out a worker once it
    is exhausted; `counts` are the batches each worker yields (None: all unbounded).
    """
    if num_workers <= 1:
        return batches
    if counts is None:
        return batches // num_workers + (1 if worker < batches % num_workers else 0)
    left, taken, mine = list(counts), 0, 0
    while taken < batches and any(left):
        for w in range(num_workers):
            if left[w] > 0 and taken < batches:
                left[w] -= 1
                taken += 1
                mine += w == worker
    return mine


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
                if mode == "finetune":  # one dialogue, or OpenAQA's shape: one dialogue per QA pair
                    dialogues = [[{"from": "human", "value": f"{AUDIO_PLACEHOLDER}\nWhat can be heard?"},
                                  {"from": "gpt", "value": caption}],
                                 [{"from": "human", "value": f"{AUDIO_PLACEHOLDER}\nIs it loud?"},
                                  {"from": "gpt", "value": rng.choice(["Yes.", "No."])}]]
                    meta["conversations"] = dialogues[0] if index % 2 else dialogues
                sink.write(encode_sample(f"s{index:06d}", meta, codes=codes))
                index += 1
        paths.append(str(path))
    return paths


__all__ = [
    "BadSampleBudget",
    "BatchConfig",
    "TokenBatches",
    "TooManyBadSamples",
    "bucket_batches",
    "collate",
    "instruction_example",
    "pick_dialogue",
    "pretraining_example",
    "sample_dialogues",
    "worker_skip",
    "write_fixture_shards",
]
