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
from lmmsn.training.tokenizer_module import TrainTokenizerConfig, run
from tests.recipes.run_logs import step_losses

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
    # The second launch logged exactly the two steps after the first launch's [0, 1] (the end-of-run
    # checkpoint is written inside the loop; one written after fit returned made them [3, 4]).
    assert _logged_steps(out, 1) == [2, 3]
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


def test_resume_equals_straight_run(tmp_path):
    """torchtune-style: 2N steps straight == N steps + resume + N steps (loss per step and exported weights).

    N = 3 is no multiple of the checkpoint interval (the end-of-run checkpoint is what resumes), the
    fixture has 4 batches per epoch (the resumed half restarts mid-epoch and crosses into the next), the
    flow-matching noise continues from the restored random state, and validation at step 2 / 4 must not
    move it."""
    from safetensors.torch import load_file

    n = 3
    common = [f"data.fixture_dir={tmp_path / 'fixture'}", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
              "trainer.checkpoint_every_n_steps=2", "trainer.val_every_n_steps=2", "optim.min_lr_ratio=1.0",
              "optim.warmup_steps=2"]

    def launch(out: str, steps: int):
        return run(load_config(TrainTokenizerConfig, ROOT / "recipes/configs/tokenizer/tiny.yaml",
                               [*common, f"output_dir={tmp_path / out}", f"trainer.max_steps={steps}"]))

    straight = launch("straight", 2 * n)
    first = launch("halves", n)
    assert first.global_step == n and _ckpt(tmp_path / "halves/checkpoints/last.ckpt")["global_step"] == n
    resumed = launch("halves", 2 * n)
    assert resumed.global_step == 2 * n
    a, b = step_losses(tmp_path / "straight"), step_losses(tmp_path / "halves")
    assert sorted(a) == sorted(b) == list(range(2 * n))
    torch.testing.assert_close(torch.tensor([b[s] for s in range(2 * n)]), torch.tensor([a[s] for s in range(2 * n)]))
    wa, wb = load_file(straight.export / "model.safetensors"), load_file(resumed.export / "model.safetensors")
    assert sorted(wa) == sorted(wb)
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], msg=key)


def _fixture_sound_set(root: Path) -> Path:
    """A labelled sound set in data_prep.open_audio's manifest format: 3 categories x 2 sources of made-up audio."""
    import json

    import soundfile

    rate, rows = 16000, []
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(int(0.8 * rate)) / rate
    for category, make in {
        "tone": lambda i: 0.3 * torch.sin(2 * torch.pi * (200 + 40 * i) * t),
        "noise": lambda i: 0.1 * torch.randn(t.shape, generator=gen),
        "click": lambda i: (torch.rand(t.shape, generator=gen) > 0.995).float() * 0.8,
    }.items():
        for i in range(8):
            source = "src-a" if i < 5 else "src-b"
            path = root / "packages" / source / f"{category}{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), make(i).numpy(), rate)
            rows.append({"path": str(path.relative_to(root)), "source": source, "category": category,
                         "label": category, "caption": f"a {category}", "license": "test"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_open_audio_path_shards_trains_and_writes_a_heldout_table(tmp_path):
    """The demo path of the recipe on a tiny labelled set: split -> shards -> train -> export -> eval table + audio."""
    import json

    manifest = _fixture_sound_set(tmp_path / "set")
    out = tmp_path / "run"
    _run(TORCHRUN + ["--nproc_per_node=1"], out, "trainer.max_steps=2",
         f"open_audio={{root: {tmp_path / 'set'}, manifest: {manifest}, holdout_sources: [src-b], heldout_per_category: 3, num_workers: 0}}",
         "evaluate={per_category: 3, min_clips: 3, temperatures: [1.0], examples: 1}", "data.max_frames=8")
    split = json.loads((tmp_path / "set/split/split.json").read_text())
    assert split["counts"]["heldout"] == {"click": 3, "noise": 3, "tone": 3}  # src-b whole: 3 clips per category
    held = [json.loads(line)["path"] for line in (tmp_path / "set/split/heldout.jsonl").read_text().splitlines()]
    assert all("src-b" in p for p in held)
    shards = tmp_path / "set/shards-tiny/train"
    index = json.loads((shards / "index.json").read_text())
    assert index["num_samples"] == 15  # the 5 training clips of each category, none held out
    result = json.loads((out / "eval/reconstruction.json").read_text())
    rows = result["tokenizers"]
    assert {"this tokenizer", "mean latent (0 bit/s baseline)", "resynthesis (frontend ceiling)"} <= set(rows)
    assert any(name.startswith("k-means 32") for name in rows)
    assert set(rows["this tokenizer"]["datasets"]) == {"click", "noise", "tone"}
    assert all("logmel_l1" in d for d in rows["this tokenizer"]["datasets"].values())
    assert (out / "eval/reconstruction.md").is_file() and (out / "eval/codebook_usage.png").is_file()
    assert sorted(p.name for p in (out / "eval/audio/original").iterdir()) == ["click_00.wav", "noise_00.wav", "tone_00.wav"]
