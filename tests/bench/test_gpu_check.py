"""bench/gpu_check.sh --dry-run: every row runs on CPU with tiny shapes and lands in the JSON table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_table  # noqa: E402

NUMBERS = {  # the headline numbers each row must report
    "a_ours": ["tokens_per_s", "peak_gib"],
    "a_plain_sdpa": ["tokens_per_s", "peak_gib"],
    "a_plain_sdpa_compile": ["tokens_per_s", "peak_gib"],
    "b_vae_eager": ["x_real_time"],
    "b_vae_compiled": ["x_real_time", "max_latent_diff"],
    "c_make_shards": ["x_real_time"],
    "d_generate_default": ["llm_s", "llm_tokens_per_s"],
    "d_generate_static": ["llm_s", "llm_tokens_per_s"],
    "d_generate_ours": ["llm_s", "llm_tokens_per_s"],
    "d_generate_ours_dynamic": ["llm_s", "llm_tokens_per_s"],
    "d_generate_ours_compiled": ["llm_s", "llm_tokens_per_s"],
    "e_tokenizer_step": ["samples_per_s", "peak_gib"],
    "f_pytest_gpu": ["collected"],
}


def test_dry_run_fills_every_row_with_numbers(tmp_path):
    """In the default suite, so the GPU script cannot rot. About 2 minutes on the 2-core machine
    beside its training job (13 fresh interpreters importing torch: the imports are most of it)."""
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path),
                           "--budget", "1100", "--row-timeout", "300"], capture_output=True, text=True, env=env, timeout=1200, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = json.loads((tmp_path / "gpu_check.json").read_text())
    assert table["dry_run"] is True
    assert set(table["rows"]) == set(NUMBERS)
    for name, keys in NUMBERS.items():
        row = table["rows"][name]
        assert row["ok"], f"{name}: {row.get('error')}"
        for key in keys:
            value = row["metrics"][key]
            assert isinstance(value, (int, float)) and value == value and value >= 0, (name, key, value)
    assert table["rows"]["f_pytest_gpu"]["metrics"]["collected"] >= 2  # the repository's gpu tests
    assert "generate ours / transformers default tok/s" in table["ratios"]
    assert "a_ours" in done.stdout and "gpu_check.json" in done.stdout  # the table is printed


def test_table_marks_a_failed_row_and_keeps_the_others(tmp_path):
    """A row that crashed (no JSON, rc 1, error file) is ok=False with its error; a good row stays ok."""
    (tmp_path / "e_tokenizer_step.json").write_text(json.dumps(
        {"samples_per_s": 12.5, "peak_gib": 0.25, "step_ms": 80.0}))
    (tmp_path / "e_tokenizer_step.rc").write_text("0 3")
    (tmp_path / "a_ours.rc").write_text("1 2")
    (tmp_path / "a_ours.error").write_text("exit 1\nRuntimeError: CUDA out of memory")
    (tmp_path / "f_pytest_gpu.rc").write_text("0 9")
    (tmp_path / "f_pytest_gpu.log").write_text("....\n3 passed, 1 skipped, 250 deselected in 9.1s\n")
    table = gpu_table.main([str(tmp_path)])
    rows = table["rows"]
    assert rows["e_tokenizer_step"]["ok"] and rows["e_tokenizer_step"]["metrics"]["samples_per_s"] == 12.5
    assert not rows["a_ours"]["ok"] and "out of memory" in rows["a_ours"]["error"]
    assert rows["f_pytest_gpu"]["ok"] and rows["f_pytest_gpu"]["metrics"]["passed"] == 3
    assert rows["b_vae_eager"]["error"] == "not run" and not rows["b_vae_eager"]["ok"]
    assert json.loads((tmp_path / "gpu_check.json").read_text())["rows"]["a_ours"]["ok"] is False
