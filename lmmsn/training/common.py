"""The training scaffold shared by the audio tokenizer and the audio LM.

Both families train through the same pieces, with the same names and meaning:

    config = recipe's RunConfig subclass      seed, output_dir, resume, optim, trainer, logger (+ model, data, ...)
    trainer = build_trainer(config)           torchrun world, DDP / FSDP2, checkpoints, CSV (+ wandb) logs
    result = fit(trainer, module, config)     resume, train, end-state checkpoints, rank-0 export
    recipe_main(argv, Config, run, ...)       `--config FILE [key=value ...]`, config errors exit 2

Run directory (`output_dir`):

    config.yaml                       the resolved run config
    checkpoints/step=NNNNNN.ckpt      every `trainer.checkpoint_every_n_steps` and at the end
    checkpoints/last.ckpt             what `resume: last` continues from
    logs/version_N/metrics.csv        one CSV per launch (and wandb/ when `logger.wandb`)
    export/                           the family's exported model (`from_pretrained` reads it)

Distributed runs come from `torchrun` (one process per device, any number of
nodes with a c10d rendezvous); devices and nodes are read from its
environment unless the config names them. `trainer.strategy`:

- `auto`: one process as is, several with DDP (gloo on CPU, NCCL on GPU).
- `ddp`: DDP even for one process.
- `fsdp`: FSDP2 (`torch.distributed.fsdp.fully_shard`, through Lightning's
  `ModelParallelStrategy`); the module shards itself in `configure_model`.
  FSDP2 shards every parameter on its own, so frozen bf16 base weights and the
  fp32 LoRA / new-row parameters peft adds live side by side (FSDP1's flat
  parameters refuse mixed dtypes), and state-dict names stay clean (no
  `_fsdp_wrapped_module.` prefixes). It runs on CPU with gloo too, which the
  tests use. Checkpoints gather only the trainable tensors to rank 0.
  DeepSpeed ZeRO is not offered: it is not installed here, so nothing could
  test it, and its engine casts every parameter to one dtype and writes
  checkpoints as ZeRO shard folders, which our trainable-only checkpoints and
  strict export would have to be rebuilt around; FSDP2 covers the same need.

Several nodes need `output_dir` on a shared file system: rank 0 writes the
checkpoints every rank resumes from.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import lightning as L
import torch

from lmmsn.config import ConfigError, load_config, save_config

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Prefixes that module wrappers add to parameter names (FSDP1, activation checkpointing, torch.compile);
# checkpoint and export keys never carry them.
WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


# ---- config ---------------------------------------------------------------------------------------


@dataclass
class OptimConfig:
    """AdamW, linear warm-up then cosine decay (`lmmsn.training.schedule.warmup_cosine`), gradient clipping."""

    lr: float = 1e-4
    "Peak learning rate."
    betas: tuple[float, float] = (0.9, 0.999)
    "AdamW betas."
    weight_decay: float = 0.01
    "AdamW decoupled weight decay."
    warmup_steps: int = 0
    "Linear warm-up steps."
    min_lr_ratio: float = 1.0
    "After warm-up, cosine decay to lr x this at trainer.max_steps (1: constant)."
    grad_clip: float = 1.0
    "Clip the global gradient norm to this (0: off)."

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0) or self.weight_decay < 0 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ValueError("optim: lr must be finite and > 0; weight_decay, warmup_steps, grad_clip >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class TrainerConfig:
    """Lightning Trainer settings."""

    max_steps: int = 1000
    "Optimizer steps of the whole run (a resumed run continues up to this)."
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    "auto: gpu when CUDA is visible, else cpu."
    devices: int | Literal["auto"] = "auto"
    "Processes (devices) per node; auto: torchrun's LOCAL_WORLD_SIZE (1 without torchrun)."
    num_nodes: int | Literal["auto"] = "auto"
    "Nodes; auto: torchrun's WORLD_SIZE / LOCAL_WORLD_SIZE (1 without torchrun)."
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    "auto: DDP when there are several processes; ddp; fsdp: FSDP2 sharding (the LLM; module docstring)."
    precision: str = "auto"
    "Lightning precision; auto: bf16-mixed on GPU, 32-true on CPU."
    accumulate_grad_batches: int = 1
    "Batches per optimizer step."
    log_every_n_steps: int = 50
    "Logging interval."
    checkpoint_every_n_steps: int = 1000
    "Write checkpoints/step=NNNNNN.ckpt and last.ckpt this often (and at the end)."
    keep_checkpoints: int = -1
    "Keep the most recent this many step=NNNNNN.ckpt files (-1: all); last.ckpt is always kept."
    val_every_n_steps: int = 1000
    "Validate every this many steps (when the family has validation data)."
    limit_val_batches: int = 20
    "Validation batches per rank per validation."
    progress_bar: bool = True
    "Show Lightning's progress bar."

    def __post_init__(self) -> None:
        intervals = (self.max_steps, self.log_every_n_steps, self.checkpoint_every_n_steps, self.val_every_n_steps,
                     self.accumulate_grad_batches)
        if min(intervals) < 1:
            raise ValueError("trainer: max_steps, accumulate_grad_batches and the *_every_n_steps intervals must be >= 1")
        if self.limit_val_batches < 0 or self.keep_checkpoints < -1 or self.keep_checkpoints == 0:
            raise ValueError("trainer: limit_val_batches >= 0; keep_checkpoints -1 or >= 1")
        for name in ("devices", "num_nodes"):
            value = getattr(self, name)
            if value != "auto" and value < 1:
                raise ValueError(f"trainer.{name} must be auto or >= 1, got {value}")


@dataclass
class LoggerConfig:
    """Metrics loggers: CSV always (logs/version_N/metrics.csv), Weights & Biases when asked."""

    wandb: bool = False
    "Log to wandb as well (honours WANDB_MODE=offline)."
    project: str = "lmmsn"
    "wandb project."
    name: str | None = None
    "wandb run name (None: wandb's)."
    offline: bool = False
    "Force wandb's offline mode."


@dataclass
class RunConfig:
    """What every training run has; a family's run config adds model, data and its own sections."""

    seed: int = 0
    "Seed of initialisation, data order and noise."
    output_dir: str = "runs/run"
    "Run directory: config, checkpoints, logs, export (module docstring)."
    resume: str | None = "last"
    "last: continue from <output_dir>/checkpoints/last.ckpt when it exists; a .ckpt path: from it; null: start over."
    optim: OptimConfig = field(default_factory=OptimConfig)
    "Optimizer and schedule."
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    "Trainer."
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    "Metrics loggers."


