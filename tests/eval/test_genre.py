"""Tests for eval.genre: the documented matching rule counts exactly its cases."""

import pytest

from eval.genre import GTZAN_GENRES, described_as_music, genre_appears, score_genre


@pytest.mark.parametrize(
    ("answer", "genre", "hit"),
    [
        ("Hip-Hop, rap", "hiphop", True),
        ("hip hop", "hiphop", True),
        ("HIPHOP beats", "hiphop", True),
        ("rap", "hiphop", False),  # related genres are not spellings
        ("Jazz.", "jazz", True),
        ("rock and roll", "rock", True),
        ("rock-and-roll", "rock", True),
        ("rocky mountains", "rock", False),
        ("popular music", "pop", False),
        ("synth-pop", "pop", True),
        ("classic piano piece", "classical", False),
        ("metallic clang", "metal", False),
        ("heavy metal", "metal", True),
        ("", "blues", False),
        ("rhythm and blues", "blues", True),
    ],
)
def test_genre_appears_cases(answer, genre, hit):
    assert genre_appears(answer, genre) is hit


@pytest.mark.parametrize(
    ("answer", "music"),
    [("a song with drums", True), ("This is jazz", True), ("a dog barking", False), ("", False), ("musical instrument", True), ("amusing talk", False)],
)
def test_described_as_music(answer, music):
    assert described_as_music(answer) is music


def test_score_genre_hand_counted():
    answers = ["rock, pop", "Pop music", "a dog barking", "", "jazz or blues", "blues"]
    labels = ["rock", "rock", "rock", "jazz", "jazz", "blues"]
    res = score_genre(answers, labels, genres=GTZAN_GENRES, top_k=2)
    assert res["per_genre"]["rock"]["correct"] == 1 and res["per_genre"]["rock"]["n"] == 3
    assert res["per_genre"]["jazz"]["accuracy"] == pytest.approx(0.5)
    assert res["per_genre"]["jazz"]["empty"] == 1
    assert res["per_genre"]["blues"]["accuracy"] == 1.0
    assert res["accuracy"] == pytest.approx(3 / 6)
    # music: "rock, pop" (genre), "Pop music", "jazz or blues", "blues" -> 4 of 6
    assert res["music_count"] == 4 and res["music_rate"] == pytest.approx(4 / 6)
    assert res["empty"] == 1
    assert dict(res["per_genre"]["rock"]["genres_mentioned"])["pop"] == 2


def test_clips_are_cut_to_the_training_segment_by_default(tmp_path, monkeypatch):
    """GTZAN clips are 30 s; the tokenizer and the LLM saw 10 s: the CLI cuts to 10 s unless told otherwise."""
    import json

    import eval.genre as genre
    from lmmsn.audio import save_audio
    from tests.conftest import sine

    save_audio(tmp_path / "blues.00000.wav", sine(12.0, 8000), 8000)
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "blues.00000.wav", "category": "music", "label": "blues",
                                                  "caption": "blues music"}) + "\n")
    seen = []

    def system(audios, prompt=None):
        seen.extend(wav.shape[-1] / sr for wav, sr in audios)
        return ["blues music"] * len(audios)

    monkeypatch.setattr(genre, "build_system", lambda spec, max_new_tokens=None: system)
    result = genre.main(["--manifest", str(tmp_path / "m.jsonl"), "--audio-root", str(tmp_path), "--out", str(tmp_path / "out")])
    assert seen == [10.0] and result["max_seconds"] == genre.DEFAULT_MAX_SECONDS == 10.0
    genre.main(["--manifest", str(tmp_path / "m.jsonl"), "--audio-root", str(tmp_path), "--out", str(tmp_path / "o2"),
                "--max-seconds", "3"])
    assert seen[-1] == 3.0
