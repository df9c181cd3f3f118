"""Lightning training of the audio LM: run config, LightningModule, data module, runner.

`recipes/pretrain_llm.py` and `recipes/finetune_llm.py` are `recipe(argv, mode)`,
on the scaffold both model families share (`lmmsn.training.common`):

    config (YAML + key=value) -> AudioLM (from the base model, or from a
    pretraining export for fine-tuning) -> AudioLMModule + LLMDataModule ->
    build_trainer (DDP / FSDP2, bf16) -> fit (resume, end checkpoints) -> AudioLM.save_pretrained

Checkpoints (`<output_dir>/checkpoints/*.ckpt`, for resuming only) hold just
the trainable tensors (LoRA + new rows, under clean state-dict names), the
optimizer and schedule state and the data position (epoch, batches done in
it): the frozen base weights come from the base model. Loading a checkpoint
checks that it holds exactly the model's trainable tensors. Resuming
continues exactly where the run stopped (torchtune-style: N steps + resume +
N steps = 2N steps straight, tested), because the token stream of an epoch is
deterministic and the resumed run regenerates and drops the batches already
trained on (`TokenBatches.resume_at`; with DataLoader workers the rest of the
epoch comes once each, though possibly interleaved in another order).

`trainer.strategy=fsdp` shards the model with FSDP2 (`fully_shard` on every
decoder layer, then the whole peft model; see `lmmsn.training.common` for why
FSDP2 and not FSDP1): frozen bf16 base weights and peft's fp32 LoRA / new-row
parameters shard side by side. The export then rebuilds the AudioLM from the
config and loads the final checkpoint's trainable tensors into it, strictly.
The export (`<output_dir>/export`) is the `AudioLM` directory format (see
`lmmsn.llm.model`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch

from lmmsn.config import ConfigError
from lmmsn.llm.data import BadSampleBudget, BatchConfig, Mode, TokenBatches, write_fixture_shards
from lmmsn.llm.losses import (
    LossConfig,
    LossOutput,
    audio_lm_loss,
    linear_audio_lm_loss,
    output_head_weight,
)
from lmmsn.llm.model import AudioLM, LoraConfig
from lmmsn.training import common

logger = logging.getLogger(__name__)


# ---- config -------------------------------------------------------------------------------------


@dataclass
class LLMModelConfig:
    """Which base model and how it is adapted."""

    base_model: str = "lmsys/vicuna-7b-v1.5"
    "Local directory (or hub id when online) of the base causal LM."
    codebook_size: int = 8196
    "Number of audio tokens K."
    lora: LoraConfig = field(default_factory=LoraConfig)
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
    audio_init: str | None = None
    ("An audio tokenizer export: the new audio rows start from its VQ codebook (lmmsn.llm.audio_init; not the "
     "paper's method); null: mean resizing. Ignored with init_from (the rows come from that export).")


@dataclass
class TokenDataConfig:
    """Training shards (with codes) and batching."""

    train_shards: str = "data/shards"
    "Directory, glob, brace pattern or '::'-joined list of webdataset shards (lmmsn.data.format)."
    write_fixture: bool = False
    "Write random-code fixture shards at train_shards when it is missing (tiny configs)."
    shuffle_buffer: int = 1000
    "Sample shuffle buffer per worker (0: read in order)."
    num_workers: int = 2
    "DataLoader workers per process."
    batch: BatchConfig = field(default_factory=BatchConfig)
    "Batching (size, max length, bucketing, pair-order probability, fine-tuning generation fraction)."
    bad_samples: BadSampleBudget = field(default_factory=BadSampleBudget)
    "Bad samples skipped (with a warning naming shard and key) before the run stops."


@dataclass
class TrainLLMConfig(common.RunConfig):
    """Config of `recipes/pretrain_llm.py` and `recipes/finetune_llm.py` (shared fields: `common.RunConfig`)."""

    output_dir: str = "runs/llm"
    "Run directory: config, checkpoints, logs, export."
    optim: common.OptimConfig = field(default_factory=lambda: common.OptimConfig(
        lr=2e-4, weight_decay=0.0, warmup_steps=100, min_lr_ratio=0.1))
    "AdamW (the paper gives no lr; 2e-4 is our choice)."
    trainer: common.TrainerConfig = field(default_factory=lambda: common.TrainerConfig(
        max_steps=1000, log_every_n_steps=10))
    "Trainer."
    logger: common.LoggerConfig = field(default_factory=lambda: common.LoggerConfig(project="lmmsn-llm"))
    "Metrics loggers."
    mode: Literal["pretrain", "finetune"] = "pretrain"
    "pretrain: caption/audio pairs; finetune: Vicuna conversations (prompt masked)."
    model: LLMModelConfig = field(default_factory=LLMModelConfig)
    "Model."
    data: TokenDataConfig = field(default_factory=TokenDataConfig)
    "Data."
    loss: LossConfig = field(default_factory=LossConfig)
    "Loss weights."
    merge: bool = False
    "Also write a standalone merged model (export/merged)."


# ---- model building -----------------------------------------------------------------------------


def build_audio_lm(settings: LLMModelConfig) -> AudioLM:
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
    vectors = None
    if settings.audio_init is not None:
        from lmmsn.llm.audio_init import codebook_vectors

        vectors = codebook_vectors(settings.audio_init)
    return AudioLM.from_base(
        settings.base_model,
        settings.codebook_size,
        settings.lora,
        dtype=settings.dtype,
        attn_implementation=settings.attn_implementation,
        gradient_checkpointing=settings.gradient_checkpointing,
        audio_vectors=vectors,
    )


# ---- Lightning ---------------------------------------------------------------------------------


class AudioLMModule(common.TrainingModule):
    """Trains an `AudioLM` with `audio_lm_loss`.

    Args:
        lm: the AudioLM (its `.model` is registered as this module's `model`).
        config: the run config (loss, optim, max_steps; the model section rebuilds it for a sharded export).
    """

    def __init__(self, lm: AudioLM, config: TrainLLMConfig) -> None:
        super().__init__()
        self.lm = lm
        self.model = lm.model
        self.config = config
        self.audio_ids = lm.vocabulary.audio_ids
        # Checkpoints hold only trainable tensors; the frozen base is rebuilt from base_model.
        self.strict_loading = False
        # transformers returns models in eval mode and Lightning keeps module modes: train LoRA dropout.
        self.model.train()
        self.batches_in_epoch = 0  # data position, saved in checkpoints for an exact resume
        self._resume_position: tuple[int, int] | None = None

    def configure_model(self) -> None:
        """FSDP2 (trainer.strategy=fsdp): shard every decoder layer, then the whole peft model."""
        if not common.is_sharded(self.trainer):
            return
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if isinstance(self.model, FSDPModule):  # Lightning may call this hook more than once
            return
        mesh = self.device_mesh["data_parallel"]
        base = self.model.get_base_model()
        names = set(getattr(base, "_no_split_modules", None) or [])
        layers = [m for m in base.modules() if type(m).__name__ in names]
        if not layers:
            raise ValueError(f"fsdp: cannot find the decoder layers of {type(base).__name__} (_no_split_modules)")
        kind = type(layers[0]).__name__  # before fully_shard swaps the class for an FSDP subclass
        for layer in layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(self.model, mesh=mesh)  # embeddings, trainable new rows, norm, lm_head
        logger.info("FSDP2: fully_shard on %d %s layers and the root, over %d processes", len(layers), kind,
                    mesh.size())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, L, V]; a packed batch passes position_ids and no attention_mask (`model_inputs`)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False).logits

    @staticmethod
    def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
        """A packed batch (position_ids) goes in without attention_mask: transformers then masks per example."""
        if "position_ids" in batch:
            return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "attention_mask": None}
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.batches_in_epoch += 1
        out = self.loss(batch)
        batch_size = batch["input_ids"].shape[0]
        self.log_dict(out.log_dict("train/"), batch_size=batch_size, sync_dist=False)
        self.log("train/loss_step", out.total.detach(), prog_bar=True, batch_size=batch_size)
        self.log("train/tokens", batch["attention_mask"].sum().float(), reduce_fx="sum", batch_size=batch_size)
        return out.total

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        """The loss of a batch; with loss.chunk_size > 0 the [B, L, V] logits are never materialised.

        The decoder's last hidden states are caught by a forward hook while the model computes
        logits for the last position only (`logits_to_keep=1`), and `linear_audio_lm_loss` takes
        them with the head's effective matrix. Sharded runs (FSDP2) and heads without a plain
        matrix use the full logits.
        """
        weight = None
        trainer = self._trainer  # None outside a Trainer (self.trainer would raise)
        if self.config.loss.chunk_size > 0 and not (trainer is not None and common.is_sharded(trainer)):
            weight = output_head_weight(self.model)
        if weight is None:
            logits = self(**self.model_inputs(batch))  # [B, L, V]
            return audio_lm_loss(logits, batch["labels"], self.audio_ids, self.config.loss, batch.get("position_ids"))
        caught: list[torch.Tensor] = []
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        decoder = base.get_decoder()
        hook = decoder.register_forward_hook(lambda _m, _a, output: caught.append(output.last_hidden_state))
        try:
            self.model(**self.model_inputs(batch), use_cache=False, logits_to_keep=1)
        finally:
            hook.remove()
        return linear_audio_lm_loss(caught[-1], weight, batch["labels"], self.audio_ids, self.config.loss,
                                    batch.get("position_ids"))

    def _dataset(self) -> Any:
        return getattr(self.trainer.train_dataloader, "dataset", None)

    def resume_position(self) -> tuple[int, int] | None:
        """(epoch, batches done in it) restored from a checkpoint, when the run restarts mid-epoch.

        `LLMDataModule.train_dataloader` hands it to the data (Lightning draws the first batch of a
        restarted run before any training hook, and skips on_train_epoch_start mid-epoch).
        """
        position = self._resume_position
        if position is None or position[0] != self.trainer.current_epoch or position[1] <= 0:
            return None
        return position

    def on_train_start(self) -> None:
        super().on_train_start()
        position, self._resume_position = self.resume_position(), None
        if position is not None:
            self.batches_in_epoch = position[1]
            self._resumed_epoch = position[0]
            logger.info("resumed epoch %d after its first %d batches", *position)

    def on_train_epoch_start(self) -> None:
        dataset = self._dataset()
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)
        if getattr(self, "_resumed_epoch", None) != self.current_epoch:
            self.batches_in_epoch = 0

    def trainable_keys(self) -> set[str]:
        """Checkpoint names of the trainable tensors (LoRA + new rows), without wrapper prefixes."""
        return common.trainable_names(self.model, "model.")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        keys = self.trainable_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keys}
        checkpoint["data_position"] = {"epoch": self.current_epoch, "batches": self.batches_in_epoch}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "state_dict" in checkpoint:  # a sharded strategy loaded (and checked) the tensors itself
            common.check_trainable_state(checkpoint["state_dict"], self.trainable_keys(), "checkpoint")
        position = checkpoint.get("data_position")
        if position is not None:
            self._resume_position = (int(position["epoch"]), int(position["batches"]))

    def export(self, directory: Path, checkpoint: Path) -> Path:
        """`AudioLM.save_pretrained` (rank 0). Sharded: a fresh AudioLM loads the checkpoint's trainable tensors."""
        lm = self.lm
        if common.is_sharded(self.trainer):
            lm = build_audio_lm(self.config.model)
            load_trainable(lm, torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"],
                           str(checkpoint))
        return lm.save_pretrained(directory, merge=self.config.merge)


def load_trainable(lm: AudioLM, state: dict[str, torch.Tensor], where: str) -> None:
    """Load checkpoint tensors (names `model.<peft name>`) into `lm`: exactly its trainable tensors, or KeyError.

    A missing tensor would otherwise leave what `lm` was built with (e.g. the init_from adapter) in the export.
    """
    prefix = "model."
    common.check_trainable_state(state, common.trainable_names(lm.model, prefix), where)
    params = dict(lm.model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name.removeprefix(prefix)].copy_(value)


class LLMDataModule(L.LightningDataModule):
    """Token batches from shards; built after the process group exists (rank-aware)."""

    def __init__(self, data: TokenDataConfig, lm: AudioLM, mode: Mode, seed: int) -> None:
        super().__init__()
        self.data, self.lm, self.mode, self.seed = data, lm, mode, seed

    def prepare_data(self) -> None:
        from lmmsn.data.loader import list_shards

        spec = self.data.train_shards
        if not self.data.write_fixture:
            return
        try:
            list_shards(spec)
            return  # real shards: never shadow them with a fixture
        except FileNotFoundError:
            pass
        if "::" in spec or any(c in spec for c in "*?[{"):
            raise FileNotFoundError(f"data.train_shards={spec!r} matches no shards (a fixture is only written at a "
                                    "plain directory path)")
        write_fixture_shards(spec, self.mode, codebook_size=self.lm.vocabulary.codebook_size, seed=self.seed)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        from lmmsn.data.loader import shard_samples

        rank, world = self.trainer.global_rank, self.trainer.world_size
        samples = shard_samples(self.data.train_shards, shuffle_buffer=self.data.shuffle_buffer, seed=self.seed,
                                rank=rank, world_size=world)
        batches = TokenBatches(samples, self.lm.text_tokenizer, self.lm.vocabulary, self.mode, self.data.batch,
                               seed=self.seed, rank=rank, budget=self.data.bad_samples)
        batches.set_epoch(self.trainer.current_epoch)  # a restored run may restart in any epoch
        module = self.trainer.lightning_module
        position = module.resume_position() if isinstance(module, AudioLMModule) else None
        if position is not None:
            batches.resume_at(*position)
        return torch.utils.data.DataLoader(batches, batch_size=None, num_workers=self.data.num_workers,
                                           persistent_workers=False)


# ---- runner ------------------------------------------------------------------------------------


def run(config: TrainLLMConfig) -> common.RunResult:
    """Seed, build the AudioLM, train (resuming as `config.resume` says) and export."""
    from lmmsn.seeding import seed_everything

    seed_everything(config.seed)
    lm = build_audio_lm(config.model)
    module = AudioLMModule(lm, config)
    data = LLMDataModule(config.data, lm, config.mode, config.seed)
    return common.fit(common.build_trainer(config), module, config, datamodule=data)


def recipe(argv: Sequence[str] | None, mode: Mode, description: str | None = None) -> int:
    """The command line of the two LLM recipes (`common.recipe_main`), refusing a config of the other mode."""

    def check(config: TrainLLMConfig) -> None:
        if config.mode != mode:
            raise ConfigError(f"mode is {config.mode!r}, but this recipe trains {mode!r}")

    def train(config: TrainLLMConfig) -> int:
        result = run(config)
        print(f"export: {result.export}")
        return 0

    return common.recipe_main(argv, TrainLLMConfig, train, description, check)


__all__ = [
    "AudioLMModule",
    "LLMDataModule",
    "LLMModelConfig",
    "TokenDataConfig",
    "TrainLLMConfig",
    "build_audio_lm",
    "load_trainable",
    "recipe",
    "run",
]
