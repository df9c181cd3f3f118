"""Shared test fixtures: tiny audio files, tiny models, thread limits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

# Two CPU cores: keep torch from oversubscribing them when pytest runs.
torch.set_num_threads(min(2, torch.get_num_threads()))


def sine(seconds: float, sample_rate: int, channels: int = 1, freq: float = 440.0) -> torch.Tensor:
    """A [C, N] sine wave at 0.5 amplitude (channel c at freq * (c + 1))."""
    t = torch.arange(int(round(seconds * sample_rate))) / sample_rate
    return torch.stack([0.5 * torch.sin(2 * math.pi * freq * (c + 1) * t) for c in range(channels)])


@pytest.fixture
def make_wav(tmp_path: Path):
    """Write a sine to tmp_path/<name> and return its path."""
    from lmmsn.audio import save_audio

    def make(name: str = "tone.wav", seconds: float = 0.5, sample_rate: int = 16000, channels: int = 1, freq: float = 440.0) -> Path:
        return save_audio(tmp_path / name, sine(seconds, sample_rate, channels, freq), sample_rate)

    return make
