"""lmmsn.llm.data on the paper's real data shapes: OpenAQA's on-disk format, the fine-tuning mix,
bad samples within a budget, and DDP ranks that stay in step when one of them skips samples."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch
import webdataset as wds

from data_prep.adapters import load_records
from lmmsn.data.format import Sample, encode_sample
from lmmsn.data.loader import shard_samples
from lmmsn.llm.data import (
    BadSampleBudget,
    BatchConfig,
    TokenBatches,
    TooManyBadSamples,
    instruction_example,
    pick_dialogue,
)
from lmmsn.llm.prompts import IGNORE_INDEX
from lmmsn.llm.tiny import build_tiny_text_tokenizer
from lmmsn.llm.vocabulary import AudioVocabulary

# LTU's openaqa_5.6M.json: a list of flat QA dicts, audio_id an absolute path on the authors' machine.
OPENAQA = [
    {"instruction": "What sound events can be heard in the recording?", "input": "",
     "audio_id": "/data/sls/audioset/dave_version/audio/LZq4Neh-oWU.flac", "dataset": "as_strong_train",
     "task": "open-ended question", "output": "A dog barks while a car engine idles."},
    {"instruction": "Write an audio caption describing the sound.", "input": "",
     "audio_id": "/data/sls/audioset/dave_version/audio/LZq4Neh-oWU.flac", "dataset": "as_strong_train",
     "task": "caption", "output": "A dog barks near an idling car."},
    {"instruction": "Classify the sound events in the audio clip.", "input": "",
     "audio_id": "/data/sls/audioset/dave_version/audio/LZq4Neh-oWU.flac", "dataset": "as_strong_train",
     "task": "cla_label", "output": "Dog; Bark; Idling"},
    {"instruction": "Is the sound indoors or outdoors?", "input": "",
     "audio_id": "/data/sls/vggsound/video/zz9F1xQe0mM_000030.flac", "dataset": "vggsound_train",
     "task": "open-ended question", "output": "Outdoors, probably a street."},
]


@pytest.fixture(scope="module")
def tok():
    tokenizer = build_tiny_text_tokenizer()
    return tokenizer, AudioVocabulary.extend(tokenizer, 32)


def _openaqa_samples(root: Path) -> list[Sample]:
    """OpenAQA as make_shards stores it: the adapter's record meta plus captions, one sample per clip."""
    (root / "audio").mkdir(parents=True)
    (root / "openaqa_5.6M.json").write_text(json.dumps(OPENAQA, indent=1))
    for name in ("LZq4Neh-oWU.flac", "zz9F1xQe0mM_000030.flac"):
        (root / "audio" / name).write_bytes(b"")
    records = load_records("openaqa", root)
    return [Sample(r.key, {**r.meta, "captions": r.captions, "dataset": r.dataset}, codes=torch.tensor([3, 1, 4]),
                   shard="fixture.tar") for r in records]


def _reply(tokenizer, example) -> str:
    return tokenizer.decode(example.labels[example.labels != IGNORE_INDEX].tolist(), skip_special_tokens=True).strip()


def test_openaqa_clip_trains_one_dialogue_per_epoch_and_each_once_per_cycle(tmp_path, tok):
    tokenizer, voc = tok
    dog, street = _openaqa_samples(tmp_path)
    assert dog.meta["captions"] == ["A dog barks near an idling car.", "Dog; Bark; Idling"] and street.meta["captions"] == []
    outputs = {e["output"] for e in OPENAQA[:3]}
    for cycle in range(2):
        seen = [_reply(tokenizer, instruction_example(dog, tokenizer, voc, epoch=epoch, generation_fraction=0.0))
                for epoch in range(3 * cycle, 3 * cycle + 3)]
        assert sorted(seen) == sorted(outputs)  # every QA pair once per 3 epochs
    example = instruction_example(street, tokenizer, voc, epoch=5, generation_fraction=1.0)  # caption-less: its QA
    assert _reply(tokenizer, example) == "Outdoors, probably a street."
    assert int((example.input_ids == voc.soa_id).sum()) == 1  # one clip, although every dialogue has an <audio>
    assert sorted(pick_dialogue(4, "k", e, seed=1) for e in range(4)) == [0, 1, 2, 3]


