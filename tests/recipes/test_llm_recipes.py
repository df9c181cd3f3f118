"""LLM recipes: configs load; tiny pretrain -> finetune on CPU lowers the loss and exports; 2-process gloo."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmmsn.config import load_config
from lmmsn.training.llm_module import LLMRecipeConfig, run

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "recipes/configs/llm").glob("*.yaml"))
EXPORT_FILES = ["config.yaml", "format_version", "audio_vocabulary.json", "adapter/adapter_config.json",
                "adapter/adapter_model.safetensors", "tokenizer/tokenizer.json"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_llm_config_loads(path):
    cfg = load_config(LLMRecipeConfig, path)
    assert cfg.mode == ("pretrain" if "pretrain" in path.name else "finetune")
    assert path.read_text().startswith("# ") and f"--config recipes/configs/llm/{path.name}" in path.read_text()
    if path.name.startswith("paper"):
        assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.codebook_size) == (64, 128, 8196)
        assert (cfg.loss.audio_weight, cfg.loss.z_loss_coef) == (10.0, 1e-4)


def _losses(output_dir: Path, key: str) -> list[float]:
    (metrics,) = output_dir.glob("logs/*/metrics.csv")
    with metrics.open() as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def _tiny(name: str, tmp: Path, *extra: str) -> LLMRecipeConfig:
    overrides = [f"model.base_model={tmp}/base", f"data.train_shards={tmp}/shards_{name}",
                 f"trainer.output_dir={tmp}/{name}", *extra]
    return load_config(LLMRecipeConfig, ROOT / f"recipes/configs/llm/tiny_{name}.yaml", overrides)


def _drop(values: list[float]) -> tuple[float, float]:
    return sum(values[:3]) / 3, sum(values[-3:]) / 3


def test_tiny_pretrain_then_finetune(tmp_path):
    pre = run(_tiny("pretrain", tmp_path, "trainer.max_steps=12"))
    for name in EXPORT_FILES:
        assert (pre["export"] / name).is_file(), name
    first, last = _drop(_losses(tmp_path / "pretrain", "train/loss"))
    assert last < first, (first, last)

    ft = run(_tiny("finetune", tmp_path, "trainer.max_steps=12", f"model.init_from={pre['export']}"))
    for name in [*EXPORT_FILES, "merged/config.json", "merged/model.safetensors", "merged/audio_vocabulary.json"]:
        assert (ft["export"] / name).is_file(), name
    first, last = _drop(_losses(tmp_path / "finetune", "train/text_loss"))
    assert last < first, (first, last)

    # resume continues from the last checkpoint instead of starting over
    run(_tiny("finetune", tmp_path, "trainer.max_steps=14", f"model.init_from={pre['export']}", "trainer.resume=last"))
    steps = [int(s) for s in _steps(tmp_path / "finetune")]
    assert max(steps) == 13 and 12 in steps


def _steps(output_dir: Path) -> list[str]:
    rows = []
    for metrics in output_dir.glob("logs/*/metrics.csv"):
        with metrics.open() as f:
            rows += [r["step"] for r in csv.DictReader(f) if r.get("train/loss")]
    return rows


def test_tiny_pretrain_two_process_gloo(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node=2", "recipes/pretrain_llm.py",
           "--config", "recipes/configs/llm/tiny_pretrain.yaml", "trainer.devices=2", "trainer.strategy=ddp",
           "trainer.max_steps=3", f"model.base_model={tmp_path}/base", f"data.train_shards={tmp_path}/shards",
           f"trainer.output_dir={tmp_path}/out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in EXPORT_FILES:
        assert (tmp_path / "out/export" / name).is_file(), name
    assert len(_losses(tmp_path / "out", "train/loss")) == 3


def test_fsdp_on_cpu_is_refused_before_any_work(tmp_path):
    """Lightning's FSDPStrategy refuses CPU only after the model is built (minutes at 7B): we refuse at once."""
    with pytest.raises(ValueError, match="fsdp needs GPUs"):
        _tiny("pretrain", tmp_path, "trainer.strategy=fsdp", "trainer.accelerator=cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fsdp needs GPUs"):
            run(_tiny("pretrain", tmp_path, "trainer.strategy=fsdp", "trainer.accelerator=auto"))
        assert not (tmp_path / "base").exists()  # nothing was built
