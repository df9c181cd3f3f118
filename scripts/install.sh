#!/usr/bin/env bash
# One-command set-up of LM-MSN:  bash scripts/install.sh
#
# Creates (or reuses) a virtual environment (default: .venv beside this repo;
# LMMSN_VENV=/path to choose another) and installs LM-MSN editable with the
# versions in requirements/constraints.txt, which were measured to work together.
#
# Why more than `pip install -e .`: stable-audio-tools 0.0.19 (the newest for
# Python 3.11) and fadtk 1.1.0 declare pins that pip cannot resolve together
# (laion-clap ==1.1.4 vs >=1.1.6, numpy, transformers <5, wandb ==0.15,
# webdataset ==0.2, ...). Our code uses only stable-audio-tools' autoencoder
# and fadtk's Frechet distance / ModelLoader, so both are installed without
# their declared dependencies; what those code paths really import is in
# setup.py. Nothing inside an installed package is edited.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LMMSN_VENV:-$root/.venv}
python=${PYTHON:-python3}

if [[ ! -x $venv/bin/python ]]; then
  echo "[install] creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
constraints=$root/requirements/constraints.txt

echo "[install] build tools"
"${pip[@]}" install -q "pip>=24" "setuptools>=64,<81" wheel
echo "[install] LM-MSN and its dependencies (torch comes first: it is the largest)"
"${pip[@]}" install -q -c "$constraints" torch torchaudio
"${pip[@]}" install -q -c "$constraints" -e "$root[dev]"
echo "[install] packages whose declared pins conflict (installed without their dependencies)"
"${pip[@]}" install -q -c "$constraints" --no-deps -r "$root/requirements/no-deps.txt"
"$venv/bin/python" -c "import lmmsn, lmmsn.tokenizer, lmmsn.llm; print('[install] ok: lmmsn', lmmsn.__version__, 'in', '$venv')"