@dataclass
class RunResult:
    """What a finished run reports."""

    export: Path
    "The exported model directory."
    global_step: int
    "Optimizer steps done (a resumed run counts its earlier steps)."
    metrics: dict[str, float]
    "The last logged value of every metric."


# ---- distributed world -----------------------------------------------------------------------------


def torchrun_world() -> tuple[int, int]:
    """(processes per node, nodes) from torchrun's environment; (1, 1) without torchrun."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    world = int(os.environ.get("WORLD_SIZE", str(local)))
    return local, max(1, world // local)


def clean_name(name: str) -> str:
    """A parameter name without the prefixes module wrappers insert (`WRAPPER_PREFIXES`)."""
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def trainable_names(module: torch.nn.Module, prefix: str = "") -> set[str]:
    """State-dict names of the trainable parameters of `module`, without wrapper prefixes."""
    return {prefix + clean_name(n) for n, p in module.named_parameters() if p.requires_grad}


def check_trainable_state(state: Mapping[str, Any], expected: set[str], where: str) -> None:
    """Raise KeyError unless `state` holds exactly the trainable tensors `expected` (names as `trainable_names`)."""
    keys = {clean_name(k) for k in state}
    missing, unexpected = sorted(expected - keys), sorted(keys - expected)
    if missing or unexpected:
        raise KeyError(f"{where}: trainable tensors do not match the model: {len(missing)} missing "
                       f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")


def _sharded_strategy(world_size: int, backend: str):
    """Lightning's ModelParallelStrategy (FSDP2) whose checkpoints hold only trainable tensors, on rank 0."""
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    class TrainableShardedStrategy(ModelParallelStrategy):
        """FSDP2 over all processes (no tensor parallelism); full, trainable-only, single-file checkpoints.

        The frozen base is rebuilt from the base model on load, so gathering it at every checkpoint
        (14 GB at 7B) would be wasted; `load_checkpoint` checks the trainable names before loading.
        """

        def lightning_module_state_dict(self) -> dict[str, Any]:
            options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
            return get_model_state_dict(self.model, options=options)

        def load_checkpoint(self, checkpoint_path, weights_only=None):
            state = torch.load(Path(self.broadcast(checkpoint_path)), map_location="cpu", mmap=True, weights_only=True)
            check_trainable_state(state["state_dict"], trainable_names(self.lightning_module), str(checkpoint_path))
            del state
            return super().load_checkpoint(checkpoint_path, weights_only=True)  # whatever the caller or the environment says

    return TrainableShardedStrategy(data_parallel_size=world_size, tensor_parallel_size=1,
                                    save_distributed_checkpoint=False, process_group_backend=backend)


