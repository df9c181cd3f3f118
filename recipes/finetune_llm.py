"""Instruction-tune the audio LM on conversations (paper Sec. 3.2, stage 2; OpenAQA).

Samples use Vicuna v1.1's template with the clip inside a turn; only the
assistant replies (and their </s>) are targets. Starts from the pretraining
export (`model.init_from`), continuing its LoRA adapter and new rows.

Tiny CPU run (after the tiny pretraining run; seconds):

    .venv/bin/torchrun --nproc_per_node=1 recipes/finetune_llm.py --config recipes/configs/llm/tiny_finetune.yaml

Paper setting:

    torchrun --nnodes=3 --nproc_per_node=8 recipes/finetune_llm.py --config recipes/configs/llm/paper_finetune.yaml \
        model.base_model=/models/vicuna-7b-v1.5 model.init_from=runs/llm/pretrain/export \
        data.train_shards=/data/codes/openaqa

`trainer.resume=last` resumes; the result goes to <output_dir>/export
(`trainer.merge=true` adds export/merged). Logic: `lmmsn.training.llm_module`.
"""

from __future__ import annotations

import sys

from lmmsn.training.llm_module import run_recipe

if __name__ == "__main__":
    result = run_recipe(sys.argv[1:], "finetune")
    print(f"export: {result['export']}")
