"""Train the audio tokenizer (VAE latents -> causal encoder -> VQ -> DiT flow decoder).

Tiny CPU run on a generated fixture (seconds):

    .venv/bin/torchrun --nproc_per_node=1 recipes/train_tokenizer.py --config recipes/configs/tokenizer/tiny.yaml

Paper model on N GPUs (latent shards written by data_prep):

    torchrun --nproc_per_node=N recipes/train_tokenizer.py --config recipes/configs/tokenizer/paper.yaml \
        data.train_shards=/data/latents/train data.val_shards=/data/latents/val

Any field can be overridden with `key=value` (dotted for sections). A rerun
with the same output_dir resumes from its checkpoints/last.ckpt; the final
model is exported to <output_dir>/export (`AudioTokenizer.from_pretrained`).
The logic lives in `lmmsn.training.tokenizer_module`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lmmsn.config import ConfigError, load_config
from lmmsn.seeding import seed_everything
from lmmsn.training.tokenizer_module import (
    TokenizerModule,
    TrainTokenizerConfig,
    build_trainer,
    fit,
    prepare_data,
)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML under recipes/configs/tokenizer/")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.max_steps=10")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, unknown = parse_args(argv)
    if unknown:
        print(f"unknown arguments: {unknown}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(TrainTokenizerConfig, args.config, args.overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    seed_everything(config.trainer.seed)
    config = prepare_data(config)
    module = TokenizerModule(config)
    trainer = build_trainer(config)
    export = fit(trainer, module, config)
    if trainer.is_global_zero:
        counts = module.model.parameter_counts()
        print(f"trained to step {trainer.global_step}; exported to {export}; parameters {counts}; "
              f"bitrate {module.model.bitrate:.1f} bit/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
