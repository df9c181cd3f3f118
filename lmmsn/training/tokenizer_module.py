"""Training the audio tokenizer with Lightning: run config, LightningModule, data preparation.

`recipes/train_tokenizer.py` is a thin script over `run(config)`, which uses the
scaffold both model families share (`lmmsn.training.common`):

    config = load_config(TrainTokenizerConfig, yaml, overrides)
    result = run(config)     # fixture / normalization, TokenizerModule, build_trainer, fit (resume, export)

Paper Sec. IV-A: AdamW at lr 1e-4, 4 GPUs. Training runs on precomputed VAE
latents (no VAE in memory). DDP across processes started by `torchrun`
(gloo on CPU, NCCL on GPU); the codebook statistics are reduced by the
quantizer itself, so DDP does not broadcast buffers. bf16-mixed on GPU,
32-bit on CPU. The run directory is the shared one (`lmmsn.training.common`);
`export/` is `AudioTokenizer.save_pretrained` of the final model.

Resume is exact (2N steps straight = N + resume + N, tested): checkpoints hold
every data stream's position (`lmmsn.tokenizer.latents`), gathered from all
ranks, and the resumed streams continue from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from lmmsn.config import to_dict
from lmmsn.tokenizer.latents import LatentDataConfig, latent_loader, write_fixture_shards
from lmmsn.tokenizer.model import TokenizerConfig, build_tokenizer, masked_mse
from lmmsn.training import common

logger = logging.getLogger(__name__)


@dataclass
class OpenAudioConfig:
    """Build (or find) a labelled open sound set, split it and shard it before training (`data_prep.demo_data`)."""

    root: str = "data/open-audio"
    "Folder of the sound set (data_prep.open_audio), its split and its latent shards."
    profile: str = "small"
    "data_prep.open_audio profile: small (~110 MB of packages) or full (~1.5 GB)."
    manifest: str | None = None
    "Use this labelled manifest (JSON lines: path, category, label, caption) instead of building the open set."
    audio_root: str | None = None
    "Folder the manifest's paths are relative to (default: the manifest's folder)."
    holdout_sources: list[str] = field(default_factory=lambda: ["widelands-data", "kajongg", "chuck-data", "wesnoth-1.16-data", "yaru-theme-sound"])
    "Sources held out whole (never trained on); random clips of the others are held out too."
    heldout_per_category: int = 30
    "Held-out clips per category at least (capped at half a category)."
    max_train_per_category: int | None = 2500
    "Keep at most this many training files per category (the open corpus is mostly speech)."
    segment_s: float = 10.0
    "Segment length of the shards (paper: 10 s)."
    max_segments: int = 6
    "At most this many segments of one long file."
    num_workers: int = 2
    "Decoding processes of make_shards."

    def __post_init__(self) -> None:
        if self.profile not in ("small", "full"):
            raise ValueError(f"open_audio.profile must be small or full, got {self.profile!r}")
        if self.heldout_per_category < 1 or self.segment_s <= 0 or self.max_segments < 0 or self.num_workers < 0:
            raise ValueError("open_audio: heldout_per_category >= 1, segment_s > 0, max_segments and num_workers >= 0")


@dataclass
class TokenizerEvalConfig:
    """The reconstruction table written at the end of training (`eval.reconstruction`, held-out clips)."""

    per_category: int = 15
    "Held-out clips per category."
    min_clips: int = 20
    "Evaluate only categories with at least this many held-out clips."
    max_seconds: float = 10.0
    "Clips are cut to this length."
    audio: bool = True
    "Decode every row to audio and judge it (log-mel L1; YAMNet when the eval extra is installed)."
    kmeans: bool = True
    "Add the same-size per-frame k-means baseline (fitted on the training shards)."
    temperatures: list[float] = field(default_factory=lambda: [1.0, 0.0])
    "Flow-matching decoders: one row per starting-noise temperature."
    mean_decode: bool = True
    "Flow-matching decoders: also a row decoded to the conditional mean E[z | codes] (eval.reconstruction --mean-decode)."
    examples: int = 2
    "Original / reconstructed WAVs written per category and row (<output_dir>/eval/audio)."

    def __post_init__(self) -> None:
        if self.per_category < 1 or self.min_clips < 1 or self.max_seconds <= 0 or self.examples < 0:
            raise ValueError("evaluate: per_category, min_clips >= 1, max_seconds > 0, examples >= 0")


@dataclass
class TrainTokenizerConfig(common.RunConfig):
    """A tokenizer training run (the shared fields: `lmmsn.training.common.RunConfig`)."""

    output_dir: str = "runs/tokenizer"
    "Run directory: config, checkpoints, logs, export."
    optim: common.OptimConfig = field(default_factory=lambda: common.OptimConfig(lr=1e-4))
    "AdamW (paper: lr 1e-4)."
    trainer: common.TrainerConfig = field(default_factory=lambda: common.TrainerConfig(max_steps=100_000))
    "Trainer."
    logger: common.LoggerConfig = field(default_factory=lambda: common.LoggerConfig(project="lmmsn-tokenizer"))
    "Metrics loggers."
    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    "The tokenizer (defaults: paper sizes)."
    data: LatentDataConfig = field(default_factory=lambda: LatentDataConfig(fixture_dir="runs/fixture"))
    "Latent shards and batching."
    open_audio: OpenAudioConfig | None = None
    "When set, the training data is the open sound set prepared by data_prep.demo_data (data.train_shards is then set to its shards)."
    evaluate: TokenizerEvalConfig | None = None
    "When set (with open_audio), write the held-out reconstruction table and audio examples to <output_dir>/eval at the end."

    def __post_init__(self) -> None:
        if self.trainer.strategy == "fsdp":
            raise ValueError("trainer.strategy=fsdp shards the LLM; the tokenizer trains with auto or ddp")


class TokenizerModule(common.TrainingModule):
    """LightningModule around `AudioTokenizer.compute_loss` (latent-only, no VAE).

    Args:
        config: the run config (saved into checkpoints as plain hyper-parameters).
    """

    def __init__(self, config: TrainTokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters(to_dict(config))
        self.model = build_tokenizer(config.model, with_vae=False)
        self.positions: dict[int, tuple[int, int]] = {}  # worker -> (epoch, windows done) of this rank's streams
        self._resume: dict[int, dict[int, tuple[int, int]]] | None = None

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
        # Recorded here, not in on_train_batch_end: the checkpoint callback's hook runs before the module's.
        worker, epoch, done = batch["position"].tolist()
        self.positions[worker] = (epoch, done)
        out = self.model.compute_loss(batch["latents"], batch["mask"])
        self._log_step("train", out, batch["latents"].shape[0])
        return out.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        latents, mask = batch["latents"], batch["mask"]
        with torch.random.fork_rng(devices=[latents.device] if latents.is_cuda else []):
            # validation draws its flow noise without moving training's random stream (exact resume)
            torch.manual_seed(batch_idx)
            out = self.model.compute_loss(latents, mask)
        self._log_step("val", out, latents.shape[0])
        # The real reconstruction error: codes -> ODE (or one pass) -> latents, fixed noise.
        gen = torch.Generator(device=latents.device).manual_seed(batch_idx)
        recon = self.model.decode_latents(out.quantizer.codes, generator=gen, mask=mask)
        self.log("val/latent_mse", masked_mse(recon, latents, mask), on_epoch=True, sync_dist=True,
                 batch_size=latents.shape[0], prog_bar=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Every rank's stream positions ({rank: {worker: (epoch, windows done)}}) go into the checkpoint."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["data_position"] = common.gather_from_ranks(dict(self.positions))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._resume = checkpoint.get("data_position")

    def train_dataloader(self):
        # Called after a checkpoint is restored: the streams continue from their saved positions.
        data, rank = self.config.data, self.trainer.global_rank
        resume = (self._resume or {}).get(rank)
        if self._resume is not None and resume is None:
            logger.warning("the checkpoint has no data position for rank %d (another world size?): its data restarts", rank)
        self.positions = dict(resume or {})
        return latent_loader(data.train_shards, data, self.model.latent_dim, train=True, resume=resume)

    def val_dataloader(self):
        data = self.config.data
        if data.val_shards is None:
            return []
        return latent_loader(data.val_shards, data, self.model.latent_dim, train=False)

    def export(self, directory: Path, checkpoint: Path) -> Path:
        """`AudioTokenizer.save_pretrained` of the trained model (rank 0, after training)."""
        self.model.save_pretrained(directory)
        return directory


def prepare_data(config: TrainTokenizerConfig) -> TrainTokenizerConfig:
    """Point `data.train_shards` / `val_shards` at the synthetic fixture when no shards are given,
    and measure the latent normalization when `data.normalize` asks for it.

    Every rank reads the same clips (before the process group exists), so all ranks
    agree on the statistics without a collective.
    """
    data = config.data
    if data.train_shards is None:
        train, val = write_fixture_shards(data.fixture_dir, data, config.model.latent_dim, config.model.frame_rate)
        data = replace(data, train_shards=train, val_shards=data.val_shards or val)
        config = replace(config, data=data)
    if data.normalize == "none":
        return config
    from lmmsn.tokenizer.latents import latent_statistics

    stats = latent_statistics(data.train_shards, data.normalize_samples)
    scale = stats["latent_scale"] if data.normalize == "global" else stats["latent_scale_per_dim"]
    logger.info("latent normalization (%s) from %d clips / %d frames: centred std %.4g",
                data.normalize, stats["samples"], stats["frames"], stats["centred_std"])
    model = replace(config.model, latent_mean=stats["latent_mean"], latent_scale=scale)
    return replace(config, model=model)


def run(config: TrainTokenizerConfig) -> common.RunResult:
    """Seed, prepare the data, train (resuming as `config.resume` says) and export."""
    from lmmsn.seeding import seed_everything

    seed_everything(config.seed)
    config = prepare_data(config)
    module = TokenizerModule(config)
    logger.info("tokenizer parameters: %s; bitrate %.1f bit/s", module.model.parameter_counts(), module.model.bitrate)
    trainer = common.build_trainer(config, validate=config.data.val_shards is not None)
    return common.fit(trainer, module, config)


__all__ = [
    "OpenAudioConfig",
    "TokenizerEvalConfig",
    "TokenizerModule",
    "TrainTokenizerConfig",
    "prepare_data",
    "run",
]
