"""Module-level `lmmsn.load`, `generate`, `caption`, `chat` over a lazily loaded default pipeline.

    import lmmsn
    clip = lmmsn.generate("dog barking", seconds=5, seed=0)   # loads the default pipeline once
    clip.save("dog.wav")
    print(lmmsn.caption("dog.wav"))

The default pipeline is found by `lmmsn.checkpoints.resolve_checkpoint()` on first
use (argument-free: `$LMMSN_CHECKPOINT`, then `checkpoints/lm-msn`, then
`$LMMSN_HUB_ID`). `lmmsn.load(...)` returns an explicit `Pipeline`; pass it to
`set_default` to make the module functions use it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lmmsn.checkpoints import resolve_checkpoint
from lmmsn.pipeline import ChatResult, GeneratedAudio, Pipeline

_default: Pipeline | None = None
_lock = threading.Lock()


def load(
    path_or_name: str | Path | None = None,
    device: Any = None,
    dtype: Any = None,
    **kwargs: Any,
) -> Pipeline:
    """Load a pipeline (see `resolve_checkpoint` for where it is looked for).

    Args:
        path_or_name: a pipeline directory, a name under `checkpoints/`, or a hub id.
        device / dtype: default CUDA + bfloat16 when available, else CPU + float32.
        **kwargs: passed to `Pipeline.from_pretrained` (e.g. `base_model=`).
    """
    return Pipeline.from_pretrained(resolve_checkpoint(path_or_name), device=device, dtype=dtype, **kwargs)


def set_default(pipeline: Pipeline | None) -> None:
    """Use `pipeline` for the module-level functions (None: load the default again on next use)."""
    global _default
    with _lock:
        _default = pipeline


def default_pipeline() -> Pipeline:
    """The default pipeline, loaded on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = load()
        return _default


def generate(prompt: str | list[str], **kwargs: Any) -> GeneratedAudio | list[GeneratedAudio]:
    """Text -> audio with the default pipeline (arguments of `Pipeline.generate`)."""
    return default_pipeline().generate(prompt, **kwargs)


def caption(audio: Any, prompt: str | None = None, **kwargs: Any) -> str | list[str]:
    """Audio -> text with the default pipeline (arguments of `Pipeline.caption`)."""
    return default_pipeline().caption(audio, prompt, **kwargs)


def chat(messages: list[dict[str, Any]], **kwargs: Any) -> ChatResult:
    """One assistant turn with the default pipeline (arguments of `Pipeline.chat`)."""
    return default_pipeline().chat(messages, **kwargs)


__all__ = ["caption", "chat", "default_pipeline", "generate", "load", "set_default"]
