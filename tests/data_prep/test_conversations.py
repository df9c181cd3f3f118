"""data_prep.conversations: instruction dialogues from the shards' metadata, in the format the loader reads."""

from __future__ import annotations

import json
import random

import pytest
import torch
import webdataset as wds

from data_prep import conversations
from lmmsn.data.format import encode_sample
from lmmsn.data.loader import shard_samples

CLIPS = [("frog", "animal", "a frog croaks", None), ("speech", "speech", 'a voice says "hola"', "hola"),
         ("speech", "speech", 'a voice says "uno"', "uno"), ("speech", "speech", 'a voice says "dos"', "dos"),
         ("snare drum", "music_instrument", "a snare drum hit", None)]


def _shards(folder, n_shards: int = 2) -> None:
    folder.mkdir(parents=True)
    for s in range(n_shards):
        with wds.TarWriter(str(folder / f"shard-{s:06d}.tar")) as sink:
            for i, (label, category, caption, transcript) in enumerate(CLIPS):
                meta = {"captions": [caption], "category": category, "label": label, "dataset": "fixture",
                        "source_path": f"{s}/{i}.wav", "offset_s": 0.0, "duration_s": 0.5, "sample_rate": 44100}
                if transcript:
                    meta["transcript"] = transcript
                sink.write(encode_sample(f"s{s}c{i}", meta, latent=torch.zeros(4, 8), codes=torch.arange(4)))
    (folder / "index.json").write_text(json.dumps({"num_samples": n_shards * len(CLIPS), "dataset": "fixture"}))


def test_writes_dialogues_the_loader_trains_on(tmp_path):
    from lmmsn.llm.data import instruction_example, sample_dialogues
    from lmmsn.llm.tiny import build_tiny_text_tokenizer
    from lmmsn.llm.vocabulary import AudioVocabulary

    _shards(tmp_path / "codes")
    index = conversations.main(["--shards", str(tmp_path / "codes"), "--out", str(tmp_path / "conv")])
    samples = {s.key: s for s in shard_samples(tmp_path / "conv", even="none")}
    assert len(samples) == 10 and index["num_samples"] == 10 and index["dataset"] == "fixture"
    assert [s["samples"] for s in index["shards"]] == [5, 5]
    assert index["conversations"]["dialogues"] == {"caption": 10, "category": 10, "generate": 10, "label": 4,
                                                   "transcript": 6}
    frog = samples["s0c0"]
    assert frog.latent is None and frog.codes.tolist() == [0, 1, 2, 3]  # latents dropped, codes kept
    answers = [d[-1]["content"] for d in frog.meta["conversations"]]
    assert answers == ["a frog croaks", "an animal sound.", "frog", "<audio>"]
    assert len(sample_dialogues(frog)) == 4  # the loader reads the list-of-dialogues shape
    tokenizer = build_tiny_text_tokenizer()
    vocabulary = AudioVocabulary.extend(tokenizer, 8)
    for epoch in range(4):  # each epoch trains another dialogue; every one renders with the clip
        example = instruction_example(frog, tokenizer, vocabulary, 256, rng=random.Random(epoch), epoch=epoch)
        assert (example.input_ids == vocabulary.soa_id).sum() == 1
    # deterministic: a rerun writes the same dialogues
    again = conversations.main(["--shards", str(tmp_path / "codes"), "--out", str(tmp_path / "conv2")])
    assert again["conversations"]["dialogues"] == index["conversations"]["dialogues"]
    redo = {s.key: s.meta["conversations"] for s in shard_samples(tmp_path / "conv2", even="none")}
    assert redo == {k: s.meta["conversations"] for k, s in samples.items()}


def test_caps_keep_a_seeded_subset_of_one_category(tmp_path):
    _shards(tmp_path / "codes")
    index = conversations.main(["--shards", str(tmp_path / "codes"), "--out", str(tmp_path / "conv"),
                                "--max-per-category", "speech=2", "--keep-latents"])
    kept = list(shard_samples(tmp_path / "conv", even="none"))
    categories = sorted(s.meta["category"] for s in kept)
    assert categories == ["animal", "animal", "music_instrument", "music_instrument", "speech", "speech"]
    assert index["conversations"]["left_out_by_cap"] == {"speech": 4} and index["num_samples"] == 6
    assert all(s.latent is not None for s in kept)
    keys = {s.key for s in kept if s.meta["category"] == "speech"}
    assert keys == conversations.kept_keys({k: "speech" for k in ["s0c1", "s0c2", "s0c3", "s1c1", "s1c2", "s1c3"]},
                                           {"speech": 2}, 0)
    other_seed = conversations.kept_keys({f"k{i}": "speech" for i in range(40)}, {"speech": 5}, 1)
    assert other_seed != conversations.kept_keys({f"k{i}": "speech" for i in range(40)}, {"speech": 5}, 0)


def test_bad_options_and_output_folder(tmp_path):
    _shards(tmp_path / "codes", 1)
    with pytest.raises(SystemExit):
        conversations.main(["--shards", str(tmp_path / "codes"), "--out", str(tmp_path / "codes")])
    with pytest.raises(SystemExit):
        conversations.main(["--shards", str(tmp_path / "codes"), "--out", str(tmp_path / "c"), "--kinds", "nonsense"])
    with pytest.raises(SystemExit):
        conversations.main(["--shards", str(tmp_path / "codes"), "--out", str(tmp_path / "c"), "--max-per-category", "x"])
