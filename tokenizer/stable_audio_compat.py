"""Importing stable-audio-tools' autoencoder without its unused training stack.

This is the one place where LM-MSN works around a third-party import.

`stable_audio_tools.models.autoencoders` (0.0.19) imports
`stable_audio_tools.inference.sampling`, which does `import k_diffusion` at
module level. The autoencoder never calls k-diffusion (only the diffusion
samplers do), and k-diffusion 0.1.1 drags in clip-anytorch, clean-fid, kornia,
scikit-image, torchvision and a `pkg_resources` that setuptools >= 81 no longer
has. So, only while the autoencoder module is first imported and only when
k-diffusion is not installed, a placeholder module stands in for it; any use
of the placeholder raises an error that says why. The placeholder is removed
from `sys.modules` afterwards, so it never hides a real k-diffusion.

`tests/tokenizer/test_stable_audio_compat.py` fails when the placeholder stops being
needed (stable-audio-tools stops importing k-diffusion, or k-diffusion gets
installed) and when it stops working.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class _MissingKDiffusion(types.ModuleType):
    """Stands in for `k_diffusion`; any attribute access explains the situation."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"k_diffusion.{name} was used, but k-diffusion is not installed: LM-MSN only needs "
            "stable-audio-tools' autoencoder, which never calls it. Install k-diffusion==0.1.1 to "
            "use stable-audio-tools' diffusion samplers."
        )


def k_diffusion_installed() -> bool:
    """Whether a real k-diffusion can be imported."""
    existing = sys.modules.get("k_diffusion")
    if existing is not None:
        return not isinstance(existing, _MissingKDiffusion)
    return importlib.util.find_spec("k_diffusion") is not None


def import_autoencoders() -> types.ModuleType:
    """Import and return `stable_audio_tools.models.autoencoders`."""
    name = "stable_audio_tools.models.autoencoders"
    if name in sys.modules:
        return sys.modules[name]
    if k_diffusion_installed():
        return importlib.import_module(name)
    sys.modules["k_diffusion"] = _MissingKDiffusion("k_diffusion")
    try:
        return importlib.import_module(name)
    finally:
        if isinstance(sys.modules.get("k_diffusion"), _MissingKDiffusion):
            del sys.modules["k_diffusion"]


def create_autoencoder(model_config: dict[str, Any]) -> Any:
    """Build a stable-audio-tools `AudioAutoencoder` from a full model config dict
    (`{"model_type": "autoencoder", "sample_rate": ..., "model": {...}}`)."""
    if model_config.get("model_type") != "autoencoder":
        raise ValueError(f"expected model_type 'autoencoder', got {model_config.get('model_type')!r}")
    return import_autoencoders().create_autoencoder_from_config(model_config)
