"""The paper's two LLM stages on the paper's data layouts, end to end with tiny models (issue 13).

An OpenAQA folder (LTU's JSON: flat QA dicts, absolute audio_id paths of the authors' machine;
one clip has no caption-task answer, so `captions: []`) and an AudioCaps folder (its CSVs:
audiocap_id,youtube_id,start_time,caption) go through the public tools, called in-process with
their command lines (a subprocess per tool would cost a torch import each):

    python -m data_prep.make_shards --adapter openaqa|audiocaps ... --vae tiny
    recipes/train_tokenizer.py --config recipes/configs/tokenizer/tiny.yaml data.train_shards=...
    python -m data_prep.tokenize_shards ...
    recipes/pretrain_llm.py --config recipes/configs/llm/tiny_pretrain.yaml data.train_shards=...
    recipes/finetune_llm.py --config recipes/configs/llm/tiny_finetune.yaml data.train_shards=... model.init_from=...
    lmmsn export --audio-tokenizer ... --llm ... -o ...

then the exported pipeline generates and captions.
"""

from __future__ import annotations

import csv
import json
import logging
import runpy
import sys
from pathlib import Path

import soundfile
import torch

from tests.conftest import sine

ROOT = Path(__file__).resolve().parents[1]
SR = 16000  # the tiny VAE's rate
AUDIO = "/data/sls/audioset/dave_version/audio"  # where LTU's audio_ids point; resolved to root/audio/<name>


def _openaqa(root: Path) -> None:
    qa = []
    for clip, (question, answer, task) in [
        ("LZq4Neh-oWU", ("Write an audio caption describing the sound.", "A dog barks twice.", "caption")),
        ("LZq4Neh-oWU", ("What animal is heard?", "A dog.", "open-ended question")),
        ("b0RFKhbpFJA", ("Classify the sound events in the audio clip.", "Rain; Thunder", "cla_label")),
        ("b0RFKhbpFJA", ("Is it raining?", "Yes, heavily.", "closed-ended question")),
        ("--nOcaption", ("What can you infer from the sound?", "Someone is cooking.", "open-ended question")),
    ]:
        qa.append({"instruction": question, "input": "", "audio_id": f"{AUDIO}/{clip}.flac",
                   "dataset": "as_strong_train", "task": task, "output": answer})
    (root / "audio").mkdir(parents=True)
    (root / "openaqa_5.6M.json").write_text(json.dumps(qa, indent=1))
    for i, clip in enumerate(["LZq4Neh-oWU", "b0RFKhbpFJA", "--nOcaption"]):
        soundfile.write(root / "audio" / f"{clip}.flac", sine(0.25, SR, freq=220.0 * (i + 1))[0].numpy(), SR)


def _audiocaps(root: Path) -> None:
    root.mkdir(parents=True)
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    rows = {"train": [[91139, "r1nicOVtvkQ", 130, "A woman talks nearby as water pours"],
                      [58146, "UDGBjjwyaqE", 20, "Multiple clanging and clanking sounds"]],
            "val": [[97151 + i, "7fmOlUlwoNg", 20, f"Birds chirp in the distance {i}"] for i in range(5)],
            "test": []}
    for split, lines in rows.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *lines])
    names = {"train": ["Yr1nicOVtvkQ", "UDGBjjwyaqE"], "val": ["7fmOlUlwoNg_20"]}
    for split, stems in names.items():
        (root / "audio" / split).mkdir(parents=True)
        for i, stem in enumerate(stems):  # one file longer than a segment: three slices
            soundfile.write(root / "audio" / split / f"{stem}.wav", sine(0.6 if i else 0.25, SR, freq=330.0)[0].numpy(), SR)


def _recipe(path: str, argv: list[str]) -> None:
    """Run a recipe script as `python recipes/x.py ARGV` would, in this process."""
    old = sys.argv
    sys.argv = [path, *argv]
    try:
        runpy.run_path(str(ROOT / path), run_name="__main__")
    except SystemExit as exc:
        assert exc.code in (0, None), f"{path} exited with {exc.code}"
    finally:
        sys.argv = old


