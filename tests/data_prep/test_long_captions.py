"""make_shards: which samples of a long file carry its captions (`captions_cover`, `--long-captions`)."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile

from data_prep.make_shards import ShardConfig, ShardMaker, parse_args
from lmmsn.data.loader import shard_samples
from tests.conftest import sine

SR = 16000  # the tiny VAE's rate


def _corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    soundfile.write(root / "long.wav", sine(3.2, SR)[0].numpy(), SR)  # 3 segments of 1 s (+ a 0.2 s tail, dropped)
    soundfile.write(root / "short.wav", sine(0.8, SR)[0].numpy(), SR)  # fits one segment
    rows = [{"path": "long.wav", "caption": "a bell rings once"}, {"path": "short.wav", "caption": "a short tone"}]
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return root


def _run(root: Path, out: Path, **kw) -> dict[str, dict]:
    cfg = ShardConfig(adapter="manifest", root=str(root), out=str(out), segment_s=1.0, vae="tiny", num_workers=0,
                      batch_size=4, threads=1, min_tail_s=0.5, **kw)
    ShardMaker(cfg).run()
    return {(s.meta["source_path"], s.meta["segment"]): s.meta for s in shard_samples(out, even="none")}


def test_every_sample_says_what_its_captions_cover(tmp_path):
    root = _corpus(tmp_path / "in")
    metas = _run(root, tmp_path / "all")
    assert sorted(metas) == [("long.wav", 0), ("long.wav", 1), ("long.wav", 2), ("short.wav", 0)]
    assert metas[("short.wav", 0)]["captions_cover"] == "segment"
    for n in range(3):  # default --long-captions all: every slice keeps the file's captions, marked as such
        meta = metas[("long.wav", n)]
        assert meta["captions"] == ["a bell rings once"] and meta["captions_cover"] == "whole_file"
        assert "file_captions" not in meta


def test_long_captions_first_keeps_captions_on_the_first_segment_only(tmp_path):
    root = _corpus(tmp_path / "in")
    metas = _run(root, tmp_path / "first", long_captions="first")
    assert metas[("long.wav", 0)]["captions"] == ["a bell rings once"]
    for n in (1, 2):
        meta = metas[("long.wav", n)]
        assert meta["captions"] == [] and meta["file_captions"] == ["a bell rings once"]
        assert meta["captions_cover"] == "whole_file"
    assert metas[("short.wav", 0)]["captions"] == ["a short tone"]


def test_long_first_marks_a_cut_file(tmp_path):
    root = _corpus(tmp_path / "in")
    metas = _run(root, tmp_path / "cut", long="first")
    assert sorted(metas) == [("long.wav", 0), ("short.wav", 0)]
    assert metas[("long.wav", 0)]["captions_cover"] == "whole_file"  # 1 s kept of a 3.2 s file
    assert metas[("short.wav", 0)]["captions_cover"] == "segment"


def test_cli_option():
    cfg, _ = parse_args(["--adapter", "manifest", "--root", "r", "--out", "o", "--long-captions", "first"])
    assert cfg.long_captions == "first" and "long_captions" in cfg.content_settings()