def test_fine_tuning_mix_holds_generation_conversations(tok):
    tokenizer, voc = tok
    captioned = Sample("c", {"captions": ["rain on a tin roof"], "conversations": [
        {"from": "human", "value": "<audio>\nIs it loud?"}, {"from": "gpt", "value": "Yes."}]},
        codes=torch.tensor([5, 6, 7]))
    caption_only = Sample("a", {"captions": ["a bell rings"]}, codes=torch.tensor([1, 2]))  # AudioCaps-style

    def kinds(sample, fraction, n=200):
        rng = random.Random(0)
        out = []
        for _ in range(n):
            e = instruction_example(sample, tokenizer, voc, rng=rng, generation_fraction=fraction)
            targets = e.labels[e.labels != IGNORE_INDEX]
            out.append("generation" if bool((targets == voc.soa_id).any()) else _reply(tokenizer, e))
        return out

    assert set(kinds(captioned, 0.0)) == {"Yes."}
    assert set(kinds(captioned, 1.0)) == {"generation"}
    mixed = kinds(captioned, 0.25)
    assert 30 < mixed.count("generation") < 70 and set(mixed) == {"generation", "Yes."}
    assert set(kinds(caption_only, 0.0, 5)) == {"a bell rings"}  # captioning conversation
    gen = instruction_example(caption_only, tokenizer, voc, generation_fraction=1.0)
    text = tokenizer.decode(gen.input_ids)
    assert "USER: Generate audio of: a bell rings ASSISTANT: <soa><a_1><a_2><eoa></s>" in text
    targets = gen.labels[gen.labels != IGNORE_INDEX]
    assert int(voc.is_audio(targets).sum()) == 2 and targets[-1] == tokenizer.eos_token_id


def _good(i: int) -> Sample:
    return Sample(f"g{i}", {"captions": [f"clip {i}"]}, codes=torch.tensor([i % 32, 1]), shard="ok.tar")


def _bad(i: int) -> Sample:
    return Sample(f"b{i}", {"captions": []}, codes=torch.tensor([1, 2]), shard="odd.tar")


def test_bad_samples_are_skipped_with_a_warning_naming_shard_and_key(tok, caplog):
    tokenizer, voc = tok
    samples = [_bad(0), _good(1), _bad(2), Sample("nocodes", {"captions": ["x"]}, shard="odd.tar"), _good(4)]
    settings = BatchConfig(batch_size=1, bucket_batches=1)
    with caplog.at_level(logging.WARNING, logger="lmmsn.llm.data"):
        batches = list(TokenBatches(samples, tokenizer, voc, "pretrain", settings))
    assert len(batches) == len(samples)  # one example per sample: bad ones are replaced, never dropped
    warned = [r.getMessage() for r in caplog.records if "bad sample" in r.getMessage()]
    assert len(warned) == 3 and "odd.tar key b0" in warned[0] and "odd.tar key nocodes" in warned[2]


def test_bad_sample_budget(tok):
    tokenizer, voc = tok
    settings = BatchConfig(batch_size=2, bucket_batches=1)
    run_of_bad = [_good(0), *[_bad(i) for i in range(4)], _good(5)]
    assert len(list(TokenBatches(run_of_bad, tokenizer, voc, "pretrain", settings,
                                 budget=BadSampleBudget(max_consecutive=4)))) == 3
    with pytest.raises(TooManyBadSamples, match="5 bad samples in a row.*odd.tar key b"):
        list(TokenBatches([_good(0), *[_bad(i) for i in range(5)]], tokenizer, voc, "pretrain", settings,
                          budget=BadSampleBudget(max_consecutive=4)))
    spread = [s for i in range(20) for s in ((_good(i), _bad(i)) if i % 3 == 0 else (_good(i),))]  # 7 bad of 27
    with pytest.raises(TooManyBadSamples, match="of .* samples bad"):
        list(TokenBatches(spread, tokenizer, voc, "pretrain", settings,
                          budget=BadSampleBudget(max_fraction=0.2, min_samples=10)))
    assert len(list(TokenBatches(spread, tokenizer, voc, "pretrain", BatchConfig(batch_size=1, bucket_batches=1),
                                 budget=BadSampleBudget(max_fraction=0.3, min_samples=10)))) == 27
    with pytest.raises(TooManyBadSamples, match="all 2 samples were bad"):  # nothing to pad a rank with
        list(TokenBatches([_bad(0), _bad(1)], tokenizer, voc, "pretrain", settings))


