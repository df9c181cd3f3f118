#!/usr/bin/env bash
# The example report, end to end on CPU, through the same tools a user runs at scale, on real audio:
#   open corpus -> held-out split (data_prep.split_manifest) -> the demo chain (scripts/train_demo.sh:
#   mel-hifigan shards, VQ+FM tokenizer, codes, conversations, text base, pretraining, instruction tuning,
#   lmmsn export) -> the VQ+MSE ablation on the same shards -> report (eval.run_all with eval/configs/example.yaml,
#   then eval.audio_lm: captioning and text-to-audio judged on held-out clips) -> index.html.
# Finished stages are found and skipped (the chain and the recipes resume), so a rerun only redoes the report.
#
#   bash docs/eval-example/make_report.sh     # WORK=runs, SPLIT=data/corpus-split, report -> docs/eval-example/report
#   STEPS=4 bash docs/eval-example/make_report.sh   # one step (here the suite) of the five below
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
W=${WORK:-runs}
SPLIT=${SPLIT:-data/corpus-split}
CORPUS_MANIFEST=${CORPUS_MANIFEST:-/work/shared/corpus/manifest-dev.jsonl}
AUDIO_ROOT=${AUDIO_ROOT:-/work/corpus}
TOK_STEPS=${TOK_STEPS:-2000}
OUT=${OUT:-docs/eval-example/report}
export OMP_NUM_THREADS=${THREADS:-2}
STEPS=${STEPS:-1,2,3,4,5}
step() { [[ ",$STEPS," == *",$1,"* ]]; }

if step 1; then
  echo "== 1. held-out split (whole sources + random clips per category; speech capped at 2500 training rows)"
  if [[ ! -f "$SPLIT/heldout.jsonl" ]]; then
    $PY -m data_prep.split_manifest "$CORPUS_MANIFEST" --out "$SPLIT" --root "$AUDIO_ROOT" --per-category 40 \
        --max-train-per-category 2500 --seed 0
  fi
fi

if step 2; then
  echo "== 2. the demo chain (VQ+FM tokenizer, $TOK_STEPS steps; LLM stages per their configs)"
  LMMSN_THREADS=$OMP_NUM_THREADS bash scripts/train_demo.sh --manifest "$SPLIT/train.jsonl" --audio-root "$AUDIO_ROOT" \
      --heldout "$SPLIT/heldout.jsonl" --work "$W/demo" --checkpoint "$W/demo/lm-msn" --set tokenizer:trainer.max_steps="$TOK_STEPS"
fi

if step 3; then
  echo "== 3. the VQ+MSE ablation on the same shards"
  if [[ ! -f "$W/tok-mse/export/model.safetensors" ]]; then
    $PY recipes/train_tokenizer.py --config recipes/configs/tokenizer/demo_mse.yaml data.train_shards="$W/demo/data/latents" \
        open_audio=null evaluate=null output_dir="$W/tok-mse" trainer.max_steps="$TOK_STEPS" trainer.progress_bar=false
  fi
fi

if step 4; then
  echo "== 4. report (eval.run_all)"
  $PY -m eval.run_all --config eval/configs/example.yaml output_dir="$OUT" data.manifest="$SPLIT/heldout.jsonl" \
      data.audio_root="$AUDIO_ROOT" "reconstruction.tokenizers={VQ+FM (demo): $W/demo/tokenizer/export, VQ+MSE (demo): $W/tok-mse/export}" \
      reconstruction.kmeans_shards="$W/demo/data/latents" fad.cache="$W/fad-cache" wer.manifest="$SPLIT/unused.jsonl"
fi

if step 5; then
  echo "== 5. the audio-language model on held-out clips (eval.audio_lm: captions and generated audio, judged)"
  $PY -m eval.audio_lm --pipeline "$W/demo/lm-msn" --heldout "$SPLIT/heldout.jsonl" --train "$SPLIT/train.jsonl" \
      --audio-root "$AUDIO_ROOT" --out "$OUT" --judge-cache "$W/demo/judge" --metrics bleu_1,bleu_4,rouge_l,cider_d,meteor,sbert_sim
  # eval.run_all wrote README.md before this section existed: append it one heading level down (replacing
  # an earlier copy when only this step is rerun)
  sed -i '/^## Audio LM on held-out clips/,$d' "$OUT/README.md"
  { echo; sed -e 's/^## /### /' -e 's/^# /## /' "$OUT/audio_lm.md"; } >> "$OUT/README.md"
  $PY -m eval.html_report "$OUT"
fi
