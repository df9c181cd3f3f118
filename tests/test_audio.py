import numpy as np
import pytest
import soundfile
import torch

from lmmsn.audio import (
    AudioError,
    check_waveform,
    convert_channels,
    load_audio,
    resample,
    save_audio,
)
from tests.conftest import sine


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_save_load_round_trip(tmp_path, ext):
    wav = sine(0.25, 16000, channels=2)
    path = save_audio(tmp_path / f"a{ext}", wav, 16000)
    back, rate = load_audio(path)
    assert rate == 16000 and back.shape[0] == 2
    n = min(back.shape[-1], wav.shape[-1])
    error = back[:, :n] - wav[:, :n]
    if ext == ".ogg":  # Vorbis is lossy: ask for a signal-to-noise ratio above 20 dB
        snr_db = 10 * torch.log10(wav.pow(2).sum() / error.pow(2).sum())
        assert snr_db > 20
    else:  # 16-bit PCM
        assert error.abs().max() < 1e-3


def test_load_resamples_and_converts_channels(make_wav):
    path = make_wav(seconds=0.5, sample_rate=16000, channels=1)
    wav, rate = load_audio(path, sample_rate=44100, channels=2)
    assert rate == 44100 and wav.shape == (2, 22050)
    assert torch.equal(wav[0], wav[1])


def test_resample_keeps_a_tone_at_its_frequency():
    wav = sine(1.0, 16000, freq=1000.0)
    up = resample(wav, 16000, 44100)
    spectrum = np.abs(np.fft.rfft(up[0].numpy()))
    peak_hz = spectrum.argmax() * 44100 / up.shape[-1]
    assert abs(peak_hz - 1000.0) < 2.0


def test_offset_and_duration(make_wav):
    path = make_wav(seconds=1.0, sample_rate=8000)
    wav, _ = load_audio(path, offset_s=0.25, duration_s=0.5)
    full, _ = load_audio(path)
    assert wav.shape[-1] == 4000
    assert torch.equal(wav, full[:, 2000:6000])


def test_downmix_is_the_channel_mean():
    wav = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(convert_channels(wav, 1), torch.tensor([[0.5, 0.5]]))


def test_errors_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioError, match="garbage.wav: cannot decode"):
        load_audio(garbage)
    with pytest.raises(AudioError, match="missing.flac: no such file"):
        load_audio(tmp_path / "missing.flac")
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros((0, 1), dtype="float32"), 16000)
    with pytest.raises(AudioError, match="empty.wav: audio is empty"):
        load_audio(empty)


def test_non_finite_and_wrong_types_are_rejected():
    with pytest.raises(AudioError, match="NaN or infinite"):
        check_waveform(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(AudioError, match="floating-point"):
        check_waveform(torch.zeros(1, 4, dtype=torch.int16))
    with pytest.raises(AudioError, match="expected a torch.Tensor"):
        check_waveform([0.0, 1.0])