def is_sharded(trainer: L.Trainer) -> bool:
    """True when the trainer runs FSDP2 (parameters are DTensor shards; the module must export from a checkpoint)."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    return isinstance(trainer.strategy, ModelParallelStrategy)


# ---- the LightningModule side -----------------------------------------------------------------------


def gather_from_ranks(obj: Any) -> dict[int, Any]:
    """{rank: obj} from every rank; a collective, so call it on all ranks (as Lightning calls on_save_checkpoint)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return {0: obj}
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return dict(enumerate(gathered))


def derived_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from `seed` and `parts` (e.g. a rank), unrelated to seed + 1, seed + 2, ..."""
    import hashlib

    return int.from_bytes(hashlib.sha256(repr((seed, *parts)).encode()).digest()[:4], "little") & 0x7FFFFFFF


def rng_state() -> dict[str, Any]:
    """This process's random states (Python, NumPy's global stream, torch CPU and CUDA), as tensors and plain values
    that `torch.load(weights_only=True)` reads back."""
    import random

    import numpy as np

    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (the stream seed_everything seeds)
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    import random

    import numpy as np

    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrainingModule(L.LightningModule):
    """What the LightningModules of both families share.

    Subclasses set `self.config` (a `RunConfig`) and `self.model` (what trains), and implement
    `export(directory, last_checkpoint) -> Path` (called by `fit` on rank 0). Here:
    AdamW with warm-up + cosine (`adamw`), and the random states of every rank in the
    checkpoint, restored when training resumes, so noise draws (flow matching, dropout) continue
    as in a run that never stopped. Hooks that subclasses override call these through super().
    """

    _rng_states: dict[int, Any] | None = None

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw(self.model, self.config.optim, self.config.trainer.max_steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = gather_from_ranks(rng_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._rng_states = checkpoint.get("rng_states")

    def on_train_start(self) -> None:
        states, self._rng_states = self._rng_states, None
        if states is not None and self.global_rank in states:
            set_rng_state(states[self.global_rank])
        elif self.trainer.world_size > 1:
            # Every rank was seeded alike so that initialisations agree; from here on each rank draws its own
            # noise (flow-matching t and x0, dropout), or all ranks would draw the same noise for their batches.
            from lmmsn.seeding import seed_everything

            seed_everything(derived_seed(self.config.seed, "train", self.global_rank))

    def export(self, directory: Path, checkpoint: Path) -> Path:
        raise NotImplementedError


# ---- trainer ---------------------------------------------------------------------------------------


class EndOfRunCheckpoint(L.Callback):
    """Writes step=NNNNNN.ckpt and last.ckpt after the run's last optimizer step when the periodic checkpoint
    did not (max_steps not a multiple of the interval).

    Inside the loop, like the periodic ones, not after `Trainer.fit` returns: by then Lightning's loop state
    counts the epoch as finished, and a run resumed from it would skip the rest of that epoch.
    """

    def __init__(self, dirpath: Path, every_n_steps: int) -> None:
        self.dirpath, self.every_n_steps, self._saved = Path(dirpath), every_n_steps, -1

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step >= trainer.max_steps and step % self.every_n_steps and step != self._saved:
            self._saved = step
            trainer.save_checkpoint(self.dirpath / f"step={step:06d}.ckpt")
            trainer.save_checkpoint(self.dirpath / "last.ckpt")


def build_trainer(config: RunConfig, *, validate: bool = False) -> L.Trainer:
    """A Lightning Trainer for `config`: world from torchrun, strategy, checkpoints, CSV (+ wandb) logs.

    Args:
        config: the run config.
        validate: the family has validation data (validation every `trainer.val_every_n_steps`).
    """
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.strategies import DDPStrategy

    tc, out = config.trainer, Path(config.output_dir)
    local, nodes = torchrun_world()
    if "LOCAL_WORLD_SIZE" in os.environ:  # under torchrun, an explicit size must be what it started
        for name, started in (("devices", local), ("num_nodes", nodes)):
            if getattr(tc, name) not in ("auto", started):
                raise ValueError(f"trainer.{name}={getattr(tc, name)}, but torchrun started {started} "
                                 f"({'processes per node' if name == 'devices' else 'nodes'}); use auto")
    devices = local if tc.devices == "auto" else tc.devices
    nodes = nodes if tc.num_nodes == "auto" else tc.num_nodes
    gpu = tc.accelerator == "gpu" or (tc.accelerator == "auto" and torch.cuda.is_available())
    backend = "nccl" if gpu else "gloo"
    strategy: Any = "auto"
    if tc.strategy == "fsdp":
        strategy = _sharded_strategy(devices * nodes, backend)
    elif tc.strategy == "ddp" or devices * nodes > 1:
        # Buffers are not broadcast: the tokenizer's codebook statistics are all-reduced by the quantizer itself.
        strategy = DDPStrategy(process_group_backend=backend, broadcast_buffers=False)
    loggers: list[Any] = [CSVLogger(str(out), name="logs")]
    if config.logger.wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=config.logger.project, name=config.logger.name, save_dir=str(out),
                                   offline=config.logger.offline))
    checkpoint = ModelCheckpoint(
        dirpath=str(out / "checkpoints"), filename="step={step:06d}", auto_insert_metric_name=False,
        every_n_train_steps=tc.checkpoint_every_n_steps, save_last=True, enable_version_counter=False,
        save_top_k=tc.keep_checkpoints, monitor="step" if tc.keep_checkpoints > 0 else None, mode="max",
    )
    validate = validate and tc.limit_val_batches > 0
    return L.Trainer(
        accelerator="gpu" if gpu else "cpu",
        devices=devices,
        num_nodes=nodes,
        strategy=strategy,
        precision=tc.precision if tc.precision != "auto" else ("bf16-mixed" if gpu else "32-true"),
        max_steps=tc.max_steps,
        max_epochs=-1,
        accumulate_grad_batches=tc.accumulate_grad_batches,
        val_check_interval=tc.val_every_n_steps if validate else None,
        check_val_every_n_epoch=None,
        limit_val_batches=tc.limit_val_batches if validate else 0,
        num_sanity_val_steps=0,
        gradient_clip_val=config.optim.grad_clip or None,
        log_every_n_steps=tc.log_every_n_steps,
        callbacks=[checkpoint, EndOfRunCheckpoint(out / "checkpoints", tc.checkpoint_every_n_steps),
                   LearningRateMonitor(logging_interval="step")],
        logger=loggers,
        enable_progress_bar=tc.progress_bar,
        enable_model_summary=False,
        default_root_dir=str(out),
        use_distributed_sampler=False,  # the shard readers split by rank themselves
    )


def adamw(module: torch.nn.Module, optim: OptimConfig, max_steps: int) -> dict[str, Any]:
    """`configure_optimizers` of both families: AdamW over the trainable parameters, warm-up + cosine per step."""
    from lmmsn.training.schedule import warmup_cosine

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, optim.warmup_steps, max_steps, optim.min_lr_ratio))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


# ---- fit -------------------------------------------------------------------------------------------


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of the trainable parameters and the buffers of `module` (names and bytes)."""
    import hashlib

    digest = hashlib.sha256()
    tensors = [(n, p) for n, p in module.named_parameters() if p.requires_grad] + list(module.named_buffers())
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        digest.update(clean_name(name).encode())
        digest.update(tensor.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def check_replicas_agree(module: L.LightningModule) -> None:
    """Every data-parallel rank must end with the same trainable weights and buffers (RuntimeError otherwise).

    DDP keeps them equal by construction; what it does not reduce (the tokenizer's codebook statistics,
    reduced by the quantizer itself) or an uneven data stream would show here. A collective.
    """
    digests = gather_from_ranks(state_digest(module))
    logger.info("state digest on rank %d: %s", module.global_rank, digests[module.global_rank])
    if len(set(digests.values())) > 1:
        raise RuntimeError(f"ranks ended with different weights: {digests}")


def resume_checkpoint(config: RunConfig) -> str | None:
    """The checkpoint `config.resume` names (module docstring), or None to start over."""
    if config.resume is None:
        return None
    if config.resume == "last":
        last = Path(config.output_dir) / "checkpoints" / "last.ckpt"
        return str(last) if last.exists() else None
    if not Path(config.resume).exists():
        raise FileNotFoundError(f"resume={config.resume!r}: no such checkpoint")
    return config.resume


def check_resume_checkpoint(path: str | Path) -> None:
    """Refuse a resume checkpoint that a weights-only `torch.load` cannot read (ConfigError naming the file).

    A `.ckpt` is a pickle: with Lightning's default (`weights_only=None`) the environment decides, and
    `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1` makes a planted file run code. Every load of a resume checkpoint
    passes `weights_only=True` explicitly (torch honours an explicit value whatever the environment says);
    this check turns what it refuses into one line before Lightning starts.
    """
    import pickle

    try:
        torch.load(Path(path), map_location="cpu", mmap=True, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ConfigError(f"resume checkpoint {path}: not a weights-only checkpoint, not loaded ({first.strip()}); "
                          "resume=null starts over") from exc


def fit(trainer: L.Trainer, module: L.LightningModule, config: RunConfig,
        datamodule: L.LightningDataModule | None = None) -> RunResult:
    """Train (resuming as `config.resume` says), export on rank 0.

    The module exports itself: `module.export(directory, last_checkpoint) -> Path` (a sharded
    module rebuilds its weights from the checkpoint).
    """
    out = Path(config.output_dir)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    ckpt = resume_checkpoint(config)
    if ckpt is not None:
        check_resume_checkpoint(ckpt)
        logger.info("resuming from %s", ckpt)
    # weights_only=True whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says (check_resume_checkpoint).
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)  # end state checkpointed in the loop
    if trainer.world_size > 1 and not is_sharded(trainer):
        check_replicas_agree(module)
    trainer.strategy.barrier()
    export = out / "export"
    if trainer.is_global_zero:
        export = module.export(export, out / "checkpoints" / "last.ckpt")
        logger.info("exported %s", export)
    trainer.strategy.barrier()
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return RunResult(export=export, global_step=trainer.global_step, metrics=metrics)


# ---- command line ----------------------------------------------------------------------------------


def recipe_main(argv: Sequence[str] | None, config_cls: type[T], run: Callable[[T], int | None],
                description: str | None, check: Callable[[T], None] | None = None) -> int:
    """The command line of every recipe: `--config FILE [key=value ...]`.

    Args:
        argv: arguments (None: sys.argv[1:]).
        config_cls: the recipe's run config.
        run: trains with the loaded config; returns an exit status (None: 0).
        description: the recipe's docstring (shown by --help).
        check: raises ConfigError when the loaded config does not fit this recipe.

    Returns:
        The exit status: 2 for a config error (one line naming the file and the key), else run's.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML under recipes/configs/")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.max_steps=10")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(config_cls, args.config, args.overrides)
        if check is not None:
            check(config)
        # Settings that only the run can check (a resume checkpoint, the recipe's own checks) raise
        # ConfigError too: one line, not a traceback.
        return run(config) or 0
    except ConfigError as exc:
        print(f"config error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


__all__ = [
    "WRAPPER_PREFIXES",
    "EndOfRunCheckpoint",
    "LoggerConfig",
    "OptimConfig",
    "RunConfig",
    "RunResult",
    "TrainerConfig",
    "TrainingModule",
    "adamw",
    "build_trainer",
    "check_replicas_agree",
    "check_resume_checkpoint",
    "check_trainable_state",
    "derived_seed",
    "clean_name",
    "fit",
    "gather_from_ranks",
    "is_sharded",
    "recipe_main",
    "resume_checkpoint",
    "rng_state",
    "set_rng_state",
    "state_digest",
    "torchrun_world",
    "trainable_names",
]
