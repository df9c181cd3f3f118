"""Tests for eval.answers: the documented extraction rules, case by case."""

import pytest

from eval.answers import extract_choice, score_choices

CHOICES = ["dog barking", "cat meowing", "rain", "car horn"]


@pytest.mark.parametrize(
    ("answer", "index", "rule"),
    [
        ("B", 1, "letter"),
        ("(c).", 2, "letter"),
        ("[D]", 3, "letter"),
        ("A. dog barking", 0, "letter"),
        ("The answer is (D) because it honks", 3, "letter"),
        ("Answer: b", 1, "letter"),
        ("dog barking", 0, "exact"),
        ("Dog-barking!", 0, "exact"),  # punctuation and hyphens normalize away
        ("I hear a cat meowing loudly", 1, "words"),
        ("Rain.", 2, "exact"),
        ("a dog barks", None, "unmatched"),  # 'barking' missing: MMAU rule needs every word
        ("A dog barking and a cat meowing", None, "unmatched"),  # contains words unique to other choices
        ("cat", None, "unmatched"),
        ("", None, "empty"),
        ("   ", None, "empty"),
        ("A or B", None, "unmatched"),  # 'A' is no whole answer, no stated letter, no choice words
        ("option A or option C", None, "ambiguous"),
        ("E", None, "unmatched"),  # not a letter of a 4-choice question
    ],
)
def test_extraction_cases(answer, index, rule):
    got = extract_choice(answer, CHOICES)
    assert (got.index, got.rule) == (index, rule)


def test_article_a_is_not_a_letter():
    # "A cat meowing" must go through the word rule (choice B), not be read as letter A.
    assert extract_choice("A cat meowing", CHOICES).index == 1


def test_score_counts_unmatched_as_wrong_and_never_guesses():
    answers = ["A", "cat meowing", "no idea", "D", "rain and a dog barking"]
    correct = [0, 1, 2, 2, 2]
    res = score_choices(answers, [CHOICES] * 5, correct)
    # correct: item0 (A), item1 (exact); wrong: item3 (D vs C); unmatched: item2, item4 (rain + dog words)
    assert (res["correct"], res["wrong"], res["unmatched"]) == (2, 1, 2)
    assert res["accuracy"] == pytest.approx(2 / 5)
    assert res["accuracy_matched"] == pytest.approx(2 / 3)
    assert [it["index"] for it in res["items"]] == [0, 1, None, 3, None]


@pytest.mark.parametrize(
    ("answer", "index", "rule"),
    [
        ("The answer is a car horn.", 1, "words"),  # the article, not letter A (issue 15)
        ("Answer: a dog barking", 0, "words"),
        ("The answer is A.", 0, "letter"),
        ("The answer is a", 0, "letter"),
        ("The answer is (a) dog barking", 0, "letter"),
        ("option a", 0, "letter"),
        ("The answer is b", 1, "letter"),
    ],
)
def test_article_after_answer_is_is_not_a_letter(answer, index, rule):
    got = extract_choice(answer, ["dog barking", "car horn"])
    assert (got.index, got.rule) == (index, rule)
