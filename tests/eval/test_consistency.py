"""Tests for eval.consistency with fake systems whose (in)consistency is known by construction."""

import itertools

import pytest
import torch

from eval.common import Item
from eval.consistency import Task, batch_check, prompt_check, seed_check
from tests.conftest import sine

CLIPS = [(sine(0.05, 8000, 1, 100.0 * (i + 1)), 8000) for i in range(6)]
ITEMS = [Item(f"k{i}", None, "c", "jazz" if i % 2 else "rock", "a caption") for i in range(6)]


def batch_sensitive(batch, prompt=None):
    # alone: "a"; in a batch, items at odd positions of the batch say "b"
    return ["a" if len(batch) == 1 or j % 2 == 0 else "b" for j in range(len(batch))]


def test_batch_check_counts_differences():
    res = batch_check(batch_sensitive, CLIPS, None, 3)
    # batches [0,1,2], [3,4,5]: positions 1 in each batch differ -> items 1 and 4
    assert res["differ"] == 2 and res["fraction_differ"] == pytest.approx(2 / 6)
    assert [d["index"] for d in res["differing"]] == [1, 4]


def test_seed_check_detects_unseeded_randomness():
    seeded = lambda batch, prompt=None: [f"{torch.rand(()).item():.6f}" for _ in batch]  # noqa: E731
    assert seed_check(seeded, CLIPS, None, 2, seed=5, repeats=3)["unstable"] == 0
    counter = itertools.count()
    drifting = lambda batch, prompt=None: [str(next(counter)) for _ in batch]  # noqa: E731
    res = seed_check(drifting, CLIPS, None, 2, seed=5, repeats=2)
    assert res["fraction_unstable"] == 1.0


def test_prompt_check_mean_and_spread():
    def system(batch, prompt=None):
        return ["sounds like jazz and rock" if prompt == "good" else "no idea" for _ in batch]

    res = prompt_check(system, CLIPS, ITEMS, {"genre": Task("label_in_answer", ["good", "bad"])}, batch_size=4)
    g = res["genre"]
    assert [t["score"] for t in g["templates"]] == [1.0, 0.0]
    assert (g["mean"], g["std"], g["min"], g["max"]) == (0.5, 0.5, 0.0, 1.0)


def test_unknown_scorer_is_rejected():
    with pytest.raises(ValueError, match="unknown scorer"):
        Task("accuracy", ["x"])
