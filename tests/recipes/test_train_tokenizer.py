"""Tests of recipes/train_tokenizer.py and its configs (subprocess runs: fresh processes, torchrun, gloo)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmmsn.config import load_config, read_yaml
from lmmsn.tokenizer.model import AudioTokenizer, tokenizer_config
from lmmsn.training.tokenizer_module import TrainTokenizerConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "recipes/configs/tokenizer").glob("*.yaml"))
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_its_header_is_the_command(path):
    config = load_config(TrainTokenizerConfig, path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and "recipes/train_tokenizer.py" in first and f"--config recipes/configs/tokenizer/{path.name}" in first
    assert read_yaml(path)  # non-empty
    assert config.output_dir.startswith("runs/")


def test_paper_configs_are_the_paper_sizes():
    assert {p.name for p in CONFIGS} >= {"paper.yaml", "paper_mse.yaml", "tiny.yaml"}
    paper = load_config(TrainTokenizerConfig, ROOT / "recipes/configs/tokenizer/paper.yaml")
    ablation = load_config(TrainTokenizerConfig, ROOT / "recipes/configs/tokenizer/paper_mse.yaml")
    assert paper.model == tokenizer_config("paper")
    assert paper.optim.lr == 1e-4 and paper.model.flow.objective == "cfm"
    assert ablation.model.flow.objective == "mse"
    ablation.model.flow.objective = "cfm"
    assert ablation.model == paper.model  # identical apart from the objective
    tiny = load_config(TrainTokenizerConfig, ROOT / "recipes/configs/tokenizer/tiny.yaml")
    assert tiny.model == tokenizer_config("tiny")


def _run(args: list[str], out: Path, *overrides: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    cmd = [*args, str(ROOT / "recipes/train_tokenizer.py"), "--config", str(ROOT / "recipes/configs/tokenizer/tiny.yaml"),
           f"output_dir={out}", f"data.fixture_dir={out.parent / 'fixture'}", "trainer.progress_bar=false",
           "trainer.log_every_n_steps=1", "trainer.checkpoint_every_n_steps=2", "trainer.val_every_n_steps=2",
           "data.batch_size=4", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _layout(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and "logs" not in p.parts)


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _logged_steps(out: Path, version: int) -> list[int]:
    with open(out / "logs" / f"version_{version}" / "metrics.csv") as f:
        return sorted({int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")})


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    _run(TORCHRUN + ["--nproc_per_node=1"], out, "trainer.max_steps=2")
    return out


def test_two_step_run_writes_checkpoints_and_export(single_run):
    out = single_run
    assert _layout(out) == [
        "checkpoints/last.ckpt", "checkpoints/step=000002.ckpt", "config.yaml",
        "export/config.yaml", "export/format_version", "export/model.safetensors",
    ]
    ckpt = _ckpt(out / "checkpoints/last.ckpt")
    assert ckpt["global_step"] == 2
    model = AudioTokenizer.from_pretrained(out / "export", with_vae=False)
    weights = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    assert torch.equal(model.quantizer.embed, weights["model.quantizer.embed"])
    assert _logged_steps(out, 0) == [0, 1]


@pytest.mark.slow  # two more recipe launches: ~2.5 min on 2 cores
def test_resume_continues_step_and_optimizer_state(single_run, tmp_path):
    """A second launch with a larger max_steps continues from last.ckpt instead of restarting."""
    out = tmp_path / "run"
    import shutil

    shutil.copytree(single_run, out)
    before = _ckpt(out / "checkpoints/last.ckpt")
    _run(TORCHRUN + ["--nproc_per_node=1"], out, "trainer.max_steps=4")
    after = _ckpt(out / "checkpoints/last.ckpt")
    assert after["global_step"] == 4
    state_before = before["optimizer_states"][0]["state"]
    state_after = after["optimizer_states"][0]["state"]
    assert all(float(s["step"]) == 2 for s in state_before.values())
    assert all(float(s["step"]) == 4 for s in state_after.values())  # AdamW counted on from 2, not from 0
    # The second launch logged exactly two training steps, none of them a repeat of the first
    # launch's [0, 1]. (Lightning 2.6 labels them [3, 4] after a resume, not [2, 3]: its logger
    # step counter is restored one ahead; global_step and the optimizer state above are exact.)
    resumed = _logged_steps(out, 1)
    assert len(resumed) == 2 and min(resumed) > max(_logged_steps(out, 0))
    assert (out / "checkpoints/step=000004.ckpt").is_file()
    # The moments continue: a restart would have discarded them (exp_avg from zero after 2 steps differs).
    k = next(iter(state_after))
    assert not torch.equal(state_after[k]["exp_avg"], state_before[k]["exp_avg"])


@pytest.mark.slow  # a 2-process torchrun launch: ~2 min on 2 cores
def test_two_process_gloo_run_writes_the_same_layout(single_run, tmp_path):
    out = tmp_path / "run"
    _run(TORCHRUN + ["--nproc_per_node=2"], out, "trainer.max_steps=2")
    assert _layout(out) == _layout(single_run)
    ckpt = _ckpt(out / "checkpoints/last.ckpt")
    assert ckpt["global_step"] == 2
    assert ckpt["hyper_parameters"]["data"]["batch_size"] == 4
