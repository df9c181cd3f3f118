"""Audio-language model: extended vocabulary, LoRA via peft, losses, prompt templates.

Installed as `lmmsn.llm`; import it under that name.
"""

if __name__ != "lmmsn.llm":
    raise ImportError(
        f"'{__name__}' is LM-MSN's llm folder, installed as 'lmmsn.llm': "
        "use `import lmmsn.llm` (after `bash scripts/install.sh` or `pip install -e .`)"
    )
