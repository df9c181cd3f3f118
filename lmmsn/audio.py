"""Audio input/output: decode files, resample, convert channels, validate.

Waveforms are float32 tensors shaped [C, N] (channels, samples) in [-1, 1].
Decoding goes through libsndfile (the `soundfile` package), which reads WAV,
FLAC, OGG/Vorbis, Opus and (libsndfile >= 1.1) MP3; resampling through
`torchaudio.functional.resample` (band-limited sinc interpolation).

Every error names the file and the problem, and is an `AudioError`, so a
batch job can catch it, record the reason and move on to the next file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

WRITABLE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


class AudioError(ValueError):
    """An audio file or tensor cannot be used; the message says which and why."""


def readable_extensions() -> set[str]:
    """File extensions the installed libsndfile can decode (lower case, with dot)."""
    import soundfile

    return {f".{ext.lower()}" for ext in soundfile.available_formats()}


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of a file without decoding it."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # libsndfile raises RuntimeError/LibsndfileError/OSError
        raise AudioError(f"{path}: cannot read audio header: {exc}") from exc
    return info.samplerate, info.channels, info.frames


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    channels: int | None = None,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode an audio file.

    Args:
        path: file to read (any format libsndfile decodes).
        sample_rate: resample to this rate (None: keep the file's rate).
        channels: convert to this many channels (None: keep the file's).
        offset_s: start reading this many seconds into the file.
        duration_s: read at most this many seconds (None: to the end).

    Returns:
        (wav [C, N] float32, sample_rate).

    Raises:
        AudioError: the file is missing, undecodable, empty or not finite.
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        with soundfile.SoundFile(str(path)) as f:
            file_rate = f.samplerate
            start = int(round(offset_s * file_rate))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration_s is None else int(round(duration_s * file_rate))
            data = f.read(frames=frames, dtype="float32", always_2d=True)  # [N, C]
    except Exception as exc:  # libsndfile errors are RuntimeError/LibsndfileError/OSError
        raise AudioError(f"{path}: cannot decode audio: {exc}") from exc
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, N]
    check_waveform(wav, name=str(path))
    if channels is not None:
        wav = convert_channels(wav, channels)
    if sample_rate is not None and sample_rate != file_rate:
        wav = resample(wav, file_rate, sample_rate)
        file_rate = sample_rate
    return wav, file_rate


def check_waveform(wav: torch.Tensor, name: str = "waveform") -> None:
    """Raise AudioError unless `wav` is a non-empty, finite floating tensor."""
    if not isinstance(wav, torch.Tensor):
        raise AudioError(f"{name}: expected a torch.Tensor, got {type(wav).__name__}")
    if not wav.is_floating_point():
        raise AudioError(f"{name}: expected floating-point samples, got {wav.dtype}")
    if wav.numel() == 0 or wav.shape[-1] == 0:
        raise AudioError(f"{name}: audio is empty (shape {tuple(wav.shape)})")
    if not torch.isfinite(wav).all():
        bad = int((~torch.isfinite(wav)).sum())
        raise AudioError(f"{name}: {bad} samples are NaN or infinite")


def convert_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert [C, N] (or [B, C, N]) to `channels`: mono is repeated, more is averaged."""
    have = wav.shape[-2]
    if have == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=-2, keepdim=True)
    if have == 1:
        return wav.expand(*wav.shape[:-2], channels, wav.shape[-1]).contiguous()
    if channels < have:
        return wav[..., :channels, :]
    raise AudioError(f"cannot convert {have} channels to {channels}")


def resample(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last dimension."""
    if orig_rate == new_rate:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_rate, new_rate)


def save_audio(path: str | Path, wav: torch.Tensor, sample_rate: int) -> Path:
    """Write [C, N] (or [N]) float audio to WAV/FLAC/OGG, chosen by the extension.

    Samples are clipped to [-1, 1]; WAV and FLAC are written as 16-bit PCM.
    """
    import soundfile

    path = Path(path)
    fmt = WRITABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: cannot write '{path.suffix}'; use one of {sorted(WRITABLE_FORMATS)}")
    wav = wav.detach().float().cpu()
    if wav.dim() == 1:
        wav = wav[None]
    check_waveform(wav, name=str(path))
    data = wav.clamp(-1, 1).numpy().T  # [N, C]
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, sample_rate, format=fmt, subtype=subtype)
    return path
