"""Tests of data_prep/adapters.py: tiny fake layouts of each dataset, and clear layout errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.adapters import ADAPTERS, LayoutError, load_records


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_audiocaps_groups_captions_and_finds_audio(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "audiocap_id,youtube_id,start_time,caption\n1,abc,30,A dog barks\n")
    write(tmp_path / "val.csv", "audiocap_id,youtube_id,start_time,caption\n"
          + "".join(f"{i},xyz,0,caption {i}\n" for i in range(5)))
    write(tmp_path / "test.csv", "audiocap_id,youtube_id,start_time,caption\n")
    touch(tmp_path / "audio" / "train" / "Yabc.wav")
    records = load_records("audiocaps", tmp_path)
    assert [(r.key, r.split, len(r.captions)) for r in records] == [("abc", "train", 1), ("xyz", "val", 5)]
    assert records[0].audio_path == tmp_path / "audio" / "train" / "Yabc.wav"
    assert records[1].captions[4] == "caption 4"


def test_clotho_five_captions(tmp_path: Path) -> None:
    header = "file_name," + ",".join(f"caption_{i}" for i in range(1, 6)) + "\n"
    write(tmp_path / "clotho_captions_development.csv", header + "a b.wav,c1,c2,c3,c4,c5\n")
    records = load_records("clotho", tmp_path, splits="development")
    assert records[0].captions == ["c1", "c2", "c3", "c4", "c5"] and records[0].split == "train"
    assert records[0].audio_path == tmp_path / "development" / "a b.wav"
    write(tmp_path / "bad" / "clotho_captions_development.csv", "file_name,caption_1\nx.wav,c\n")
    with pytest.raises(LayoutError, match="caption_5"):
        load_records("clotho", tmp_path / "bad", splits="development")


def test_wavcaps_json(tmp_path: Path) -> None:
    data = {"data": [{"id": "123.wav", "caption": "rain on a roof", "duration": 3.0},
                     {"id": "7", "caption": "a bell"}]}
    write(tmp_path / "json_files" / "SoundBible" / "sb_final.json", json.dumps(data))
    touch(tmp_path / "audio" / "SoundBible" / "7.flac")
    records = load_records("wavcaps", tmp_path)
    assert [r.key for r in records] == ["SoundBible_123", "SoundBible_7"]
    assert records[1].audio_path == tmp_path / "audio" / "SoundBible" / "7.flac"
    assert records[0].dataset == "wavcaps_SoundBible" and records[0].captions == ["rain on a roof"]


def test_fma_subset_and_genre(tmp_path: Path) -> None:
    rows = [",artist,set,set,track,track", ",name,split,subset,genre_top,title", "track_id,,,,,",
            "2,AWOL,training,small,Hip-Hop,Food", "5,X,test,large,Rock,Big"]
    write(tmp_path / "fma_metadata" / "tracks.csv", "\n".join(rows) + "\n")
    (tmp_path / "fma_small").mkdir()
    records = load_records("fma", tmp_path, subset="small")
    assert len(records) == 1  # the "large" track is not in fma_small
    r = records[0]
    assert r.audio_path == tmp_path / "fma_small" / "000" / "000002.mp3"
    assert r.meta["genre"] == "Hip-Hop" and r.captions[0] == "Hip-Hop music" and r.split == "train"


def test_esc50_folds(tmp_path: Path) -> None:
    write(tmp_path / "meta" / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n"
          "1-100032-A-0.wav,1,0,dog,True,100032,A\n5-9032-A-0.wav,5,41,chainsaw,False,9032,A\n")
    records = load_records("esc50", tmp_path)
    assert [(r.split, r.meta["label"], r.meta["target"]) for r in records] == [("fold1", "dog", 0),
                                                                             ("fold5", "chainsaw", 41)]
    assert records[0].audio_path == tmp_path / "audio" / "1-100032-A-0.wav"


def test_gtzan_genre_folders(tmp_path: Path) -> None:
    touch(tmp_path / "genres_original" / "jazz" / "jazz.00001.wav")
    touch(tmp_path / "genres_original" / "blues" / "blues.00000.wav")
    records = load_records("gtzan", tmp_path)
    assert [(r.meta["genre"], r.key) for r in records] == [("blues", "blues_00000"), ("jazz", "jazz_00001")]


def test_vctk_transcripts_and_mic(tmp_path: Path) -> None:
    touch(tmp_path / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac")
    touch(tmp_path / "wav48_silence_trimmed" / "p225" / "p225_001_mic2.flac")
    touch(tmp_path / "wav48_silence_trimmed" / "p315" / "p315_002_mic1.flac")
    write(tmp_path / "txt" / "p225" / "p225_001.txt", "Please call Stella.\n")
    records = load_records("vctk", tmp_path)
    assert [(r.key, r.meta["speaker"]) for r in records] == [("p225_001", "p225"), ("p315_002", "p315")]
    assert records[0].meta["transcript"] == "Please call Stella." and records[1].captions == []


def test_openaqa_groups_qa_per_audio(tmp_path: Path, caplog) -> None:
    """LTU's on-disk format: a JSON list of flat QA dicts, audio_id an absolute path of the authors' machine."""
    qa = [{"instruction": "What is the sound?", "input": "", "audio_id": "/data/sls/audioset/dave_version/audio/a1.flac",
           "dataset": "as_strong_train", "task": "caption", "output": "A car passes."},
          {"instruction": "Is it loud?", "input": "", "audio_id": "/data/sls/audioset/dave_version/audio/a1.flac",
           "dataset": "as_strong_train", "task": "open-ended question", "output": "Yes."},
          {"instruction": "Label?", "input": "", "audio_id": "b2.wav", "task": "cla_label", "output": "Dog"},
          {"instruction": "What happens?", "input": "I am so sad...", "audio_id": "c3.wav", "dataset": "x",
           "task": "open-ended question", "output": "Someone cries."},
          {"instruction": "broken", "audio_id": "c3.wav"}]  # no output: skipped, the rest goes on
    write(tmp_path / "qa.json", json.dumps(qa, indent=1))
    touch(tmp_path / "audio" / "a1.flac")
    records = load_records("openaqa", tmp_path, json_file="qa.json")
    assert "lacks ['output']" in caplog.text
    assert [r.key for r in records] == ["a1", "b2", "c3"]
    a1, b2, c3 = records
    assert a1.audio_path == tmp_path / "audio" / "a1.flac" and a1.captions == ["A car passes."]
    assert a1.meta["conversations"] == [
        [{"from": "human", "value": "<audio>\nWhat is the sound?"}, {"from": "gpt", "value": "A car passes."}],
        [{"from": "human", "value": "<audio>\nIs it loud?"}, {"from": "gpt", "value": "Yes."}]]
    assert a1.meta["tasks"] == ["caption", "open-ended question"] and a1.meta["source_dataset"] == "as_strong_train"
    assert b2.audio_path == tmp_path / "b2.wav" and b2.captions == ["Dog"]
    assert c3.captions == [] and c3.meta["conversations"][0][0]["value"] == "<audio>\nWhat happens?\nI am so sad..."
    write(tmp_path / "none.json", json.dumps([{"instruction": "x"}]))
    with pytest.raises(LayoutError, match="none of the 1 entries"):
        load_records("openaqa", tmp_path, json_file="none.json")


def test_audioset_labels(tmp_path: Path) -> None:
    write(tmp_path / "ontology.json", json.dumps([{"id": "/m/09x0r", "name": "Speech"},
                                                 {"id": "/m/0bt9lr", "name": "Dog"}]))
    write(tmp_path / "eval_segments.csv", "# Segments csv\n# YTID, start_seconds, end_seconds, positive_labels\n"
          '--4gqARaEJE, 0.000, 10.000, "/m/09x0r,/m/0bt9lr"\n')
    touch(tmp_path / "audio" / "eval" / "Y--4gqARaEJE.wav")
    records = load_records("audioset", tmp_path)
    assert len(records) == 1
    assert records[0].captions == ["Speech, Dog"] and records[0].meta["mids"] == ["/m/09x0r", "/m/0bt9lr"]
    assert records[0].audio_path.name == "Y--4gqARaEJE.wav" and records[0].split == "eval"


def test_manifest_jsonl_and_csv(tmp_path: Path) -> None:
    write(tmp_path / "m.jsonl", json.dumps({"path": "a/x.ogg", "caption": "c", "source": "pkg", "lang": "en"})
          + "\n" + json.dumps({"file": "/abs/y.wav", "captions": ["p", "q"]}) + "\n")
    records = load_records("manifest", tmp_path, manifest=str(tmp_path / "m.jsonl"))
    assert records[0].audio_path == tmp_path / "a" / "x.ogg" and records[0].dataset == "pkg"
    assert records[0].meta == {"source": "pkg", "lang": "en"} and records[0].key == "a/x"
    assert records[1].audio_path == Path("/abs/y.wav") and records[1].captions == ["p", "q"]
    assert records[1].dataset == "m"
    write(tmp_path / "m.csv", "audio,captions,split,offset_s,duration_s\nz.wav,one|two,test,1.5,2\n")
    (r,) = load_records("manifest", tmp_path, manifest=str(tmp_path / "m.csv"))
    assert r.captions == ["one", "two"] and r.split == "test" and (r.offset_s, r.duration_s) == (1.5, 2.0)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_layout_mismatch_is_a_clear_error(tmp_path: Path, name: str) -> None:
    touch(tmp_path / "unrelated.txt")
    with pytest.raises(LayoutError, match=name):
        load_records(name, tmp_path)


def test_unknown_adapter_and_option(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="unknown adapter"):
        load_records("nope", tmp_path)
    with pytest.raises(LayoutError, match="colour"):
        load_records("esc50", tmp_path, colour="red")
