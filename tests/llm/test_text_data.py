"""lmmsn.data.text: shards -> examples -> length-bucketed padded batches."""

from __future__ import annotations

import random

import torch

from lmmsn.data.format import Sample
from lmmsn.data.loader import shard_samples
from lmmsn.data.text import (
    BatchSettings,
    TokenBatches,
    bucket_batches,
    collate,
    pretraining_example,
    write_fixture_shards,
)
from lmmsn.llm.prompts import IGNORE_INDEX, Example
from lmmsn.llm.tiny import build_tiny_tokenizer
from lmmsn.llm.vocabulary import AudioVocabulary


def _example(n: int) -> Example:
    ids = torch.arange(n)
    return Example(ids, ids.clone())


def test_bucketing_reduces_padding_and_keeps_every_example():
    rng = random.Random(0)
    lengths = [rng.randint(5, 200) for _ in range(64)]
    examples = [_example(n) for n in lengths]
    bucketed = list(bucket_batches(iter(examples), 8, 8, random.Random(1)))
    unbucketed = list(bucket_batches(iter(examples), 8, 1, random.Random(1)))
    assert sorted(len(e) for b in bucketed for e in b) == sorted(lengths)

    def padding(batches):
        return sum(max(len(e) for e in b) * len(b) - sum(len(e) for e in b) for b in batches)

    assert padding(bucketed) < 0.5 * padding(unbucketed)
    batch = collate(bucketed[0], pad_id=99)
    assert batch["input_ids"].shape[1] % 8 == 0
    assert ((batch["attention_mask"] == 0) == (batch["labels"] == IGNORE_INDEX)).all()


def test_pretraining_examples_seeded_both_orders(tmp_path):
    tokenizer = build_tiny_tokenizer()
    voc = AudioVocabulary.extend(tokenizer, 32)
    sample = Sample("k", {"captions": ["a dog barks"]}, codes=torch.tensor([3, 4, 5]))
    firsts = []
    for seed in (0, 0, 1):
        rng = random.Random(seed)
        firsts.append([int(pretraining_example(sample, tokenizer, voc, rng).input_ids[1]) == voc.soa_id
                       for _ in range(40)])
    assert firsts[0] == firsts[1] and firsts[0] != firsts[2]
    assert any(firsts[0]) and not all(firsts[0])


def test_token_batches_from_shards(tmp_path):
    tokenizer = build_tiny_tokenizer()
    voc = AudioVocabulary.extend(tokenizer, 32)
    for mode in ("pretrain", "finetune"):
        write_fixture_shards(tmp_path / mode, mode, num_samples=10, num_shards=2)
        samples = shard_samples(tmp_path / mode, even="none")
        batches = list(TokenBatches(samples, tokenizer, voc, mode, BatchSettings(batch_size=4, max_length=512)))
        assert sum(b["input_ids"].shape[0] for b in batches) == 10
        for b in batches:
            n_audio = int(voc.is_audio(b["input_ids"]).sum())
            assert n_audio > 0
            targets = b["labels"][b["labels"] != IGNORE_INDEX]
            if mode == "finetune":  # the clip is in the prompt: no audio target, replies end with </s>
                assert not voc.is_audio(targets).any()
                assert int((targets == tokenizer.eos_token_id).sum()) == b["input_ids"].shape[0]
            else:
                assert int(voc.is_audio(targets).sum()) == n_audio
