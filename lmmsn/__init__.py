"""LM-MSN: audio tokenizers and audio-language models ("Make Some Noise").

Importing `lmmsn` is cheap: sub-modules (and torch) load when first used.

    import lmmsn
    lmmsn.generate("dog barking").save("dog.wav")   # default pipeline, loaded lazily
    pipe = lmmsn.load("checkpoints/lm-msn")          # explicit pipeline object
"""

__version__ = "0.1.0"

# Public names resolved on first access (PEP 562), so `import lmmsn` does not import torch.
_LAZY = {
    "load": "lmmsn.api",
    "generate": "lmmsn.api",
    "caption": "lmmsn.api",
    "chat": "lmmsn.api",
    "set_default": "lmmsn.api",
    "Pipeline": "lmmsn.pipeline",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lmmsn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
