#!/usr/bin/env bash
# The example report, end to end on CPU, through the same tools a user runs at scale:
#   corpus -> latent shards (make_shards, tiny random-weight VAE) -> two tiny tokenizers (VQ+FM, VQ+MSE;
#   recipes/train_tokenizer.py) -> codes (tokenize_shards) -> tiny LLM pretraining (recipes/pretrain_llm.py)
#   -> pipeline (lmmsn export) -> report (eval.run_all with eval/configs/example.yaml).
# Training clips exclude the report's own clips (training_manifest.py).
#
#   bash docs/eval-example/make_report.sh            # WORK=/tmp/eval-example, report -> docs/eval-example/report
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
W=${WORK:-/tmp/eval-example}
TOK_STEPS=${TOK_STEPS:-600}
LLM_STEPS=${LLM_STEPS:-300}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
mkdir -p "$W"
AUDIO_ROOT=$($PY -c "import yaml; print(yaml.safe_load(open('eval/configs/example.yaml'))['data']['audio_root'])")

echo "== 1. training manifest"
$PY docs/eval-example/training_manifest.py --config eval/configs/example.yaml --per-category 150 --out "$W/train.jsonl"

echo "== 2. latent shards (tiny VAE, seed 0; 5 s segments like the report's max_seconds)"
$PY -m data_prep.make_shards --adapter manifest --root "$AUDIO_ROOT" --opt manifest="$W/train.jsonl" --out "$W/shards" \
    --vae tiny --seed 0 --segment-s 5 --long first --num-workers 1 --batch-size 16 --records-per-shard 100 --threads "$THREADS"
echo "== latent statistics (per-dim mean and scale for the tokenizers)"
$PY -m lmmsn.data.latents "$W/shards" | tee "$W/latent_stats.txt"
NORMALISE=$(tail -1 "$W/latent_stats.txt")  # model.latent_mean=[...] model.latent_scale=...

for objective in cfm mse; do
  echo "== 3. tokenizer ($objective, $TOK_STEPS steps)"
  rm -rf "$W/tok_$objective"  # a fresh run (the recipe would otherwise resume a finished one)
  # shellcheck disable=SC2086  # NORMALISE holds two key=value overrides
  $PY recipes/train_tokenizer.py --config recipes/configs/tokenizer/tiny.yaml data.train_shards="$W/shards" \
      model.flow.objective=$objective $NORMALISE trainer.max_steps="$TOK_STEPS" \
      trainer.val_every_n_steps=100000 trainer.checkpoint_every_n_steps="$TOK_STEPS" trainer.progress_bar=false \
      output_dir="$W/tok_$objective"
done

echo "== 4. codes (VQ+FM tokenizer)"
rm -rf "$W/codes"
$PY -m data_prep.tokenize_shards --shards "$W/shards" --tokenizer "$W/tok_cfm/export" --out "$W/codes" --threads "$THREADS"

echo "== 5. tiny LLM pretraining on (caption, codes) pairs ($LLM_STEPS steps)"
rm -rf "$W/llm"
$PY recipes/pretrain_llm.py --config recipes/configs/llm/tiny_pretrain.yaml data.train_shards="$W/codes" \
    data.write_fixture=false data.batch.max_length=768 model.base_model="$W/llm/tiny-llama-base" \
    trainer.max_steps="$LLM_STEPS" trainer.checkpoint_every="$LLM_STEPS" trainer.output_dir="$W/llm"

echo "== 6. pipeline"
rm -rf "$W/pipeline"
.venv/bin/lmmsn export --tokenizer "$W/tok_cfm/export" --llm "$W/llm/export" -o "$W/pipeline"

echo "== 7. report"
$PY -m eval.run_all --config eval/configs/example.yaml
