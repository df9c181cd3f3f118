"""Training the audio tokenizer with Lightning: run config, LightningModule, Trainer wiring.

`recipes/train_tokenizer.py` is a thin script over this module:

    config = load_config(TrainTokenizerConfig, yaml, overrides)
    config = prepare_data(config)                 # synthetic fixture if asked
    module = TokenizerModule(config)
    trainer = build_trainer(config)
    fit(trainer, module, config)                  # resume from last.ckpt, export at the end

Paper Sec. IV-A: AdamW at lr 1e-4, 4 GPUs. Training runs on precomputed VAE
latents (no VAE in memory). DDP across processes started by `torchrun`
(gloo on CPU, NCCL on GPU); the codebook statistics are reduced by the
quantizer itself, so DDP does not broadcast buffers. bf16-mixed on GPU,
32-bit on CPU.

Run directory:

    <output_dir>/config.yaml                 resolved run config
    <output_dir>/checkpoints/step=NNNNNN.ckpt every `checkpoint_every_n_steps` and at the end
    <output_dir>/checkpoints/last.ckpt        what a restart resumes from
    <output_dir>/logs/                       CSV metrics (and wandb/ if enabled)
    <output_dir>/export/                     `AudioTokenizer.save_pretrained` of the final model
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L
import torch

from lmmsn.config import save_config, to_dict
from lmmsn.data.latents import LatentDataConfig, latent_loader, write_fixture_shards
from lmmsn.tokenizer.model import TokenizerConfig, build_tokenizer, masked_mse

logger = logging.getLogger(__name__)


@dataclass
class OptimConfig:
    """AdamW and gradient clipping."""

    lr: float = 1e-4
    "Peak learning rate (paper: 1e-4)."
    betas: tuple[float, float] = (0.9, 0.999)
    "AdamW betas."
    weight_decay: float = 0.01
    "AdamW decoupled weight decay."
    warmup_steps: int = 0
    "Linear warm-up steps (then constant)."
    grad_clip: float = 1.0
    "Clip the global gradient norm to this (0: off)."

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ValueError("optim: lr must be > 0; weight_decay, warmup_steps, grad_clip >= 0")


@dataclass
class TrainerConfig:
    """Lightning Trainer settings."""

    max_steps: int = 100_000
    "Optimizer steps of the whole run (a resumed run continues up to this)."
    val_every_n_steps: int = 1000
    "Validate every this many steps (when validation shards exist)."
    limit_val_batches: int = 20
    "Validation batches per rank per validation."
    checkpoint_every_n_steps: int = 1000
    "Write checkpoints/step=NNNNNN.ckpt and last.ckpt this often (and at the end)."
    log_every_n_steps: int = 50
    "Logging interval."
    precision: str = "auto"
    "Lightning precision; auto = bf16-mixed on GPU, 32-true on CPU."
    accelerator: str = "auto"
    "Lightning accelerator (auto, cpu, gpu)."
    seed: int = 0
    "Seed of initialisation and noise."
    progress_bar: bool = True
    "Show Lightning's progress bar."

    def __post_init__(self) -> None:
        if min(self.max_steps, self.val_every_n_steps, self.checkpoint_every_n_steps, self.log_every_n_steps) < 1:
            raise ValueError("trainer: max_steps and the *_every_n_steps intervals must be >= 1")
        if self.limit_val_batches < 0:
            raise ValueError("trainer.limit_val_batches must be >= 0")


@dataclass
class WandbConfig:
    """Weights & Biases logging (off by default; honours WANDB_MODE=offline)."""

    enabled: bool = False
    "Log to wandb as well as CSV."
    project: str = "lmmsn-tokenizer"
    "wandb project."
    name: str | None = None
    "Run name (None: wandb's)."
    offline: bool = False
    "Force offline mode (WANDB_MODE=offline does the same)."


@dataclass
class TrainTokenizerConfig:
    """A tokenizer training run."""

    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    "The tokenizer (defaults: paper sizes)."
    data: LatentDataConfig = field(default_factory=lambda: LatentDataConfig(fixture_dir="runs/fixture"))
    "Latent shards and batching."
    optim: OptimConfig = field(default_factory=OptimConfig)
    "Optimiser."
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    "Trainer."
    wandb: WandbConfig = field(default_factory=WandbConfig)
    "Optional wandb logger."
    output_dir: str = "runs/tokenizer"
    "Run directory: config, checkpoints, logs, export."
    resume: bool = True
    "Resume from <output_dir>/checkpoints/last.ckpt when it exists."


class TokenizerModule(L.LightningModule):
    """LightningModule around `AudioTokenizer.compute_loss` (latent-only, no VAE).

    Args:
        config: the run config (saved into checkpoints as plain hyper-parameters).
    """

    def __init__(self, config: TrainTokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters(to_dict(config))
        self.model = build_tokenizer(config.model, with_vae=False)

    def _log_step(self, prefix: str, out, batch_size: int) -> None:
        on_step = prefix == "train"
        vq = out.quantizer
        metrics = {
            f"{prefix}/loss": out.loss,
            f"{prefix}/recon_loss": out.recon_loss,
            f"{prefix}/vq_loss": vq.loss,
            f"{prefix}/perplexity": vq.perplexity,
            f"{prefix}/codes_used": vq.used_fraction,
        }
        if on_step:
            metrics["train/codes_active"] = vq.active_fraction
            metrics["train/codes_replaced"] = float(vq.replaced)
        self.log_dict(
            metrics, on_step=on_step, on_epoch=not on_step, sync_dist=not on_step, batch_size=batch_size,
            prog_bar=False,
        )
        self.log(f"{prefix}/loss_pb", out.loss, on_step=on_step, on_epoch=not on_step, prog_bar=True,
                 logger=False, sync_dist=not on_step, batch_size=batch_size)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model.compute_loss(batch["latents"], batch["mask"])
        self._log_step("train", out, batch["latents"].shape[0])
        return out.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        latents, mask = batch["latents"], batch["mask"]
        out = self.model.compute_loss(latents, mask)
        self._log_step("val", out, latents.shape[0])
        # The real reconstruction error: codes -> ODE (or one pass) -> latents, fixed noise.
        gen = torch.Generator(device=latents.device).manual_seed(batch_idx)
        recon = self.model.decode_latents(out.quantizer.codes, generator=gen, mask=mask)
        self.log("val/latent_mse", masked_mse(recon, latents, mask), on_epoch=True, sync_dist=True,
                 batch_size=latents.shape[0], prog_bar=True)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optim = self.config.optim
        optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
        warmup = optim.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def train_dataloader(self):
        # Called after a checkpoint is restored: the step seeds a fresh data order.
        data = self.config.data
        return latent_loader(data.train_shards, data, self.model.latent_dim, train=True, start=self.trainer.global_step)

    def val_dataloader(self):
        data = self.config.data
        if data.val_shards is None:
            return []
        return latent_loader(data.val_shards, data, self.model.latent_dim, train=False)


def prepare_data(config: TrainTokenizerConfig) -> TrainTokenizerConfig:
    """Point `data.train_shards` / `val_shards` at the synthetic fixture when no shards are given."""
    data = config.data
    if data.train_shards is not None:
        return config
    train, val = write_fixture_shards(data.fixture_dir, data, config.model.latent_dim, config.model.frame_rate)
    return replace(config, data=replace(data, train_shards=train, val_shards=data.val_shards or val))


def _world() -> tuple[int, int]:
    """(devices per node, nodes) from torchrun's environment (1, 1 without torchrun)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    world = int(os.environ.get("WORLD_SIZE", str(local)))
    return local, max(1, world // local)


def build_trainer(config: TrainTokenizerConfig) -> L.Trainer:
    """A Trainer with DDP when launched by torchrun with several processes, checkpoints and loggers."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.strategies import DDPStrategy

    tc, out = config.trainer, Path(config.output_dir)
    devices, nodes = _world()
    gpu = torch.cuda.is_available() and tc.accelerator in ("auto", "gpu", "cuda")
    precision = tc.precision if tc.precision != "auto" else ("bf16-mixed" if gpu else "32-true")
    strategy = "auto"
    if devices * nodes > 1:
        strategy = DDPStrategy(process_group_backend="nccl" if gpu else "gloo", broadcast_buffers=False)
    loggers = [CSVLogger(str(out), name="logs")]
    if config.wandb.enabled:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=config.wandb.project, name=config.wandb.name, save_dir=str(out),
                                   offline=config.wandb.offline))
    checkpoint = ModelCheckpoint(
        dirpath=str(out / "checkpoints"), filename="step={step:06d}", auto_insert_metric_name=False,
        every_n_train_steps=tc.checkpoint_every_n_steps, save_top_k=-1, save_last=True,
        enable_version_counter=False,
    )
    has_val = config.data.val_shards is not None and tc.limit_val_batches > 0
    return L.Trainer(
        accelerator=("gpu" if gpu else "cpu") if tc.accelerator == "auto" else tc.accelerator,
        devices=devices,
        num_nodes=nodes,
        strategy=strategy,
        precision=precision,
        max_steps=tc.max_steps,
        max_epochs=-1,
        val_check_interval=tc.val_every_n_steps if has_val else None,
        check_val_every_n_epoch=None,
        limit_val_batches=tc.limit_val_batches if has_val else 0,
        num_sanity_val_steps=0,
        gradient_clip_val=config.optim.grad_clip or None,
        log_every_n_steps=tc.log_every_n_steps,
        callbacks=[checkpoint, LearningRateMonitor(logging_interval="step")],
        logger=loggers,
        enable_progress_bar=tc.progress_bar,
        default_root_dir=str(out),
        use_distributed_sampler=False,  # the shard readers split by rank themselves
    )


def fit(trainer: L.Trainer, module: TokenizerModule, config: TrainTokenizerConfig) -> Path:
    """Train (resuming from last.ckpt if allowed), checkpoint the end state, export; returns the export dir."""
    out = Path(config.output_dir)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    counts = module.model.parameter_counts()
    logger.info("tokenizer parameters: %s; bitrate %.1f bit/s", counts, module.model.bitrate)
    trainer.fit(module, ckpt_path="last" if config.resume else None)
    # The end state, whatever max_steps is (the periodic callback only fires on multiples).
    step_ckpt = out / "checkpoints" / f"step={trainer.global_step:06d}.ckpt"
    trainer.save_checkpoint(step_ckpt)
    trainer.save_checkpoint(out / "checkpoints" / "last.ckpt")
    export = out / "export"
    if trainer.is_global_zero:
        module.model.save_pretrained(export)
    trainer.strategy.barrier()
    return export


__all__ = [
    "OptimConfig",
    "TokenizerModule",
    "TrainTokenizerConfig",
    "TrainerConfig",
    "WandbConfig",
    "build_trainer",
    "fit",
    "prepare_data",
]
