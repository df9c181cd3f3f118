#!/usr/bin/env bash
# The issue-16 GPU check: one prepared script, every row its own process with its own timeout.
#
#   bash bench/gpu_check.sh                 # on one H100/H200: about 8 minutes, random weights, no downloads
#   bash bench/gpu_check.sh --dry-run       # CPU, tiny shapes, every row (plumbing; numbers mean nothing)
#   bash bench/gpu_check.sh --out DIR --budget 480 --only a_ours,d_generate_ours
#   bash bench/gpu_check.sh --dry-run --row-timeout 600   # a loaded CPU machine: longer per-row limits
#
# Rows (see docs/performance.md):
#   a_*  7B-shaped LoRA step, vocab 32,000 + 8,198 padded to 64, batch 8 x 512, 10x audio weight, z-loss:
#        ours (chunked linear CE, compiled) / transformers+peft SDPA / the same under torch.compile
#        (bench/lora_throughput.py): tokens/s, peak memory
#   b_*  SAO 1.0 VAE encode (random weights), batch 32, bf16, eager vs compiled
#        (bench/make_shards_throughput.py): x real time, max latent difference vs float32 eager
#   c    make_shards end to end on generated 10 s clips: x real time
#   d_*  215 audio tokens at batch 1, 7B shape (bench/generate_latency.py --llm-only):
#        transformers generate default / transformers static cache / ours (lmmsn loop, static and dynamic cache)
#   e    the paper tokenizer's training step at batch 64 (bench/tokenizer_step.py): samples/s, peak memory
#   f    pytest -m gpu
#
# A failing or timed-out row prints its error and the script goes on. The rows' JSON files, logs
# and the table (gpu_check.json, also printed last) are written to --out (default $OUT when set,
# else ./gpu_check_out). Rows run in order until --budget seconds are spent; the rest are skipped
# (each row's timeout is cut to what is left), so the whole call ends inside the device limit.
set -u
cd "$(dirname "$0")/.."

DRY=0
OUT_DIR="${OUT:-gpu_check_out}"
BUDGET=480
ONLY=""
ROW_TIMEOUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT_DIR="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --row-timeout) ROW_TIMEOUT="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT_DIR"

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if ! "$PY" -c "import lmmsn.llm, lmmsn.tokenizer" 2>/dev/null; then
  # A bare GPU machine: install the repository itself, nothing from a registry.
  "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$OUT_DIR/install.log" 2>&1 \
    || echo "pip install -e . failed (see $OUT_DIR/install.log); rows will fail on import"
fi

R="$OUT_DIR"
if [ "$DRY" = 1 ]; then
  export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  LORA="bench/lora_throughput.py --tiny --steps 1 --warmup 1 --compile-on-cpu --compile-backend eager"
  VAE="bench/make_shards_throughput.py --vae tiny --device cpu --batch-size 2 --segment-s 1 --repeats 1 --threads 1"
  VAE_BF16=""
  VAE_COMPILE="--compile --compile-backend eager"
  E2E="bench/make_shards_throughput.py --vae tiny --device cpu --skip vae-only --clips 2 --clip-s 2 --segment-s 2 --batch-size 1 --num-workers 0 --threads 1"
  GEN="bench/generate_latency.py --tiny --device cpu --tokens 6 --warmup 0 --repeats 1 --llm-only"
  TOK="bench/tokenizer_step.py --size tiny --batch-size 2 --frames 8 --steps 1 --warmup 1"
  PYTEST="-m pytest -m gpu -q -p no:cacheprovider --collect-only tests/training/test_common.py tests/data_prep/test_make_shards.py"
  T_A=120; T_B=60; T_C=60; T_D=60; T_E=60; T_F=60
else
  LORA="bench/lora_throughput.py --steps 5 --warmup 2"
  VAE="bench/make_shards_throughput.py --vae stable-audio-open-1.0 --device cuda --batch-size 32 --segment-s 10 --repeats 3 --skip end-to-end"
  VAE_BF16="--bf16"
  VAE_COMPILE="--compile"
  E2E="bench/make_shards_throughput.py --vae stable-audio-open-1.0 --device cuda --skip vae-only --clips 64 --clip-s 10 --batch-size 32 --num-workers 8 --bf16"
  GEN="bench/generate_latency.py --device cuda --tokens 215 --warmup 1 --repeats 2 --llm-only"
  TOK="bench/tokenizer_step.py --size paper --batch-size 64 --steps 10 --warmup 3"
  PYTEST="-m pytest -m gpu -q -p no:cacheprovider -rA"
  T_A=150; T_B=120; T_C=120; T_D=90; T_E=90; T_F=150
fi

# name | timeout s | command (after $PY); each row writes $R/<name>.json (f: the pytest log is parsed)
ROWS=(
  "a_ours|$T_A|$LORA --only ours --json $R/a_ours.json"
  "a_plain_sdpa|$T_A|$LORA --only plain_sdpa --json $R/a_plain_sdpa.json"
  "a_plain_sdpa_compile|$T_A|$LORA --only plain_sdpa_compile --json $R/a_plain_sdpa_compile.json"
  "b_vae_eager|$T_B|$VAE --skip end-to-end $VAE_BF16 --json $R/b_vae_eager.json"
  "b_vae_compiled|$T_B|$VAE --skip end-to-end $VAE_BF16 $VAE_COMPILE --json $R/b_vae_compiled.json"
  "c_make_shards|$T_C|$E2E --json $R/c_make_shards.json"
  "d_generate_default|$T_D|$GEN --engine transformers --json $R/d_generate_default.json"
  "d_generate_static|$T_D|$GEN --engine transformers --cache-implementation static --json $R/d_generate_static.json"
  "d_generate_ours|$T_D|$GEN --engine lmmsn --cache-implementation static --json $R/d_generate_ours.json"
  "d_generate_ours_dynamic|$T_D|$GEN --engine lmmsn --json $R/d_generate_ours_dynamic.json"
  "d_generate_ours_compiled|$T_D|$GEN --engine lmmsn --cache-implementation static --compile-step --json $R/d_generate_ours_compiled.json"
  "e_tokenizer_step|$T_E|$TOK --json $R/e_tokenizer_step.json"
  "f_pytest_gpu|$T_F|$PYTEST"
)

START=$(date +%s)
echo "gpu_check: dry_run=$DRY out=$OUT_DIR budget=${BUDGET}s python=$PY"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name limit cmd <<<"$row"
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 15 ]; then
    echo "== $name: skipped (time budget spent)"; echo "skipped: time budget" >"$R/$name.error"; continue
  fi
  [ -n "$ROW_TIMEOUT" ] && limit=$ROW_TIMEOUT
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (timeout ${limit}s): $PY $cmd"
  t0=$(date +%s)
  # shellcheck disable=SC2086  # the command is a word list on purpose
  timeout --kill-after=10 "$limit" "$PY" $cmd >"$R/$name.log" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - t0 ))" >"$R/$name.rc"
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="timed out after ${limit}s" || why="exit $rc"
    echo "-- $name FAILED ($why); last lines:"; tail -n 15 "$R/$name.log" | sed 's/^/   /'
    { echo "$why"; tail -n 15 "$R/$name.log"; } >"$R/$name.error"
  else
    tail -n 4 "$R/$name.log" | sed 's/^/   /'
  fi
done
"$PY" bench/gpu_table.py "$R" --dry-run "$DRY"
