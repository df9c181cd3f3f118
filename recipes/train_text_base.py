"""Train the demo's text base (stage 0): a BPE text tokenizer and a small LLaMA from scratch on corpus text.

The paper's recipes (`recipes/pretrain_llm.py`, `recipes/finetune_llm.py`) then
run unchanged on top of the export, as they would on Vicuna-7B. The text is the
training side's captions, transcripts and text-only Vicuna v1.1 renders of the
instruction dialogues (system prompt included); never held-out rows.

Tiny CPU run (a handful of manifest rows; seconds):

    .venv/bin/python recipes/train_text_base.py --config recipes/configs/llm/demo_base.yaml \
        corpus.manifests=[tests/fixture.jsonl] model.hidden_size=32 model.num_hidden_layers=1 \
        model.intermediate_size=64 tokenizer.vocab_size=400 trainer.max_steps=2 output_dir=/tmp/text_base

Demo setting (~4 min on 2 CPU cores; what `bash scripts/train_demo.sh` runs):

    .venv/bin/python recipes/train_text_base.py --config recipes/configs/llm/demo_base.yaml \
        corpus.manifests=[/data/corpus-split/train.jsonl]

The export (<output_dir>/export) is a plain Hugging Face directory:
`model.base_model=<output_dir>/export` in the LLM recipes. Logic: `lmmsn.training.text_base`.
"""

from __future__ import annotations

import sys

from lmmsn.training.text_base import recipe

if __name__ == "__main__":
    sys.exit(recipe(sys.argv[1:], __doc__))
