"""lmmsn.llm.data: shards -> examples -> length-bucketed padded batches."""

from __future__ import annotations

import random

import pytest
import torch

from lmmsn.data.format import Sample
from lmmsn.data.loader import shard_samples
from lmmsn.llm.data import (
    BatchConfig,
    TokenBatches,
    bucket_batches,
    collate,
    pretraining_example,
    write_fixture_shards,
)
from lmmsn.llm.prompts import IGNORE_INDEX, Example
from lmmsn.llm.tiny import build_tiny_text_tokenizer
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
    tokenizer = build_tiny_text_tokenizer()
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
    tokenizer = build_tiny_text_tokenizer()
    voc = AudioVocabulary.extend(tokenizer, 32)
    for mode in ("pretrain", "finetune"):
        write_fixture_shards(tmp_path / mode, mode, num_samples=10, num_shards=2)
        samples = shard_samples(tmp_path / mode, even="none")
        settings = BatchConfig(batch_size=4, max_length=512, generation_fraction=0.0)
        batches = list(TokenBatches(samples, tokenizer, voc, mode, settings))
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


def test_examples_end_with_the_bases_own_eos_token():
    """A base whose eos is not "</s>" (Gemma: "<eos>") must learn to write its eos id at the end of a
    pair and of a reply; rendering Vicuna's literal "</s>" made a Gemma model write those characters
    as text and never stop (its captions were "</s>" x 30)."""
    from lmmsn.llm.data import instruction_example

    tokenizer = build_tiny_text_tokenizer()
    tokenizer.add_special_tokens({"eos_token": "<eos>"})
    voc = AudioVocabulary.extend(tokenizer, 32)
    slash_s = tokenizer.convert_tokens_to_ids("</s>")
    sample = Sample("k", {"captions": ["a dog barks"]}, codes=torch.tensor([3, 4, 5]))
    for ex in [pretraining_example(sample, tokenizer, voc, random.Random(s)) for s in range(4)] + [
        instruction_example(sample, tokenizer, voc, rng=random.Random(0), generation_fraction=0.0),
        instruction_example(sample, tokenizer, voc, rng=random.Random(0), generation_fraction=1.0),
    ]:
        targets = ex.labels[ex.labels != IGNORE_INDEX]
        assert int(targets[-1]) == tokenizer.eos_token_id != slash_s
        assert slash_s not in ex.input_ids.tolist()
    vicuna = build_tiny_text_tokenizer()  # "</s>" bases render exactly as before
    voc = AudioVocabulary.extend(vicuna, 32)
    ex = pretraining_example(sample, vicuna, voc, random.Random(0))
    assert int(ex.labels[-1]) == vicuna.eos_token_id == vicuna.convert_tokens_to_ids("</s>")


def test_caption_dropout_trains_the_unconditional_prompt_guidance_uses():
    from lmmsn.llm.data import BatchConfig, instruction_example
    from lmmsn.llm.prompts import generation_prompt

    tokenizer = build_tiny_text_tokenizer()
    voc = AudioVocabulary.extend(tokenizer, 32)
    sample = Sample("k", {"captions": ["a dog barks"]}, codes=torch.tensor([3, 4, 5]))
    uncond = tokenizer(generation_prompt(""))["input_ids"]  # what Pipeline.generate(guidance_scale=s) prompts
    cond = tokenizer(generation_prompt("a dog barks"))["input_ids"]
    dropped = instruction_example(sample, tokenizer, voc, rng=random.Random(0), generation_fraction=1.0, caption_dropout=1.0)
    kept = instruction_example(sample, tokenizer, voc, rng=random.Random(0), generation_fraction=1.0, caption_dropout=0.0)
    assert dropped.input_ids[: len(uncond)].tolist() == uncond and kept.input_ids[: len(cond)].tolist() == cond
    assert int((dropped.labels != IGNORE_INDEX).sum()) == int((kept.labels != IGNORE_INDEX).sum())  # the audio reply
    share = sum(instruction_example(sample, tokenizer, voc, rng=random.Random(s), generation_fraction=1.0,
                                    caption_dropout=0.3).input_ids[: len(uncond)].tolist() == uncond for s in range(200))
    assert 40 <= share <= 80
    with pytest.raises(ValueError, match="caption_dropout"):
        BatchConfig(caption_dropout=1.5)
