"""Audio-language model: extended vocabulary, LoRA via peft, losses, prompt templates.

Installed as `lmmsn.llm`; import it under that name.
"""

if __name__ != "lmmsn.llm":
    raise ImportError(
        f"'{__name__}' is LM-MSN's llm folder, installed as 'lmmsn.llm': "
        "use `import lmmsn.llm` (after `bash scripts/install.sh` or `pip install -e .`)"
    )

# Re-exports, resolved on first use so `import lmmsn.llm` stays cheap (no torch at import).
_EXPORTS = {
    "AudioVocabulary": "lmmsn.llm.vocabulary",
    "AudioSegment": "lmmsn.llm.vocabulary",
    "TextSegment": "lmmsn.llm.vocabulary",
    "AudioLM": "lmmsn.llm.model",
    "LoraConfig": "lmmsn.llm.model",
    "LossConfig": "lmmsn.llm.losses",
    "LossOutput": "lmmsn.llm.losses",
    "audio_lm_loss": "lmmsn.llm.losses",
    "VICUNA_SYSTEM": "lmmsn.llm.prompts",
    "chat_prompt": "lmmsn.llm.prompts",
    "write_tiny_base": "lmmsn.llm.tiny",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lmmsn.llm' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
