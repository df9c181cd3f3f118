"""lmmsn.llm.packing: a packed row gives every example the logits it gets alone; same loss; a packed run trains."""

from __future__ import annotations

import random

import pytest
import torch

from lmmsn.llm.data import bucket_batches, collate, length_buffers
from lmmsn.llm.losses import LossConfig, audio_lm_loss
from lmmsn.llm.packing import collate_packed, deal_rows, pack_rows, packed_batches
from lmmsn.llm.prompts import IGNORE_INDEX, Example
from lmmsn.llm.tiny import write_tiny_base


def _examples(vocab: int, lengths: list[int], seed: int = 0) -> list[Example]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g)
        ids[0] = 1  # <s>, never a target
        labels = ids.clone()
        labels[0] = IGNORE_INDEX
        labels[1 : n // 3] = IGNORE_INDEX  # a prompt part, as in fine-tuning
        out.append(Example(ids, labels))
    return out


def test_rows_hold_every_example_once_within_capacity():
    rng = random.Random(0)
    lengths = [rng.randint(1, 50) for _ in range(200)]
    rows = pack_rows(lengths, 64)
    assert sorted(i for r in rows for i in r) == list(range(200))
    assert all(sum(lengths[i] for i in r) <= 64 for r in rows)
    assert len(rows) <= -(-sum(lengths) // 64) * 1.25  # first-fit decreasing is near the bound here
    with pytest.raises(ValueError, match="does not fit"):
        pack_rows([65], 64)


def test_the_row_capacity_is_chosen_for_the_fewest_batch_tokens():
    from lmmsn.llm.packing import best_rows

    rows, length = best_rows([100] * 32, 320)  # at 320: 3 per row, 11 rows x 304 (the last row short)
    assert (len(rows), length) == (16, 200)  # two per row, nothing padded


def _padding(batches) -> float:
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    return 1 - real / sum(b["input_ids"].numel() for b in batches)


def _stream(n: int, low: int, high: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    return _examples(500, [rng.randint(low, high) for _ in range(n)], seed)


def test_buffer_packing_keeps_every_example_once_and_the_batch_count():
    examples = _stream(203, 12, 140)  # 3 full buffers of 8 x 8 and a short one of 11
    packed_rng, bucket_rng = random.Random(5), random.Random(5)
    packed = list(packed_batches(length_buffers(iter(examples), 64), 8, packed_rng, pad_id=0, capacity=160))
    bucketed = list(bucket_batches(iter(examples), 8, 8, bucket_rng))
    assert len(packed) == len(bucketed) == 26
    assert packed_rng.random() == bucket_rng.random()  # the shared stream rng is consumed the same way
    seen = sorted(tuple(b["input_ids"][r, c : c + n].tolist())
                  for b in packed for r in range(b["input_ids"].shape[0])
                  for c, n in _spans(b["position_ids"][r], b["attention_mask"][r]))
    assert seen == sorted(tuple(e.input_ids.tolist()) for e in examples)
    assert all(b["input_ids"].shape[1] <= 160 for b in packed)
    assert sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in packed) == sum(
        int((e.labels != IGNORE_INDEX).sum()) for e in examples)


def _spans(positions: torch.Tensor, mask: torch.Tensor) -> list[tuple[int, int]]:
    """(start, length) of each real example in a packed row: a run of mask 1 whose positions restart at 0."""
    starts = [c for c in range(len(positions)) if int(positions[c]) == 0 and int(mask[c]) == 1]
    ends = [*starts[1:], int(mask.sum())]
    return [(a, b - a) for a, b in zip(starts, ends, strict=True)]


def test_packing_the_buffer_pads_less_than_packing_each_batch():
    # the demo fine-tuning mix's shape: mostly short examples, a tail of long ones
    examples = _stream(512, 20, 120, seed=1) + _stream(64, 200, 320, seed=2)
    random.Random(0).shuffle(examples)
    per_batch = [collate_packed(b, 0, 320) for b in bucket_batches(iter(examples), 32, 18, random.Random(0))]
    whole = list(packed_batches(length_buffers(iter(examples), 32 * 18), 32, random.Random(0), 0, 320))
    assert len(whole) == len(per_batch) == 18
    assert _padding(whole) < 0.02 < _padding(per_batch)


def test_rows_are_dealt_longest_first_and_evenly():
    dealt = deal_rows([100] * 9 + [30], num_batches=3, capacity=200)  # rows: 4 x 200, 100 + 30
    assert [len(b) for b in dealt] == [1, 2, 2]  # the extra row goes with the shortest rows
    assert deal_rows([5] * 4, num_batches=3, capacity=200) is None  # one row cannot make three batches


def test_a_buffer_of_tiny_examples_still_gives_every_batch():
    examples = _stream(20, 3, 6)
    batches = list(packed_batches(length_buffers(iter(examples), 20), 8, random.Random(0), 0, 320))
    assert len(batches) == 3 and all(int(b["attention_mask"].sum()) > 0 for b in batches)
    assert sum(int(b["attention_mask"].sum()) for b in batches) == sum(len(e) for e in examples)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(write_tiny_base(tmp_path_factory.mktemp("pack") / "tiny"),
                                                attn_implementation="sdpa").eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_row_gives_each_example_its_own_logits(model, attn):
    model.config._attn_implementation = attn
    examples = _examples(model.config.vocab_size, [9, 23, 5, 17, 30, 12])
    batch = collate_packed(examples, pad_id=0, capacity=48)
    assert batch["input_ids"].shape[0] < len(examples)  # several examples share rows
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits  # [R, L, V]
        for e in examples:
            alone = model(input_ids=e.input_ids[None]).logits[0]  # [n, V]
            hits = [(r, c) for r in range(batch["input_ids"].shape[0]) for c in range(batch["input_ids"].shape[1] - len(e) + 1)
                    if torch.equal(batch["input_ids"][r, c : c + len(e)], e.input_ids)
                    and int(batch["position_ids"][r, c]) == 0]
            r, c = hits[0]
            assert torch.allclose(packed[r, c : c + len(e)], alone, atol=1e-5), attn
    model.config._attn_implementation = "sdpa"


def test_packed_and_padded_batches_have_the_same_loss(model):
    examples = _examples(model.config.vocab_size, [9, 23, 5, 17, 30, 12], seed=1)
    audio = range(model.config.vocab_size - 40, model.config.vocab_size)
    padded, packed = collate(examples, pad_id=0), collate_packed(examples, pad_id=0, capacity=64)
    assert int(packed["attention_mask"].sum()) == int(padded["attention_mask"].sum())
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    with torch.no_grad():
        a = audio_lm_loss(model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits,
                          padded["labels"], audio, LossConfig())
        b = audio_lm_loss(model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits,
                          packed["labels"], audio, LossConfig())
    assert torch.allclose(a.total, b.total, atol=1e-5) and torch.allclose(a.text_loss, b.text_loss, atol=1e-5)


def test_a_first_token_target_is_refused():
    e = Example(torch.tensor([5, 6, 7]), torch.tensor([5, 6, 7]))
    with pytest.raises(ValueError, match="first token"):
        collate_packed([e], pad_id=0, capacity=8)


def test_tiny_pretrain_runs_packed(tmp_path):
    """The recipe with data.batch.packing: the module feeds position_ids and no mask; the loss falls."""
    from lmmsn.training.llm_module import run
    from tests.recipes.test_llm_recipes import _drop, _losses, _tiny

    out = run(_tiny("pretrain", tmp_path, "data.batch.packing=true", "trainer.max_steps=12"))
    first, last = _drop(_losses(tmp_path / "pretrain", "train/loss_step"))
    assert last < first and (out.export / "adapter/adapter_model.safetensors").is_file()
