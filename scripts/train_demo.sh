#!/usr/bin/env bash
# Train the CPU demo model end to end and export it to checkpoints/lm-msn (about an hour on 2 CPU cores).
#
#   bash scripts/train_demo.sh                                          # the open sound set (data_prep.demo_data)
#   bash scripts/train_demo.sh --manifest TRAIN.jsonl --audio-root DIR   # a prepared training manifest
#   bash scripts/train_demo.sh --tiny --work /tmp/demo --checkpoint /tmp/demo/lm-msn --manifest ... --audio-root ...
#
# Stages, options and outputs: scripts/train_demo.py (--help). Threads: LMMSN_THREADS (default: all cores).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${LMMSN_PYTHON:-$here/.venv/bin/python}"
if [[ ! -x "$python" ]]; then
    echo "train_demo: $python not found; run 'bash scripts/install.sh' first (or set LMMSN_PYTHON)" >&2
    exit 2
fi
threads="${LMMSN_THREADS:-$(nproc)}"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
exec "$python" "$here/scripts/train_demo.py" "$@"
