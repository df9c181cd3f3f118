"""Tests for eval.common: result files carry their settings; the manifest draw is reproducible."""

import json

import pytest

from eval.common import (
    DeterministicCaptioner,
    call_system,
    environment,
    read_manifest,
    write_result,
)
from tests.conftest import sine


def test_write_result_records_environment(tmp_path):
    env = environment(seed=3, device="cpu", dtype="float32", batch_size=2)
    j, m = write_result(tmp_path, "x", {"score": float("nan"), "environment": env}, "# hi")
    data = json.loads(j.read_text())
    assert data["tool"] == "x" and data["score"] == "nan"
    assert data["environment"]["seed"] == 3 and data["environment"]["batch_size"] == 2
    assert data["environment"]["libraries"]["aac-metrics"] == "0.5.4"
    assert data["environment"]["libraries"]["fadtk"] is not None
    assert m.read_text().startswith("# hi")


def test_read_manifest_draw(tmp_path):
    rows = [{"path": f"{c}{i}.wav", "category": c, "label": c, "caption": "x", "duration_s": 1.0 + i} for c in "ab" for i in range(5)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    one = read_manifest(tmp_path / "m.jsonl", tmp_path, categories=["b", "a"], per_category=2, seed=1)
    two = read_manifest(tmp_path / "m.jsonl", tmp_path, categories=["b", "a"], per_category=2, seed=1)
    assert [i.key for i in one] == [i.key for i in two]
    assert [i.category for i in one] == ["b", "b", "a", "a"]
    short = read_manifest(tmp_path / "m.jsonl", tmp_path, categories=["a"], max_duration_s=2.5)
    assert [i.key for i in short] == ["a0.wav", "a1.wav"]
    with pytest.raises(ValueError, match="no rows for category 'c'"):
        read_manifest(tmp_path / "m.jsonl", tmp_path, categories=["c"])


def test_call_system_checks_counts():
    clips = [(sine(0.1, 8000, 1, 200.0), 8000), (sine(0.1, 16000, 1, 5000.0), 16000)]
    out = call_system(DeterministicCaptioner(), clips, None, 2)
    assert "low" in out[0] and "high" in out[1]
    with pytest.raises(ValueError, match="returned 1 texts for a batch of 2"):
        call_system(lambda batch: ["only one"], clips, None, 2)


def test_lmmsn_system_batches_and_caps_answers(tmp_path):
    """`lmmsn:DIR` runs the real pipeline: one batch per call, answers capped by max_new_tokens."""
    from eval.common import build_system, call_system
    from tests.test_pipeline import build_tiny_pipeline

    directory = build_tiny_pipeline(tmp_path)
    clips = [(sine(0.3, 16000, freq=f), 16000) for f in (220.0, 440.0, 880.0)]
    short = call_system(build_system(f"lmmsn:{directory}", max_new_tokens=3), clips, "Describe.", 3)
    longer = call_system(build_system(f"lmmsn:{directory}", max_new_tokens=8), clips, "Describe.", 3)
    assert len(short) == len(longer) == 3
    for a, b in zip(short, longer, strict=True):  # greedy: the capped answer is the start of the longer one
        assert b.startswith(a) and len(a) < len(b), (a, b)
    with pytest.raises(ValueError, match="unknown system"):
        build_system("nonsense")
