"""Pretrain the audio LM on caption/audio pairs (paper Sec. 3.2, stage 1).

Each sample is "<caption> <soa>codes<eoa>" or "<soa>codes<eoa> <caption>" (order
drawn at random per sample, `data.batch.audio_first_prob`); loss = CE with 10x
weight on audio-token targets + z-loss; only LoRA and the new embedding rows train.
Caption-less samples (e.g. OpenAQA clips without a caption-task answer) are skipped
with a warning naming shard and key, within `data.bad_samples`.

Tiny CPU run (writes a tiny random LLaMA and fixture shards under runs/; seconds):

    .venv/bin/torchrun --nproc_per_node=1 recipes/pretrain_llm.py --config recipes/configs/llm/tiny_pretrain.yaml

Paper setting (Vicuna-7B v1.5 at a local path, codes shards from data_prep):

    torchrun --nproc_per_node=4 recipes/pretrain_llm.py --config recipes/configs/llm/paper_pretrain.yaml \
        model.base_model=/models/vicuna-7b-v1.5 \
        data.train_shards='/data/codes/openaqa/*.tar::/data/codes/wavcaps/*.tar::/data/codes/fma/*.tar'

A rerun with the same output_dir continues from its checkpoints/last.ckpt
(`resume=null` starts over); the result is exported to <output_dir>/export
(`AudioLM.from_pretrained`), `merge=true` adds a standalone merged model.
Logic: `lmmsn.training.llm_module`, on `lmmsn.training.common`.
"""

from __future__ import annotations

import sys

from lmmsn.training.llm_module import recipe

if __name__ == "__main__":
    sys.exit(recipe(sys.argv[1:], "pretrain", __doc__))
