"""Instruction-tune the audio LM on conversations (paper Sec. 3.2, stage 2; OpenAQA).

Samples use Vicuna v1.1's template with the clip inside a turn; only the
assistant replies (and their </s>) are targets. The mix (`lmmsn.llm.data`):
an OpenAQA clip gives one of its QA dialogues per epoch; a sample with captions
becomes a generation conversation (caption -> audio, the turn `lmmsn.generate`
prompts) with probability `data.batch.generation_fraction`; caption-only shards
(AudioCaps, WavCaps) give captioning conversations otherwise. Bad samples are
skipped within `data.bad_samples`. Starts from the pretraining export
(`model.init_from`), continuing its LoRA adapter and new rows.

Tiny CPU run (after the tiny pretraining run; seconds):

    .venv/bin/torchrun --nproc_per_node=1 recipes/finetune_llm.py --config recipes/configs/llm/tiny_finetune.yaml

Paper setting:

    torchrun --nnodes=3 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=$MASTER_ADDR:29500 \
        recipes/finetune_llm.py --config recipes/configs/llm/paper_finetune.yaml \
        model.base_model=/models/vicuna-7b-v1.5 model.init_from=runs/llm/pretrain/export \
        data.train_shards='/data/codes/openaqa/*.tar::/data/codes/audiocaps/*.tar'

A rerun with the same output_dir resumes (`resume=null` starts over); the result
goes to <output_dir>/export (`merge=true` adds export/merged). Logic:
`lmmsn.training.llm_module`, on `lmmsn.training.common`.
"""

from __future__ import annotations

import sys

from lmmsn.training.llm_module import recipe

if __name__ == "__main__":
    sys.exit(recipe(sys.argv[1:], "finetune", __doc__))
