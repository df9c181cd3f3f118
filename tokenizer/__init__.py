"""Audio tokenizer: frozen VAE, causal encoder, VQ codebook, DiT flow-matching decoder.

Installed as `lmmsn.tokenizer`; import it under that name.
"""

if __name__ != "lmmsn.tokenizer":
    raise ImportError(
        f"'{__name__}' is LM-MSN's tokenizer folder, installed as 'lmmsn.tokenizer': "
        "use `import lmmsn.tokenizer` (after `bash scripts/install.sh` or `pip install -e .`)"
    )

# Re-exports, resolved lazily so `import lmmsn.tokenizer` stays cheap (no torch).
_EXPORTS = {
    "AudioTokenizer": "lmmsn.tokenizer.model",
    "TokenizerConfig": "lmmsn.tokenizer.model",
    "build_tokenizer": "lmmsn.tokenizer.model",
    "tokenizer_config": "lmmsn.tokenizer.model",
    "SIZES": "lmmsn.tokenizer.model",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lmmsn.tokenizer' has no attribute {name!r}")
