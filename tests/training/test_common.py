"""lmmsn/training/common.py: clean trainable names under wrappers, strict trainable loading, resume, world, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmmsn.config import ConfigError
from lmmsn.training import common


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from lmmsn.llm.model import AudioLM, LoraConfig
    from lmmsn.llm.tiny import write_tiny_base

    base = write_tiny_base(tmp_path_factory.mktemp("base") / "base")

    def build() -> AudioLM:
        torch.manual_seed(0)
        return AudioLM.from_base(base, 8, LoraConfig(r=2, alpha=4, dropout=0.0))

    return build


def test_trainable_names_are_clean_under_checkpoint_and_compile_wrappers(tiny_lm):
    """Wrapped layers (activation checkpointing, as FSDP1's auto-wrap nests `_fsdp_wrapped_module.` the same way)
    must give the names of the unwrapped model: the checkpoint filter and the export key on them."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    plain = tiny_lm()
    expected = common.trainable_names(plain.model, "model.")
    assert any(".lora_A." in k for k in expected) and any("trainable_tokens_delta" in k for k in expected)
    wrapped = tiny_lm()
    layers = wrapped.model.get_base_model().model.layers
    for i, layer in enumerate(layers):
        layers[i] = checkpoint_wrapper(layer)
    raw = {f"model.{n}" for n, p in wrapped.model.named_parameters() if p.requires_grad}
    assert raw != expected and any("_checkpoint_wrapped_module." in k for k in raw)  # what the old code keyed on
    assert common.trainable_names(wrapped.model, "model.") == expected
    assert common.clean_name("a._fsdp_wrapped_module.b._checkpoint_wrapped_module.c._orig_mod.w") == "a.b.c.w"


def test_check_trainable_state_names_missing_and_unexpected():
    expected = {"model.a", "model.b"}
    common.check_trainable_state({"model.a": 0, "model._fsdp_wrapped_module.b": 0}, expected, "x.ckpt")
    with pytest.raises(KeyError, match=r"x.ckpt: .*1 missing .*model.b.*0 unexpected"):
        common.check_trainable_state({"model.a": 0}, expected, "x.ckpt")
    with pytest.raises(KeyError, match=r"0 missing .*1 unexpected .*model.c"):
        common.check_trainable_state({"model.a": 0, "model.b": 0, "model.c": 0}, expected, "x.ckpt")


def test_load_trainable_is_strict_and_loads_every_tensor(tiny_lm):
    """The sharded export rebuilds the model (with the init_from adapter) and loads the checkpoint into it:
    every trainable tensor must come from the checkpoint, and a missing one is an error, not a silent keep."""
    from lmmsn.training.llm_module import load_trainable

    trained, fresh = tiny_lm(), tiny_lm()
    with torch.no_grad():
        for p in trained.trainable_parameters().values():
            p.add_(1.0)
    state = {f"model.{n}": p.detach().clone() for n, p in trained.trainable_parameters().items()}
    partial = dict(state)
    dropped = next(k for k in partial if ".lora_B." in k)
    del partial[dropped]
    with pytest.raises(KeyError, match="1 missing"):
        load_trainable(fresh, partial, "final.ckpt")
    load_trainable(fresh, state, "final.ckpt")
    for name, p in fresh.trainable_parameters().items():
        assert torch.equal(p, state[f"model.{name}"]), name
    frozen = {n: p for n, p in fresh.model.named_parameters() if not p.requires_grad}
    untouched = {n: p for n, p in tiny_lm().model.named_parameters() if not p.requires_grad}
    assert all(torch.equal(frozen[n], untouched[n]) for n in frozen)  # only trainable tensors were written


def test_resume_checkpoint(tmp_path):
    config = common.RunConfig(output_dir=str(tmp_path))
    assert common.resume_checkpoint(config) is None  # 'last' without a checkpoint: start over
    last = tmp_path / "checkpoints/last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"")
    assert common.resume_checkpoint(config) == str(last)
    assert common.resume_checkpoint(common.RunConfig(output_dir=str(tmp_path), resume=None)) is None
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        common.resume_checkpoint(common.RunConfig(output_dir=str(tmp_path), resume=str(tmp_path / "gone.ckpt")))


def test_world_comes_from_torchrun_and_explicit_sizes_must_match(monkeypatch, tmp_path):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert common.torchrun_world() == (1, 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("WORLD_SIZE", "6")
    assert common.torchrun_world() == (2, 3)
    config = common.RunConfig(output_dir=str(tmp_path), trainer=common.TrainerConfig(devices=1))
    with pytest.raises(ValueError, match="trainer.devices=1, but torchrun started 2"):
        common.build_trainer(config)


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)  # noqa: NPY002 (the global stream is what is saved)
    state = common.rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())  # noqa: NPY002
    torch.rand(5)
    common.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1] and np.random.rand() == expected[2]  # noqa: NPY002


