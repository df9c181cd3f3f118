"""Tests of data_prep/make_shards.py: shard contents, index, skip list, silence, resume after a crash."""

from __future__ import annotations

import io
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from data_prep.make_shards import ShardConfig, ShardMaker, check_inputs, parse_args, summary
from lmmsn.data.loader import shard_samples
from lmmsn.tokenizer.vae import StableAudioVAE, VAEConfig
from tests.conftest import sine

SR = 16000  # the tiny VAE's rate: no resampling, so latents can be checked against a direct encode
GOOD = ["long.wav", "short.flac", "silent.wav", "stereo.wav"]
BAD = {"nan.wav": "NaN", "empty.wav": "empty", "corrupt.wav": "cannot decode", "missing.wav": "no such file"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """root/ with good, silent and broken files and a JSONL manifest listing them (+ one missing)."""
    root = tmp_path_factory.mktemp("corpus")
    soundfile.write(root / "long.wav", sine(2.6, SR)[0].numpy(), SR)  # 2 full segments + 0.6 s tail
    soundfile.write(root / "short.flac", sine(0.25, SR)[0].numpy(), SR)
    soundfile.write(root / "silent.wav", np.zeros(SR // 2), SR)
    soundfile.write(root / "stereo.wav", sine(1.0, SR, channels=2).numpy().T, SR)
    nan = sine(0.5, SR)[0].numpy()
    nan[100] = np.nan
    soundfile.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    soundfile.write(root / "empty.wav", np.zeros(0), SR)
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really a wave file" * 4)
    names = ["long.wav", "nan.wav", "short.flac", "empty.wav", "silent.wav", "corrupt.wav", "stereo.wav",
             "missing.wav"]
    rows = [{"path": n, "caption": f"caption of {n}", "source": "odd" if i % 2 else "even"}
            for i, n in enumerate(names)]
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return root


def make(corpus: Path, out: Path, **kw) -> ShardMaker:
    settings = {"threads": 1, "segment_s": 1.0, "vae": "tiny", "records_per_shard": 3, "num_workers": 0, "batch_size": 2,
                "min_tail_s": 0.5, **kw}
    return ShardMaker(ShardConfig(adapter="manifest", root=str(corpus), out=str(out), **settings))


def read(out: Path) -> list:
    return list(shard_samples(out, even="none"))


def test_shards_index_and_skip_list(corpus: Path, tmp_path: Path) -> None:
    index = make(corpus, tmp_path, num_workers=2).run()
    samples = read(tmp_path)
    by_source = {}
    for s in samples:
        by_source.setdefault(s.meta["source_path"], []).append(s)
    # long: 2 s of full segments + a 0.6 s tail (kept: >= min_tail_s); broken files absent
    assert sorted(by_source) == sorted(GOOD)
    assert [s.meta["offset_s"] for s in by_source["long.wav"]] == [0.0, 1.0, 2.0]
    assert by_source["long.wav"][2].meta["duration_s"] == pytest.approx(0.6)
    short = by_source["short.flac"][0]
    assert short.latent.shape == (125, 8)  # padded to 1 s: 16000 / 128 frames, latent_dim 8
    assert short.meta["num_frames"] == math.ceil(0.25 * SR / 128) and short.meta["duration_s"] == 0.25
    assert short.meta["captions"] == ["caption of short.flac"] and short.meta["dataset"] == "even"
    assert by_source["silent.wav"][0].meta["silent"] is True
    assert by_source["stereo.wav"][0].meta["silent"] is False

    # latents are the VAE's encoding of the zero-padded segment (up to float16 storage)
    torch.manual_seed(0)  # make_shards draws random VAE weights from seed 0
    vae = StableAudioVAE(VAEConfig(architecture="tiny"))
    padded = torch.nn.functional.pad(sine(0.25, SR), (0, SR - 4000))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 OpenMP threads on 2 busy shared cores are ~10x slower here
    expected = vae.encode(padded[None].expand(1, 2, -1))[0].T  # mono repeated to stereo, [T, D]
    torch.set_num_threads(threads)
    torch.testing.assert_close(short.latent, expected, atol=2e-3, rtol=2e-3)

    # index: totals agree with the shards; every broken file listed once with its reason
    assert index["num_samples"] == len(samples) == 6
    assert [s["samples"] for s in index["shards"]] == [Counter(int(x.key.split("_")[1]) // 3
                                                               for x in samples)[i] for i in range(3)]
    assert index["hours"] == pytest.approx(sum(s.meta["duration_s"] for s in samples) / 3600)
    assert index["datasets"]["odd"]["skipped"] + index["datasets"]["even"]["skipped"] == 4
    skipped = {Path(e["path"]).name: e["reason"] for e in index["skipped"]}
    assert set(skipped) == set(BAD)
    for name, reason in BAD.items():
        assert reason in skipped[name] and name in skipped[name]
    assert "4 skipped" in summary(index)


def test_silence_skip_and_first_segment_only(corpus: Path, tmp_path: Path) -> None:
    index = make(corpus, tmp_path, silence="skip", long="first").run()
    sources = Counter(s.meta["source_path"] for s in read(tmp_path))
    assert sources == Counter({"long.wav": 1, "short.flac": 1, "stereo.wav": 1})
    silent = [e for e in index["skipped"] if e["path"].endswith("silent.wav")]
    assert len(silent) == 1 and "silent" in silent[0]["reason"]


def test_flac_is_the_segment(corpus: Path, tmp_path: Path) -> None:
    make(corpus, tmp_path, flac=True, limit=1).run()
    first = read(tmp_path)[1]  # long.wav, second segment
    wav, sr = soundfile.read(io.BytesIO(first.flac), dtype="float32")
    assert sr == SR and wav.shape == (SR, 2)  # at the VAE's rate and channels (mono repeated)
    for channel in range(2):
        np.testing.assert_allclose(wav[:, channel], sine(2.6, SR)[0, SR : 2 * SR].numpy(), atol=1e-4)


class Crash(RuntimeError):
    pass


def test_resume_after_crash_no_loss_no_duplicates(corpus: Path, tmp_path: Path) -> None:
    reference = make(corpus, tmp_path / "ref").run()
    out = tmp_path / "out"

    def crash(index: int) -> None:
        if index == 4:  # second shard (records 3-5) is half written
            raise Crash

    with pytest.raises(Crash):
        ShardMaker(make(corpus, out).config, on_record=crash).run()
    assert (out / "shard-000000.json").is_file() and (out / "shard-000001.tar.tmp").is_file()
    assert not (out / "shard-000001.json").exists() and not (out / "index.json").exists()
    first_mtime = (out / "shard-000000.tar").stat().st_mtime_ns

    redone: list[int] = []
    index = ShardMaker(make(corpus, out).config, on_record=redone.append).run()
    assert redone == [3, 4, 5, 6, 7]  # shard 0 kept, shards 1-2 redone
    assert (out / "shard-000000.tar").stat().st_mtime_ns == first_mtime
    assert not list(out.glob("*.tmp"))
    keys = [s.key for s in read(out)]
    assert len(keys) == len(set(keys))  # no duplicates
    assert sorted(keys) == sorted(s.key for s in read(tmp_path / "ref"))  # no loss
    assert index["num_samples"] == reference["num_samples"] and index["skipped"] == reference["skipped"]


def test_rerun_with_other_settings_is_refused(corpus: Path, tmp_path: Path) -> None:
    make(corpus, tmp_path, limit=2).run()
    with pytest.raises(SystemExit, match="other settings"):
        make(corpus, tmp_path, limit=2, segment_s=2.0).run()


def test_cli_arguments() -> None:
    config, check_only = parse_args(["--adapter", "manifest", "--root", "r", "--out", "o", "--opt", "manifest=m.csv",
                         "--segment-s", "5", "--long", "first", "--vae", "tiny", "--flac"])
    assert config.options == {"manifest": "m.csv"} and config.segment_s == 5.0
    assert config.long == "first" and config.flac and config.vae == "tiny" and not check_only


def test_check_only_lists_the_same_skips(corpus: Path, tmp_path: Path) -> None:
    report = check_inputs(make(corpus, tmp_path).config)
    assert {Path(e["path"]).name for e in report["skipped"]} == set(BAD)
    assert report["num_segments"] == 6 and report["num_silent_segments"] == 1
    assert not list(tmp_path.glob("*.tar"))


@pytest.mark.gpu
def test_compiled_bf16_latents_match_eager_on_gpu(corpus: Path, tmp_path: Path) -> None:
    """The fast GPU path (torch.compile + bf16) stays within 3% (of max |latent|) of eager fp32."""
    eager = {s.key: s.latent for s in (make(corpus, tmp_path / "e", device="cuda").run() and read(tmp_path / "e"))}
    fast = read(tmp_path / "f") if make(corpus, tmp_path / "f", device="cuda", compile=True, bf16=True,
                                        batch_size=4).run() else []
    assert sorted(eager) == sorted(s.key for s in fast)
    for s in fast:
        scale = eager[s.key].abs().max()
        assert (s.latent - eager[s.key]).abs().max() <= 0.03 * scale, s.key


def test_records_in_flight_hold_latents_not_waveforms(corpus: Path, tmp_path: Path) -> None:
    """A long file's samples wait in the main process until the file ends; they must not carry the
    segment waveforms (memory grew by the whole file's PCM: 30-minute files cost gigabytes)."""
    maker = make(corpus, tmp_path, limit=1)  # long.wav: 2 segments + the 0.6 s tail wait for the end
    held: list[set[str]] = []
    real = maker._write_record

    def spy(index, state):
        held.extend(set(segment) for segment, _ in state["encoded"])
        return real(index, state)

    maker._write_record = spy
    maker.run()
    assert len(held) == 3 and not any("wav" in keys for keys in held), held
    assert all({"offset_s", "samples", "n"} <= keys for keys in held)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_is_tuned_where_glibc_is():
    from data_prep.segments import tune_malloc

    assert tune_malloc() is True  # mallopt accepted both settings (it returns 0 on a refused one)
