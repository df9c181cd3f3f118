"""Hostile inputs at the audio and data boundaries (issue 14, part A).

One test (or a few) per class of the issue; every input is made here, in tmp_path:
1 resume over other inputs, 2 non-finite data, 3 partial audio / channels, 4 invalid shard
samples, 5 bad records, 6 silently wrong metadata, 7 bounded decoding memory.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import webdataset as wds

from data_prep.adapters import LayoutError, load_records
from data_prep.make_shards import ShardConfig, ShardMaker
from data_prep.tokenize_shards import main as tokenize_main
from lmmsn.audio import AudioError, AudioStream, convert_channels, load_audio
from lmmsn.data.format import ShardFormatError, decode_sample, encode_sample
from lmmsn.data.loader import shard_samples
from tests.conftest import sine

SR = 16000  # the tiny VAE's rate
DIM = 8  # the tiny tokenizer's latent dim
META = {"captions": ["x"], "dataset": "t", "source_path": "x.wav", "offset_s": 0.0, "duration_s": 1.0,
        "sample_rate": SR}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def latent_shard(path: Path, keys: list[str], frames: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as sink:
        for key in keys:
            sink.write(encode_sample(key, META, latent=np.random.default_rng(0).standard_normal((frames, DIM))))
    return path


def make(root: Path, out: Path, **kw) -> ShardMaker:
    settings = {"threads": 1, "segment_s": 1.0, "vae": "tiny", "records_per_shard": 50, "num_workers": 0,
                "batch_size": 4, "min_tail_s": 0.5, **kw}
    return ShardMaker(ShardConfig(adapter="manifest", root=str(root), out=str(out), **settings))


def manifest(root: Path, lines: list) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.jsonl").write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")


def reasons(index: dict) -> dict[str, str]:
    return {Path(e["path"]).name + (f"#{e['key']}" if e["key"].count(":") else ""): e["reason"]
            for e in index["skipped"]}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    torch.manual_seed(0)
    model = build_tokenizer(tokenizer_config("tiny"), with_vae=False)
    return model.save_pretrained(tmp_path_factory.mktemp("tok") / "export")


# -- 1: resume pins its inputs --------------------------------------------------------------------


def test_tokenize_rerun_over_other_shards_is_refused_with_what_changed(tokenizer_dir, tmp_path, capsys) -> None:
    first = latent_shard(tmp_path / "a" / "shard-000000.tar", ["a0", "a1"])
    latent_shard(tmp_path / "b" / "shard-000000.tar", ["b0", "b1"])  # same name and size, other samples
    out = tmp_path / "codes"
    tokenize_main(["--shards", str(first.parent), "--tokenizer", str(tokenizer_dir), "--out", str(out)])
    with pytest.raises(SystemExit) as caught:
        tokenize_main(["--shards", str(tmp_path / "b"), "--tokenizer", str(tokenizer_dir), "--out", str(out)])
    assert caught.value.code == 2
    message = capsys.readouterr().err
    assert "other input shards" in message and str((tmp_path / "b").resolve()) in message  # names what changed
    assert sorted(s.key for s in shard_samples(out, even="none")) == ["a0", "a1"]  # nothing mixed in


def test_make_shards_rerun_over_other_records_says_what_changed(tmp_path) -> None:
    soundfile.write(tmp_path / "a.wav", sine(0.5, SR)[0].numpy(), SR)
    soundfile.write(tmp_path / "b.wav", sine(0.5, SR)[0].numpy(), SR)
    manifest(tmp_path, [{"path": "a.wav"}])
    make(tmp_path, tmp_path / "out").run()
    manifest(tmp_path, [{"path": "a.wav"}, {"path": "b.wav"}])
    with pytest.raises(SystemExit, match="num_records: 1 -> 2") as caught:
        make(tmp_path, tmp_path / "out").run()
    assert caught.value.code == 2


# -- 2: non-finite data ------------------------------------------------------------------------------


def test_absurd_float_peaks_are_skipped_not_encoded_to_inf(tmp_path) -> None:
    loud = sine(0.5, SR)[0].numpy() * 2e6
    soundfile.write(tmp_path / "loud.wav", loud, SR, subtype="FLOAT")
    soundfile.write(tmp_path / "ok.wav", sine(0.5, SR)[0].numpy(), SR)
    manifest(tmp_path, [{"path": "loud.wav"}, {"path": "ok.wav"}])
    index = make(tmp_path, tmp_path / "out").run()
    assert "exceeds" in reasons(index)["loud.wav"] and "peak" in reasons(index)["loud.wav"]
    assert index["num_samples"] == 1


def test_latents_are_checked_after_the_float16_cast(tmp_path, monkeypatch) -> None:
    soundfile.write(tmp_path / "ok.wav", sine(0.5, SR)[0].numpy(), SR)
    manifest(tmp_path, [{"path": "ok.wav"}])
    maker = make(tmp_path, tmp_path / "out")
    encode = ShardMaker._encode
    monkeypatch.setattr(ShardMaker, "_encode", lambda self, *a: encode(self, *a) * 0 + 1e5)  # finite in fp32 only
    index = maker.run()
    assert "not finite in float16" in reasons(index)["ok.wav"] and index["num_samples"] == 0


# -- 3: partial audio, channels ----------------------------------------------------------------------


def truncated(path: Path, fmt: str, keep: float = 0.5) -> Path:
    soundfile.write(path, (np.random.default_rng(0).standard_normal(3 * SR) * 0.1).astype(np.float32), SR, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("fmt", ["WAV", "OGG", "MP3"])
def test_truncated_files_are_flagged_and_kept_only_when_asked(tmp_path, fmt) -> None:
    path = truncated(tmp_path / f"cut.{fmt.lower()}", fmt)
    with pytest.raises(AudioError, match=rf"cut.{fmt.lower()}: truncated"):
        load_audio(path)
    stream = AudioStream(path, allow_truncated=True)
    kept = torch.cat(list(stream), dim=-1)
    assert stream.truncated and "truncated" in stream.truncated and 0 < kept.shape[-1] < 3 * SR


def test_complete_files_are_not_flagged(tmp_path) -> None:
    for fmt in ("WAV", "OGG", "MP3", "FLAC"):
        path = truncated(tmp_path / f"full.{fmt.lower()}", fmt, keep=1.0)
        stream = AudioStream(path)
        assert torch.cat(list(stream), -1).shape[-1] > 2.9 * SR and stream.truncated is None, fmt


def test_make_shards_skips_truncated_files_unless_allowed(tmp_path) -> None:
    truncated(tmp_path / "cut.wav", "WAV")
    manifest(tmp_path, [{"path": "cut.wav"}])
    index = make(tmp_path, tmp_path / "skip").run()
    assert "truncated WAV" in reasons(index)["cut.wav"] and index["num_samples"] == 0
    index = make(tmp_path, tmp_path / "keep", allow_truncated=True).run()
    samples = list(shard_samples(tmp_path / "keep", even="none"))
    assert index["num_samples"] == len(samples) > 0 and not index["skipped"]
    assert all("truncated WAV" in s.meta["truncated"] for s in samples)


def test_more_than_two_channels_are_averaged_not_dropped() -> None:
    wav = torch.arange(4.0)[:, None].repeat(1, 3)  # channel c holds the value c
    assert torch.equal(convert_channels(wav, 2), torch.tensor([[1.0] * 3, [2.0] * 3]))  # (0+2)/2, (1+3)/2


# -- 4: invalid shard samples ------------------------------------------------------------------------


@pytest.mark.parametrize("latent, meta, problem", [
    (np.ones((4, DIM), np.int16), {}, "floats"),
    (np.ones((4, DIM), bool), {}, "floats"),
    (np.ones((4, DIM), np.complex64), {}, "floats"),
    (np.ones((4, DIM, 1), np.float16), {}, "shape"),
    (np.ones(4, np.float16), {}, "shape"),
    (np.ones((0, DIM), np.float16), {}, "shape"),
    (np.full((4, DIM), np.inf, np.float16), {}, "non-finite"),
    (np.ones((4, DIM), np.float16), {"num_frames": -5}, "num_frames"),
    (np.ones((4, DIM), np.float16), {"num_frames": True}, "num_frames"),
    (np.ones((4, DIM), np.float16), {"num_frames": 9}, "exceeds"),
])
def test_decode_rejects_invalid_samples(latent, meta, problem) -> None:
    raw = {"__key__": "k1", "__url__": "s.tar", "json": json.dumps({**META, **meta}).encode(), "latent.npy": npy(latent)}
    with pytest.raises(ShardFormatError, match=rf"k1 \(in s.tar\).*{problem}"):
        decode_sample(raw)


def test_codes_must_be_integer_vectors_in_range() -> None:
    for codes in (np.ones(3, np.float32), np.ones(3, bool), np.ones((3, 1), np.int16), np.array([-1], np.int16)):
        with pytest.raises(ShardFormatError, match="codes.npy"):
            decode_sample({"__key__": "k", "json": json.dumps(META).encode(), "codes.npy": npy(codes)})


def test_a_key_twice_in_a_tar_is_flagged_not_merged(tmp_path, tokenizer_dir) -> None:
    meta = json.dumps(META).encode()
    good = npy(np.zeros((3, DIM), np.float16))
    src = tmp_path / "in"
    src.mkdir()
    write_tar(src / "shard-000000.tar", [("a.json", meta), ("a.latent.npy", good), ("a.latent.npy", good),
                                         ("b.json", meta), ("b.latent.npy", good), ("c.json", meta),
                                         ("b.latent.npy", good)])
    index = tokenize_main(["--shards", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o")])
    skipped = {e["key"]: e["reason"] for e in index["codes"]["skipped"]}
    assert "occurs twice" in skipped["a"] and "occurs twice" in skipped["b"]  # b's second run, after c
    assert [s.key for s in shard_samples(tmp_path / "o", even="none")] == ["b"]  # c has no latent: skipped too
    assert "no latent" in skipped["c"]


def test_garbage_and_empty_tars_are_failures_not_complete_shards(tmp_path, tokenizer_dir) -> None:
    src = tmp_path / "in"
    latent_shard(src / "shard-000000.tar", ["g0"])
    (src / "shard-000001.tar").write_bytes(b"this is not a tar archive" * 40)
    (src / "shard-000002.tar").write_bytes(b"")
    out = tmp_path / "o"
    index = tokenize_main(["--shards", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(out)])
    failed = {e["shard"]: e["reason"] for e in index["codes"]["failed_shards"]}
    assert set(failed) == {"shard-000001.tar", "shard-000002.tar"}
    assert "not a readable tar" in failed["shard-000001.tar"] and "shard-000001.tar" in failed["shard-000001.tar"]
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-000000.json", "shard-000000.tar"]
    assert [s["name"] for s in index["shards"]] == ["shard-000000.tar"]


def test_readers_skip_invalid_samples(tmp_path, caplog) -> None:
    path = tmp_path / "s.tar"
    with wds.TarWriter(str(path)) as sink:
        sink.write(encode_sample("good", META, latent=np.ones((3, DIM))))
        sink.write({"__key__": "ints", "json": json.dumps(META).encode(), "latent.npy": npy(np.ones((3, DIM), np.int64))})
    assert [s.key for s in shard_samples(path, even="none")] == ["good"]
    assert "ints" in caplog.text and "floats" in caplog.text


# -- 5: one bad record never kills a job -------------------------------------------------------------


def test_bad_manifest_rows_are_listed_skips_naming_file_and_line(tmp_path) -> None:
    soundfile.write(tmp_path / "ok.wav", sine(0.5, SR)[0].numpy(), SR)
    rows = [{"path": "ok.wav"}, {"path": 5}, {"path": "ok.wav", "captions": 7, "key": "c"},
            {"path": "ok.wav", "offset_s": "abc", "key": "o"}, "[1, 2]", "{not json"]
    manifest(tmp_path, rows)
    index = make(tmp_path, tmp_path / "out").run()
    why = {e["key"].rsplit(":", 1)[-1]: e["reason"] for e in index["skipped"]}
    assert set(why) == {"2", "3", "4", "5", "6"} and index["num_samples"] == 1
    assert all(r.startswith(f"{tmp_path / 'manifest.jsonl'}:{n}: ") for n, r in why.items())
    assert "'path' must be a path string" in why["2"] and "'captions' must be" in why["3"]
    assert "'offset_s' must be a number" in why["4"] and "JSON object" in why["5"] and "not JSON" in why["6"]


def test_a_non_utf8_manifest_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "manifest.jsonl").write_bytes(b'{"path": "caf\xe9.wav"}\n')
    with pytest.raises(LayoutError, match="manifest.jsonl is not UTF-8"):
        load_records("manifest", tmp_path)


@pytest.mark.parametrize("meta", [{"captions": 7}, [1, 2], {"offset_s": "abc"}, {"captions": ["a", 3]},
                                  {"duration_s": float("nan")}])
def test_wrong_metadata_types_are_format_errors(meta) -> None:
    body = meta if isinstance(meta, list) else {**META, **meta}
    with pytest.raises(ShardFormatError, match="sample k"):
        decode_sample({"__key__": "k", "json": json.dumps(body).encode(), "latent.npy": npy(np.ones((2, DIM)))})


@pytest.mark.parametrize("index", ["{broken", '["a list"]', '{"skipped": 5}'])
def test_a_malformed_input_index_is_one_clear_error(tmp_path, tokenizer_dir, capsys, index) -> None:
    src = tmp_path / "in"
    latent_shard(src / "shard-000000.tar", ["x0"])
    (src / "index.json").write_text(index)
    with pytest.raises(SystemExit) as caught:
        tokenize_main(["--shards", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o")])
    assert caught.value.code == 2 and str(src / "index.json") in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before any work


# -- 6: silently wrong metadata --------------------------------------------------------------------


def test_caption_lists_and_duplicate_paths(tmp_path) -> None:
    manifest(tmp_path, [{"path": "a.wav", "caption": ["one", "two"]}, {"path": "b.wav", "captions": "x|y"},
                        {"path": "a.wav", "offset_s": 1.0}, {"path": "./a.wav", "caption": "again"}])
    records = load_records("manifest", tmp_path)
    assert records[0].captions == ["one", "two"] and records[0].error is None
    assert records[1].captions == ["x", "y"]
    assert records[2].error is None  # another span of the same file
    assert records[3].error and "duplicate of" in records[3].error and "manifest.jsonl:1" in records[3].error
    assert records[3].error.startswith(f"{tmp_path / 'manifest.jsonl'}:4")


def test_folder_adapters_list_directories_and_dangling_links(tmp_path) -> None:
    genre = tmp_path / "genres_original" / "jazz"
    genre.mkdir(parents=True)
    soundfile.write(genre / "jazz.00000.wav", sine(0.1, SR)[0].numpy(), SR)
    (genre / "jazz.00001.wav").mkdir()
    os.symlink(genre / "gone.wav", genre / "jazz.00002.wav")
    records = load_records("gtzan", tmp_path)
    errors = {r.audio_path.name: r.error for r in records}
    assert errors["jazz.00000.wav"] is None
    assert "directory" in errors["jazz.00001.wav"] and "dangling" in errors["jazz.00002.wav"]


# -- 7: bounded decoding memory --------------------------------------------------------------------


def test_long_files_are_decoded_in_blocks_and_sent_per_segment(tmp_path, monkeypatch) -> None:
    from data_prep.segments import SegmentDataset

    soundfile.write(tmp_path / "long.wav", sine(35.0, 22050, channels=2).numpy().T, 22050)
    manifest(tmp_path, [{"path": "long.wav"}])
    requests: list[int] = []
    read = soundfile.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requests.append(frames)
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", spy)
    config = make(tmp_path, tmp_path / "out").config
    items = list(SegmentDataset(load_records("manifest", tmp_path), [0], config, SR, 2))
    assert max(requests) <= 10 * 22050 and -1 not in requests  # never the whole file at once
    segments = [item["segment"] for item in items if "segment" in item]
    assert len(segments) == 35 and all(s["wav"].shape == (2, SR) for s in segments)  # one segment per item
    assert items[-1]["done"] and items[-1]["error"] is None and items[-1]["whole_file"]
    whole, _ = load_audio(tmp_path / "long.wav", SR, 2)  # the same samples as one whole-file decode
    torch.testing.assert_close(torch.cat([s["wav"] for s in segments], -1)[:, : whole.shape[-1]], whole)


def _ogg_crc(page: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, over the page with a zero CRC field)."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def test_ogg_without_end_of_stream_flag_is_whole_not_truncated(tmp_path) -> None:
    """Real corpus files (klettres-data) end on a complete page without the EOS flag; they decode whole."""
    import struct

    path = tmp_path / "no_eos.ogg"
    soundfile.write(path, sine(3.0, SR)[0].numpy(), SR, format="OGG", subtype="VORBIS")
    data = bytearray(path.read_bytes())
    last = data.rfind(b"OggS")
    assert data[last + 5] & 0x04  # the writer set EOS on its last page
    data[last + 5] &= ~0x04 & 0xFF
    data[last + 22 : last + 26] = b"\0\0\0\0"
    data[last + 22 : last + 26] = struct.pack("<I", _ogg_crc(bytes(data[last:])))
    path.write_bytes(bytes(data))
    stream = AudioStream(path)
    assert torch.cat(list(stream), -1).shape[-1] > 2.9 * SR and stream.truncated is None