def test_recipe_main_reports_config_errors_in_one_line(tmp_path, capsys):
    yaml = tmp_path / "run.yaml"
    yaml.write_text("trainer: {max_stepz: 3}\n")
    ran = []
    assert common.recipe_main(["--config", str(yaml)], common.RunConfig, ran.append, None) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: ") and "trainer.max_stepz" in err and "max_steps" in err and not ran

    def refuse(config):
        raise ConfigError("not this one")

    yaml.write_text("seed: 1\n")
    assert common.recipe_main(["--config", str(yaml)], common.RunConfig, ran.append, None, check=refuse) == 2
    assert "not this one" in capsys.readouterr().err and not ran
    assert common.recipe_main(["--config", str(yaml), "seed=5"], common.RunConfig, ran.append, None) == 0
    assert ran[0].seed == 5 and ran[0].resume == "last"


def test_recipe_main_reports_config_errors_raised_by_the_run_in_one_line(tmp_path, capsys):
    """A ConfigError the run itself raises (a resume checkpoint, a recipe's late check) is one line, exit 2."""
    yaml = tmp_path / "run.yaml"
    yaml.write_text("seed: 1\n")

    def run(config):
        raise ConfigError(f"{yaml}: 'data.train_shards'\nmatches no file")

    assert common.recipe_main(["--config", str(yaml)], common.RunConfig, run, None) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "'data.train_shards' matches no file" in err


class _Planted:
    """Unpickling calls open(path, "w"): a file appears when a checkpoint loader runs pickled code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _plant(tmp_path: Path) -> tuple[Path, Path]:
    marker, ckpt = tmp_path / "pwned", tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Planted(marker)}, ckpt)
    torch.load(ckpt, weights_only=False).get("payload").close()  # the payload works: a pickle load runs it
    assert marker.is_file()
    marker.unlink()
    return marker, ckpt


def _boring_fit(tmp_path: Path):
    from lightning.pytorch.demos.boring_classes import BoringModel

    config = common.RunConfig(output_dir=str(tmp_path / "run"), trainer=common.TrainerConfig(
        max_steps=1, accelerator="cpu", progress_bar=False))
    return common.build_trainer(config), BoringModel(), config


def test_resume_never_unpickles_code_even_when_the_environment_allows_it(tmp_path, monkeypatch, capsys):
    marker, ckpt = _plant(tmp_path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    trainer, module, config = _boring_fit(tmp_path)
    with pytest.raises(ConfigError, match=r"resume checkpoint .*last\.ckpt: not a weights-only checkpoint"):
        common.fit(trainer, module, config)
    assert not marker.exists()

    # Through the recipe command line: one line naming the file, exit 2, nothing run.
    (tmp_path / "run.yaml").write_text(f"output_dir: {tmp_path / 'run'}\n")

    def run(cfg):
        common.fit(*_boring_fit(tmp_path))

    assert common.recipe_main(["--config", str(tmp_path / "run.yaml")], common.RunConfig, run, None) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(ckpt) in err and "Traceback" not in err and not marker.exists()


def test_lightning_is_told_weights_only_without_the_pre_check(tmp_path, monkeypatch):
    """Second line of defence: Lightning's own load of the resume checkpoint is weights-only as well."""
    import pickle

    marker, _ = _plant(tmp_path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    monkeypatch.setattr(common, "check_resume_checkpoint", lambda path: None)
    with pytest.raises(pickle.UnpicklingError):
        common.fit(*_boring_fit(tmp_path))
    assert not marker.exists()


@pytest.mark.gpu
def test_fsdp2_on_gpu_bf16_mixed_trains_checkpoints_and_exports(tmp_path):
    """The real path on a GPU: FSDP2 with NCCL, bf16 base + fp32 peft params under bf16-mixed autocast."""
    from safetensors.torch import load_file

    from lmmsn.config import load_config
    from lmmsn.training.llm_module import TrainLLMConfig, run

    root = Path(__file__).resolve().parents[2]
    overrides = [f"model.base_model={tmp_path}/base", f"data.train_shards={tmp_path}/shards", "model.dtype=bfloat16",
                 "trainer.strategy=fsdp", "trainer.accelerator=gpu", "trainer.precision=bf16-mixed",
                 "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=2", f"output_dir={tmp_path}/run"]
    result = run(load_config(TrainLLMConfig, root / "recipes/configs/llm/tiny_pretrain.yaml", overrides))
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3 and ckpt["state_dict"]
    assert all("_fsdp_wrapped_module" not in k for k in ckpt["state_dict"])
    adapter = load_file(result.export / "adapter/adapter_model.safetensors")
    assert adapter and all(torch.isfinite(v.float()).all() for v in adapter.values())
