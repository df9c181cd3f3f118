"""LM-MSN: audio tokenizers and audio-language models ("Make Some Noise").

Importing `lmmsn` is cheap: sub-modules (and torch) load when first used.
"""

__version__ = "0.1.0"
