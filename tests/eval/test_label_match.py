"""The caption matching rule (eval.label_match)."""

from __future__ import annotations

import pytest

from eval.label_match import SYNONYMS, LabelTable, fold, words

ROWS = [
    {"label": "snare drum", "category": "music_instrument"}, {"label": "drums", "category": "music_instrument"},
    {"label": "pain grunt", "category": "human_sounds"}, {"label": "speech", "category": "speech"},
    {"label": "bird", "category": "animal"}, {"label": "bird", "category": "animal"},
    {"label": "birds", "category": "environment"}, {"label": "music", "category": "music"},
    {"label": "wolf", "category": "animal"}, {"label": "glitch", "category": "electronic"},
    {"label": "keyboard typing", "category": "environment"}, {"label": "hi-hat", "category": "music_instrument"},
]


@pytest.fixture
def table() -> LabelTable:
    return LabelTable.from_rows(ROWS)


def test_fold_joins_inflections():
    assert {fold(w) for w in ("bark", "barks", "barking", "barked")} == {"bark"}
    assert [fold(w) for w in ("cries", "wolves", "boxes", "glass", "hitting", "hits", "chirps")] == \
        ["cry", "wolf", "box", "glass", "hit", "hit", "chirp"]
    assert words('A Hi-Hat hit, "Две"!') == ["a", "hi", "hat", "hit"]


def test_first_term_is_leftmost_then_longest(table):
    m = table.first("a snare drum hit")
    assert m.term == ("snare", "drum") and m.labels == ("snare drum",) and m.category == "music_instrument"
    assert table.first("a wolf howls over upbeat music").category == "animal"
    assert table.first("upbeat electronic game music").category == "music"  # 'electronic' is no term
    assert table.first("a glitchy electronic sound").category == "electronic"  # synonym 'glitchy'


def test_a_shared_term_takes_the_majority_category_of_its_labels(table):
    m = table.first("birds sing")  # 'birds' folds to 'bird': labels bird (2 animal rows) and birds (1 environment)
    assert m.labels == ("bird", "birds") and m.category == "animal"


def test_label_accuracy_is_any_term_of_the_true_label(table):
    assert table.names_label("a cartoonish voice grunts in pain", "pain grunt")  # synonym, other word order
    assert table.names_label("a wolf howls and a snare drum hit", "snare drum")  # anywhere, not only first
    assert not table.names_label("a snare drum hit", "hi-hat")
    assert table.names_label("a key on a mechanical keyboard is pressed", "keyboard typing")
    assert table.names_label("a hihat", "hi-hat") and table.names_label("a hi-hat hit", "hi-hat")


def test_speech_needs_a_speech_word_not_just_a_voice(table):
    assert table.category('a voice says in German: "Pung"') == "speech"
    assert table.category("a cartoonish voice grunts in pain") == "human_sounds"
    assert not table.names_label("a cartoonish voice grunts in pain", "speech")


def test_unmatched_and_empty_are_counted_never_guessed(table):
    for caption in ("", "a strange noise", "…"):
        judged = table.judge(caption, "wolf", "animal")
        assert not judged["matched"] and judged["predicted_category"] is None
        assert not judged["category_correct"] and not judged["label_correct"]
    assert table.judge("", "wolf", "animal")["empty"] and not table.judge("a noise", "wolf", "animal")["empty"]
    good = table.judge("a wolf growls", "wolf", "animal")
    assert good == {"empty": False, "matched": True, "term": "wolf", "predicted_category": "animal",
                    "category_correct": True, "label_correct": True}


def test_table_needs_rows_and_synonyms_are_lowercase_phrases():
    with pytest.raises(ValueError, match="no rows"):
        LabelTable.from_rows([{"label": "x"}])
    assert all(p and p == p.lower() and words(p) for phrases in SYNONYMS.values() for p in phrases)