def test_openaqa_and_audiocaps_through_both_llm_stages(tmp_path, caplog, monkeypatch):
    from data_prep import make_shards, tokenize_shards
    from lmmsn import cli
    from lmmsn.data.loader import shard_samples

    monkeypatch.chdir(ROOT)
    _openaqa(tmp_path / "openaqa")
    _audiocaps(tmp_path / "audiocaps")
    common = ["--vae", "tiny", "--segment-s", "0.25", "--min-tail-s", "0.05", "--num-workers", "0", "--threads", "1"]
    for name in ("openaqa", "audiocaps"):
        make_shards.main(["--adapter", name, "--root", str(tmp_path / name), "--out", str(tmp_path / "lat" / name), *common])
    aqa = {s.meta["record_key"]: s.meta for s in shard_samples(tmp_path / "lat/openaqa", even="none")}
    assert sorted(aqa) == ["--nOcaption", "LZq4Neh-oWU", "b0RFKhbpFJA"]
    assert aqa["--nOcaption"]["captions"] == [] and len(aqa["LZq4Neh-oWU"]["conversations"]) == 2
    caps = list(shard_samples(tmp_path / "lat/audiocaps", even="none"))
    assert len(caps) == 5 and {s.meta["captions_cover"] for s in caps} == {"segment", "whole_file"}

    latents = f"{tmp_path}/lat/openaqa/*.tar::{tmp_path}/lat/audiocaps/*.tar"
    _recipe("recipes/train_tokenizer.py", ["--config", "recipes/configs/tokenizer/tiny.yaml", f"data.train_shards={latents}",
                                           "trainer.max_steps=2", "trainer.val_every_n_steps=2",
                                           "trainer.checkpoint_every_n_steps=2", "trainer.progress_bar=false",
                                           f"output_dir={tmp_path}/tok"])
    tok = tmp_path / "tok/export"
    for name in ("openaqa", "audiocaps"):
        tokenize_shards.main(["--shards", str(tmp_path / "lat" / name), "--tokenizer", str(tok),
                              "--out", str(tmp_path / "codes" / name), "--device", "cpu"])
    codes = f"{tmp_path}/codes/openaqa/*.tar::{tmp_path}/codes/audiocaps/*.tar"

    llm = [f"model.base_model={tmp_path}/base", f"data.train_shards={codes}", "data.batch.batch_size=2",
           "data.num_workers=0"]
    with caplog.at_level(logging.WARNING, logger="lmmsn.llm.data"):
        _recipe("recipes/pretrain_llm.py", ["--config", "recipes/configs/llm/tiny_pretrain.yaml", *llm,
                                            "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=4",
                                            f"output_dir={tmp_path}/pre"])  # one epoch: 8 samples
    skipped = [r.getMessage() for r in caplog.records if "skipping bad sample" in r.getMessage()]
    assert skipped and all("openaqa" in m and "pretraining needs codes and a non-empty 'captions'" in m for m in skipped)
    _recipe("recipes/finetune_llm.py", ["--config", "recipes/configs/llm/tiny_finetune.yaml", *llm,
                                        f"model.init_from={tmp_path}/pre/export", "data.batch.generation_fraction=0.5",
                                        "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=4",
                                        f"output_dir={tmp_path}/ft"])
    (metrics,) = (tmp_path / "ft").glob("logs/*/metrics.csv")
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("train/loss")]
    assert len(rows) == 4  # the mix: OpenAQA replies (text targets) and generation conversations (audio targets)
    assert any(float(r["train/audio_loss"]) > 0 for r in rows) and any(float(r["train/text_loss"]) > 0 for r in rows)
    assert not list(tmp_path.glob("codes/*/*::*"))  # trained on the shards, not on a fixture written beside them
    assert cli.main(["export", "--audio-tokenizer", str(tok), "--llm", str(tmp_path / "ft/export"), "-o", str(tmp_path / "pipe")]) in (0, None)

    import lmmsn

    pipe = lmmsn.load(str(tmp_path / "pipe"), device="cpu")
    clip = pipe.generate("a dog barks twice", seconds=0.1, seed=0)
    assert 1 <= clip.codes.numel() <= 12 and clip.waveform.shape[-1] == clip.codes.numel() * 128
    assert torch.isfinite(clip.waveform).all()
    text = pipe.caption(str(tmp_path / "openaqa/audio/LZq4Neh-oWU.flac"), max_new_tokens=5)
    assert isinstance(text, str)
    assert pipe.generation_prompt("x").endswith("ASSISTANT: <soa>")
