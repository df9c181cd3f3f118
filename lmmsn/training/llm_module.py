"""Lightning training of the audio LM: recipe config, LightningModule, data module, runner.

`recipes/pretrain_llm.py` and `recipes/finetune_llm.py` are thin wrappers
around `run_recipe(argv, mode)`:

    config (YAML + key=value) -> AudioLM (from the base model, or from a
    pretraining export for fine-tuning) -> AudioLMModule + LLMDataModule ->
    lightning.Trainer.fit (DDP / FSDP, bf16, resume) -> AudioLM.save_pretrained

Checkpoints (`<output_dir>/checkpoints/*.ckpt`, for resuming only) hold just
the trainable tensors (LoRA + new rows) and the optimizer state: the frozen
base weights come from the base model. The export (`<output_dir>/export`) is
the `AudioLM` directory format (see `lmmsn.llm.model`).
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch

from lmmsn.config import load_config, save_config
from lmmsn.data.text import BatchSettings, Mode, TokenBatches, write_fixture_shards
from lmmsn.llm.losses import LossSettings, audio_lm_loss
from lmmsn.llm.model import AudioLM, LoraSettings

logger = logging.getLogger(__name__)


# ---- config -------------------------------------------------------------------------------------


@dataclass
class ModelSettings:
    """Which base model and how it is adapted."""

    base_model: str = "lmsys/vicuna-7b-v1.5"
    "Local directory (or hub id when online) of the base causal LM."
    codebook_size: int = 8196
    "Number of audio tokens K."
    lora: LoraSettings = field(default_factory=LoraSettings)
    "LoRA settings."
    dtype: str | None = "bfloat16"
    "Base weights dtype (float32, bfloat16, float16; null: checkpoint's)."
    attn_implementation: str | None = "sdpa"
    "transformers attention implementation."
    gradient_checkpointing: bool = False
    "Recompute activations in backward (saves memory on 7B)."
    init_from: str | None = None
    "An AudioLM export to continue from (fine-tuning after pretraining); null: from base_model."
    write_tiny_base: bool = False
    "Write a tiny random LLaMA + tokenizer at base_model when missing (tiny configs)."


@dataclass
class DataSettings:
    """Training shards and batching."""

    train_shards: str = "data/shards"
    "Directory, glob or brace pattern of webdataset shards (lmmsn.data.format)."
    write_fixture: bool = False
    "Write random-code fixture shards at train_shards when it is missing (tiny configs)."
    shuffle_buffer: int = 1000
    "Sample shuffle buffer per worker (0: read in order)."
    num_workers: int = 2
    "DataLoader workers per process."
    batch: BatchSettings = field(default_factory=BatchSettings)
    "Batching (size, max length, bucketing, pair-order probability)."


@dataclass
class OptimSettings:
    """AdamW with linear warmup and cosine decay."""

    lr: float = 2e-4
    "Peak learning rate."
    weight_decay: float = 0.0
    "AdamW weight decay."
    betas: tuple[float, float] = (0.9, 0.999)
    "AdamW betas."
    warmup_steps: int = 100
    "Linear warmup steps."
    min_lr_ratio: float = 0.1
    "Final learning rate as a fraction of lr."
    grad_clip: float = 1.0
    "Gradient norm clip (0: off)."


@dataclass
class TrainerSettings:
    """Lightning Trainer settings."""

    max_steps: int = 1000
    "Optimizer steps."
    accelerator: str = "auto"
    "cpu, gpu or auto."
    devices: int | str = "auto"
    "Devices per node."
    num_nodes: int = 1
    "Nodes."
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    "ddp for small models; fsdp (full shard, decoder-layer wrapping) for 7B; fsdp needs GPUs."
    precision: str | None = None
    "Lightning precision; null: bf16-mixed on GPU, 32-true on CPU."
    accumulate_grad_batches: int = 1
    "Gradient accumulation."
    log_every: int = 10
    "Log every n steps."
    checkpoint_every: int = 1000
    "Save a resume checkpoint every n steps."
    output_dir: str = "outputs/llm"
    "Checkpoints, logs and the export go here."
    resume: str | None = None
    "'last' or a .ckpt path to resume from."
    merge: bool = False
    "Also write a standalone merged model (export/merged)."
    logger: Literal["csv", "wandb", "none"] = "csv"
    "Metrics logger."

    def __post_init__(self) -> None:
        if self.strategy == "fsdp" and self.accelerator == "cpu":
            raise ValueError("trainer.strategy=fsdp needs GPUs (Lightning's FSDPStrategy refuses accelerator=cpu); "
                             "use trainer.strategy=ddp on CPU")


@dataclass
class LLMRecipeConfig:
    """Config of `recipes/pretrain_llm.py` and `recipes/finetune_llm.py`."""

    mode: Literal["pretrain", "finetune"] = "pretrain"
    "pretrain: caption/audio pairs; finetune: Vicuna conversations (prompt masked)."
    seed: int = 0
    "Seed of weights init, data order, pair order."
    model: ModelSettings = field(default_factory=ModelSettings)
    "Model."
    data: DataSettings = field(default_factory=DataSettings)
    "Data."
    loss: LossSettings = field(default_factory=LossSettings)
    "Loss weights."
    optim: OptimSettings = field(default_factory=OptimSettings)
    "Optimizer."
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    "Trainer."


# ---- model building -----------------------------------------------------------------------------


def build_audio_lm(settings: ModelSettings) -> AudioLM:
    """The AudioLM to train: from `init_from` (trainable) or from the base model."""
    if settings.init_from is not None:
        if not Path(settings.init_from).is_dir():
            raise FileNotFoundError(
                f"model.init_from={settings.init_from!r} does not exist (run the pretraining recipe first)"
            )
        lm = AudioLM.from_pretrained(settings.init_from, dtype=settings.dtype, is_trainable=True,
                                     attn_implementation=settings.attn_implementation)
        if settings.gradient_checkpointing:
            base = lm.model.get_base_model()
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.enable_input_require_grads()
        return lm
    if settings.write_tiny_base:
        from lmmsn.llm.tiny import write_tiny_base

        write_tiny_base(settings.base_model)
    return AudioLM.from_base(
        settings.base_model,
        settings.codebook_size,
        settings.lora,
        dtype=settings.dtype,
        attn_implementation=settings.attn_implementation,
        gradient_checkpointing=settings.gradient_checkpointing,
    )


# ---- Lightning ---------------------------------------------------------------------------------


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class AudioLMModule(L.LightningModule):
    """Trains an `AudioLM` with `audio_lm_loss`.

    Args:
        lm: the AudioLM (its `.model` is registered as this module's `model`).
        loss: loss weights.
        optim: optimizer settings.
        max_steps: for the learning-rate schedule.
    """

    def __init__(self, lm: AudioLM, loss: LossSettings, optim: OptimSettings, max_steps: int) -> None:
        super().__init__()
        self.lm = lm
        self.model = lm.model
        self.loss_settings = loss
        self.optim = optim
        self.max_steps = max_steps
        self.audio_ids = lm.vocabulary.audio_ids
        # Checkpoints hold only trainable tensors; the frozen base is rebuilt from base_model.
        self.strict_loading = False
        # transformers returns models in eval mode and Lightning keeps module modes: train LoRA dropout.
        self.model.train()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # [B, L, V]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        out = audio_lm_loss(logits, batch["labels"], self.audio_ids, self.loss_settings)
        batch_size = batch["input_ids"].shape[0]
        self.log_dict(out.log_dict("train/"), batch_size=batch_size, sync_dist=False)
        self.log("train/loss_step", out.total.detach(), prog_bar=True, batch_size=batch_size)
        self.log("train/tokens", batch["attention_mask"].sum().float(), reduce_fx="sum", batch_size=batch_size)
        return out.total

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        o = self.optim
        optimizer = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_lambda(s, o.warmup_steps, self.max_steps, o.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def trainable_keys(self) -> set[str]:
        return {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keys = self.trainable_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keys}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        missing = self.trainable_keys() - set(checkpoint["state_dict"])
        if missing:
            raise KeyError(f"checkpoint lacks trainable tensors, e.g. {sorted(missing)[:3]}")


class LLMDataModule(L.LightningDataModule):
    """Token batches from shards; built after the process group exists (rank-aware)."""

    def __init__(self, data: DataSettings, lm: AudioLM, mode: Mode, seed: int) -> None:
        super().__init__()
        self.data, self.lm, self.mode, self.seed = data, lm, mode, seed

    def prepare_data(self) -> None:
        if self.data.write_fixture and not Path(self.data.train_shards).exists():
            write_fixture_shards(self.data.train_shards, self.mode, codebook_size=self.lm.vocabulary.codebook_size,
                                 seed=self.seed)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        from lmmsn.data.loader import shard_samples

        rank, world = self.trainer.global_rank, self.trainer.world_size
        samples = shard_samples(self.data.train_shards, shuffle_buffer=self.data.shuffle_buffer, seed=self.seed,
                                rank=rank, world_size=world)
        batches = TokenBatches(samples, self.lm.tokenizer, self.lm.vocabulary, self.mode, self.data.batch,
                               seed=self.seed, rank=rank)
        return torch.utils.data.DataLoader(batches, batch_size=None, num_workers=self.data.num_workers,
                                           persistent_workers=False)


# ---- runner ------------------------------------------------------------------------------------


def _strategy(name: str, lm: AudioLM, gradient_checkpointing: bool) -> Any:
    if name != "fsdp":
        return name
    from lightning.pytorch.strategies import FSDPStrategy

    base = lm.model.get_base_model()
    names = set(getattr(base, "_no_split_modules", None) or [])
    layers = {type(m) for m in base.modules() if type(m).__name__ in names}
    if not layers:
        raise ValueError(f"fsdp: cannot find the decoder layer class of {type(base).__name__}")
    return FSDPStrategy(
        auto_wrap_policy=layers,
        activation_checkpointing_policy=layers if gradient_checkpointing else None,
        use_orig_params=True,  # LoRA: frozen and trainable params share FSDP units
        state_dict_type="full",
        sharding_strategy="FULL_SHARD",
    )


def export(module: AudioLMModule, cfg: LLMRecipeConfig, strategy: str, last_ckpt: Path | None) -> Path:
    """Write `<output_dir>/export` (rank 0); under FSDP the model is rebuilt from the last checkpoint."""
    target = Path(cfg.trainer.output_dir) / "export"
    lm = module.lm
    if strategy == "fsdp":
        if last_ckpt is None:
            raise RuntimeError("fsdp export needs the final checkpoint")
        state = torch.load(last_ckpt, map_location="cpu", weights_only=True)["state_dict"]
        fresh = AudioLMModule(build_audio_lm(cfg.model), cfg.loss, cfg.optim, cfg.trainer.max_steps)
        fresh.load_state_dict(state, strict=False)
        lm = fresh.lm
    return lm.save_pretrained(target, merge=cfg.trainer.merge)


def run(cfg: LLMRecipeConfig) -> dict[str, Any]:
    """Train and export; returns {"export": path, "metrics": last logged metrics}."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from lmmsn.seeding import seed_everything

    if cfg.trainer.strategy == "fsdp" and not torch.cuda.is_available():  # fail before building the model
        raise ValueError("trainer.strategy=fsdp needs GPUs and none is visible; use trainer.strategy=ddp on CPU")
    seed_everything(cfg.seed)
    out = Path(cfg.trainer.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t = cfg.trainer
    lm = build_audio_lm(cfg.model)
    module = AudioLMModule(lm, cfg.loss, cfg.optim, t.max_steps)
    data = LLMDataModule(cfg.data, lm, cfg.mode, cfg.seed)
    precision = t.precision or ("bf16-mixed" if torch.cuda.is_available() else "32-true")
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=t.checkpoint_every, save_last=True)
    loggers: Any = {"csv": lambda: CSVLogger(out, name="logs"), "wandb": lambda: WandbLogger(save_dir=out),
                    "none": lambda: False}[t.logger]()
    trainer = L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=_strategy(t.strategy, lm, cfg.model.gradient_checkpointing),
        precision=precision, max_steps=t.max_steps, max_epochs=-1,
        accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=cfg.optim.grad_clip or None,
        log_every_n_steps=t.log_every, logger=loggers,
        callbacks=[checkpoint, *([LearningRateMonitor("step")] if loggers else [])],
        default_root_dir=out, enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data, ckpt_path=t.resume)
    last = Path(checkpoint.last_model_path) if checkpoint.last_model_path else None
    if t.strategy == "fsdp" and last is None:
        last = out / "checkpoints" / "final.ckpt"
        trainer.save_checkpoint(last)
    target = None
    if trainer.is_global_zero:
        target = export(module, cfg, t.strategy, last)
        logger.info("exported %s", target)
    trainer.strategy.barrier()
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {"export": target or out / "export", "metrics": metrics}


def run_recipe(argv: Sequence[str] | None, mode: Mode) -> dict[str, Any]:
    """Command line of the LLM recipes: `--config FILE [key=value ...]`."""
    parser = argparse.ArgumentParser(description=f"{mode} the audio LM (LM-MSN)")
    parser.add_argument("--config", required=True, help="YAML under recipes/configs/llm/")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.max_steps=10")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(LLMRecipeConfig, args.config, args.overrides)
    if cfg.mode != mode:
        raise SystemExit(f"{args.config}: mode is {cfg.mode!r}, but this recipe trains {mode!r}")
    return run(cfg)


__all__ = [
    "AudioLMModule",
    "DataSettings",
    "LLMDataModule",
    "LLMRecipeConfig",
    "ModelSettings",
    "OptimSettings",
    "TrainerSettings",
    "build_audio_lm",
    "export",
    "lr_lambda",
    "run",
    "run_recipe",
]
