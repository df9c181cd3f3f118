"""LLM recipes: configs load; tiny pretrain -> finetune on CPU lowers the loss and exports; exact resume; 2-process
gloo DDP and FSDP2."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmmsn.config import load_config
from lmmsn.training.llm_module import TrainLLMConfig, run
from tests.recipes.run_logs import step_losses

ROOT = Path(__file__).resolve().parents[2]
# the YAMLs of the two LLM recipes (their header is the command that runs them)
CONFIGS = sorted(p for p in (ROOT / "recipes/configs/llm").glob("*.yaml")
                 if any(r in p.read_text().splitlines()[0] for r in ("pretrain_llm.py", "finetune_llm.py")))
EXPORT_FILES = ["config.yaml", "format_version", "audio_vocabulary.json", "adapter/adapter_config.json",
                "adapter/adapter_model.safetensors", "text_tokenizer/tokenizer.json"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_llm_config_loads(path):
    cfg = load_config(TrainLLMConfig, path)
    assert cfg.mode == ("pretrain" if "pretrain" in path.name else "finetune")
    assert path.read_text().startswith("# ") and f"--config recipes/configs/llm/{path.name}" in path.read_text()
    if path.name.startswith("paper"):
        assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.codebook_size) == (64, 128, 8196)
        assert (cfg.loss.audio_weight, cfg.loss.z_loss_coef) == (10.0, 1e-4)


def _losses(output_dir: Path, key: str) -> list[float]:
    (metrics,) = output_dir.glob("logs/*/metrics.csv")
    with metrics.open() as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def _tiny(name: str, tmp: Path, *extra: str) -> TrainLLMConfig:
    overrides = [f"model.base_model={tmp}/base", f"data.train_shards={tmp}/shards_{name}",
                 f"output_dir={tmp}/{name}", *extra]
    return load_config(TrainLLMConfig, ROOT / f"recipes/configs/llm/tiny_{name}.yaml", overrides)


def _drop(values: list[float]) -> tuple[float, float]:
    return sum(values[:3]) / 3, sum(values[-3:]) / 3


def test_tiny_pretrain_then_finetune(tmp_path):
    pre = run(_tiny("pretrain", tmp_path, "trainer.max_steps=12"))
    for name in EXPORT_FILES:
        assert (pre.export / name).is_file(), name
    first, last = _drop(_losses(tmp_path / "pretrain", "train/loss"))
    assert last < first, (first, last)

    # generation_fraction=0: the fixture's random codes cannot be learned, and their 10x-weighted audio
    # targets would drown the text-loss trend this checks in 12 steps (the mix itself: tests/llm/test_data_mix.py)
    ft = run(_tiny("finetune", tmp_path, "trainer.max_steps=12", f"model.init_from={pre.export}",
                   "data.batch.generation_fraction=0"))
    for name in [*EXPORT_FILES, "merged/config.json", "merged/model.safetensors", "merged/audio_vocabulary.json"]:
        assert (ft.export / name).is_file(), name
    first, last = _drop(_losses(tmp_path / "finetune", "train/text_loss"))
    assert last < first, (first, last)

    # resume continues from the last checkpoint instead of starting over
    run(_tiny("finetune", tmp_path, "trainer.max_steps=14", f"model.init_from={pre.export}", "resume=last",
              "data.batch.generation_fraction=0"))
    steps = [int(s) for s in _steps(tmp_path / "finetune")]
    assert max(steps) == 13 and 12 in steps


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_resume_equals_straight_run(tmp_path, mode):
    """torchtune-style: 2N steps straight == N steps + resume + N steps (loss per step and trainable weights).

    N = 3 stops mid-epoch (4 batches per epoch), so the data position is restored, and the
    resumed half crosses into the next epoch (its new shard and batch order)."""
    from safetensors.torch import load_file

    n = 3
    # optim.min_lr_ratio=1: warmup then a constant rate, so the first half's schedule (max_steps=N)
    # is the straight run's (a cosine decay would depend on max_steps).
    extra = ["trainer.checkpoint_every_n_steps=3", "data.batch.batch_size=4", "optim.min_lr_ratio=1.0"]
    if mode == "finetune":
        pre = run(_tiny("pretrain", tmp_path, "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=2"))
        extra.append(f"model.init_from={pre.export}")
    straight = run(_tiny(mode, tmp_path, f"trainer.max_steps={2 * n}", *extra,
                         f"output_dir={tmp_path}/straight"))
    run(_tiny(mode, tmp_path, f"trainer.max_steps={n}", *extra, f"output_dir={tmp_path}/halves"))
    resumed = run(_tiny(mode, tmp_path, f"trainer.max_steps={2 * n}", *extra, "resume=last",
                        f"output_dir={tmp_path}/halves"))
    a, b = step_losses(tmp_path / "straight"), step_losses(tmp_path / "halves")
    assert sorted(a) == sorted(b) == list(range(2 * n))
    torch.testing.assert_close(torch.tensor([b[s] for s in range(2 * n)]), torch.tensor([a[s] for s in range(2 * n)]))
    wa = load_file(straight.export / "adapter/adapter_model.safetensors")
    wb = load_file(resumed.export / "adapter/adapter_model.safetensors")
    assert sorted(wa) == sorted(wb) and len(wa) > 4
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], msg=key)
    init = load_file(pre.export / "adapter/adapter_model.safetensors") if mode == "finetune" else None
    if init is not None:  # fine-tuning moved the weights it continued from
        assert any(not torch.equal(init[k], wa[k]) for k in wa)


def _steps(output_dir: Path) -> list[str]:
    rows = []
    for metrics in output_dir.glob("logs/*/metrics.csv"):
        with metrics.open() as f:
            rows += [r["step"] for r in csv.DictReader(f) if r.get("train/loss")]
    return rows


def test_tiny_pretrain_two_process_gloo(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node=2", "recipes/pretrain_llm.py",
           "--config", "recipes/configs/llm/tiny_pretrain.yaml", "trainer.strategy=ddp",
           "trainer.max_steps=3", f"model.base_model={tmp_path}/base", f"data.train_shards={tmp_path}/shards",
           f"output_dir={tmp_path}/out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in EXPORT_FILES:
        assert (tmp_path / "out/export" / name).is_file(), name
    assert len(_losses(tmp_path / "out", "train/loss")) == 3


def _torchrun(tmp_path: Path, recipe: str, config: str, *overrides: str, nproc: int = 2) -> str:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), f"--nproc_per_node={nproc}", f"recipes/{recipe}", "--config", f"recipes/configs/llm/{config}",
           *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stderr


@pytest.mark.slow  # three recipe runs, two of them 2-process torchrun launches: ~1.5 min on 2 cores
def test_fsdp2_two_process_gloo_checkpoints_resumes_and_exports(tmp_path):
    """trainer.strategy=fsdp (FSDP2) on 2 CPU processes, bf16 base + fp32 LoRA / new rows (FSDP1 refuses the mix):
    checkpoints hold exactly the single-process trainable keys, a relaunch resumes, the export moved off init_from."""
    from safetensors.torch import load_file

    from lmmsn.training.llm_module import AudioLMModule, build_audio_lm

    pre = run(_tiny("pretrain", tmp_path, "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=2"))
    ft = [f"model.base_model={tmp_path}/base", f"data.train_shards={tmp_path}/shards_finetune",
          f"output_dir={tmp_path}/fsdp", f"model.init_from={pre.export}", "model.dtype=bfloat16",
          "trainer.strategy=fsdp", "trainer.checkpoint_every_n_steps=2", "data.batch.batch_size=2"]
    cfg = _tiny("finetune", tmp_path, *ft)
    single = AudioLMModule(build_audio_lm(cfg.model), cfg)
    assert {p.dtype for p in single.model.parameters()} == {torch.bfloat16, torch.float32}
    expected = single.trainable_keys()
    assert any(".lora_A." in k for k in expected) and any("trainable_tokens_delta" in k for k in expected)

    log = _torchrun(tmp_path, "finetune_llm.py", "tiny_finetune.yaml", *ft, "trainer.max_steps=2")
    assert "FSDP2: fully_shard on 2 LlamaDecoderLayer layers and the root, over 2 processes" in log
    first = torch.load(tmp_path / "fsdp/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert first["global_step"] == 2 and set(first["state_dict"]) == expected
    assert all(v.dtype == torch.float32 for v in first["state_dict"].values())

    _torchrun(tmp_path, "finetune_llm.py", "tiny_finetune.yaml", *ft, "trainer.max_steps=4")  # resume: last
    last = torch.load(tmp_path / "fsdp/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4 and set(last["state_dict"]) == expected
    moments = last["optimizer_states"][0]["state"]
    assert moments and all(float(m["step"]) == 4 for m in moments.values())  # AdamW continued from step 2
    assert any(not torch.equal(first["state_dict"][k], last["state_dict"][k]) for k in expected)

    init = load_file(pre.export / "adapter/adapter_model.safetensors")
    exported = load_file(tmp_path / "fsdp/export/adapter/adapter_model.safetensors")
    assert sorted(exported) == sorted(init)
    assert any(not torch.equal(init[k], exported[k].to(init[k].dtype)) for k in init)
    # the export holds the final checkpoint's tensors
    peft_name = next(k for k in expected if ".lora_B." in k)
    saved = peft_name.removeprefix("model.base_model.model.").replace(".default", "")
    torch.testing.assert_close(exported[f"base_model.model.{saved}"].float(), last["state_dict"][peft_name].float())
