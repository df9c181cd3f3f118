"""The k-diffusion placeholder in lmmsn.tokenizer.stable_audio_compat: still needed, still working."""

import sys

import pytest

from lmmsn.tokenizer.stable_audio_compat import import_autoencoders, k_diffusion_installed
from tests.test_packaging import run_python


def test_shim_is_still_needed():
    """Fails when stable-audio-tools' autoencoder imports without the placeholder
    (it no longer imports k-diffusion, or k-diffusion got installed): then delete
    the placeholder from tokenizer/stable_audio_compat.py."""
    done = run_python("import stable_audio_tools.models.autoencoders")
    assert done.returncode != 0, "the k_diffusion placeholder is no longer needed: remove it"
    assert "No module named 'k_diffusion'" in done.stderr, done.stderr[-2000:]


def test_shim_imports_autoencoder_and_leaves_no_trace():
    assert not k_diffusion_installed()
    module = import_autoencoders()
    assert hasattr(module, "create_autoencoder_from_config")
    assert "k_diffusion" not in sys.modules  # the placeholder never hides a real install
    placeholder = sys.modules["stable_audio_tools.inference.sampling"].K
    with pytest.raises(ImportError, match="k-diffusion is not installed"):
        placeholder.sampling.sample_heun  # noqa: B018 - the access itself must raise