def _shard(path: Path, samples: list[tuple[str, dict]]) -> str:
    with wds.TarWriter(str(path)) as sink:
        for key, meta in samples:
            full = {"dataset": "fixture", "source_path": f"{key}.wav", "offset_s": 0.0, "duration_s": 1.0,
                    "sample_rate": 16000, **meta}
            sink.write(encode_sample(key, full, codes=torch.tensor([1, 2, 3])))
    return str(path)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_stay_in_step_when_one_rank_skips_samples(tmp_path, tok, num_workers):
    """Rank 0 reads 4 caption-less samples, rank 1 none (and one sample fewer): same number of batches."""
    tokenizer, voc = tok
    clean = [(f"c{i:02d}", {"captions": [f"clip {i}"]}) for i in range(9)]
    mixed = [(f"m{i:02d}", {"captions": [] if i % 2 else [f"clip {i}"]}) for i in range(8)]
    urls = [_shard(tmp_path / "a.tar", mixed), _shard(tmp_path / "b.tar", clean)]
    counts = []
    for rank in (0, 1):
        samples = shard_samples(urls, rank=rank, world_size=2, even="pad")  # sizes from the tar headers
        batches = TokenBatches(samples, tokenizer, voc, "pretrain", BatchConfig(batch_size=2, bucket_batches=2),
                               rank=rank)
        loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=num_workers)
        counts.append([int(b["input_ids"].shape[0]) for b in loader])
    assert len(counts[0]) == len(counts[1]) and sum(counts[0]) == sum(counts[1]) >= 9, counts


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_at_continues_the_epoch_exactly(tmp_path, tok, num_workers):
    """A resumed epoch yields the batches the uninterrupted one yields after its first k, each once.

    In order without workers; with workers (9 and 8 samples give them 5 and 4 batches, so the
    round robin outlives one) a new DataLoader starts its round robin at worker 0, so when k is
    not a multiple of the workers the same batches come interleaved in another order."""
    tokenizer, voc = tok
    urls = [_shard(tmp_path / "a.tar", [(f"a{i}", {"captions": [f"clip {i}"]}) for i in range(9)]),
            _shard(tmp_path / "b.tar", [(f"b{i}", {"captions": [f"clap {i}"]}) for i in range(8)])]

    def epoch(skip: int | None) -> list[torch.Tensor]:
        batches = TokenBatches(shard_samples(urls, shuffle_buffer=4, seed=3), tokenizer, voc, "pretrain",
                               BatchConfig(batch_size=2, bucket_batches=2), seed=3)
        batches.set_epoch(1)
        if skip is not None:
            batches.resume_at(1, skip)
        return [b["input_ids"] for b in torch.utils.data.DataLoader(batches, batch_size=None, num_workers=num_workers)]

    full = epoch(None)
    assert len(full) == 9
    for k in (2, 3, 8, 9):
        rest = epoch(k)
        if num_workers == 0 or k % num_workers == 0:
            assert len(rest) == len(full) - k and all(torch.equal(x, y) for x, y in zip(rest, full[k:], strict=True)), k
        else:
            assert sorted(str(b.tolist()) for b in rest) == sorted(str(b.tolist()) for b in full[k:]), k
