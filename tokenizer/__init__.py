"""Audio tokenizer: frozen VAE, causal encoder, VQ codebook, DiT flow-matching decoder.

Installed as `lmmsn.tokenizer`; import it under that name.
"""

if __name__ != "lmmsn.tokenizer":
    raise ImportError(
        f"'{__name__}' is LM-MSN's tokenizer folder, installed as 'lmmsn.tokenizer': "
        "use `import lmmsn.tokenizer` (after `bash scripts/install.sh` or `pip install -e .`)"
    )
