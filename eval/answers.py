"""Deterministic single-choice answer extraction (AIR-Bench / MMAU style).

Audio LLMs answer multiple-choice questions in free text and rarely with a
clean letter; the score then depends on how the answer is mapped onto a
choice. Some harnesses ask a GPT model and guess at random when nothing
matches, which adds noise (`evaluation-practice.md` section 2). This module
maps an answer with fixed rules, in this order, and never guesses:

1. **Letter.** The whole answer is a choice letter, optionally in brackets and
   followed by `.`, `:` or `)` (`"B"`, `"(b)"`, `"C."`); or it begins with a
   letter followed by `.`, `:` or `)` (`"A. dog"`, `"B) rain"`); or it contains
   `answer is X` / `answer: X` / `option X` for a choice letter X. A bare
   leading article (`"A dog barks"`) is NOT a letter, and neither is a
   lower-case, unbracketed `a` after `answer is` / `answer:` that a word
   follows (`"The answer is a car horn."` is the article: it goes on to the
   text rules); `"The answer is A."`, `"answer: (a) ..."` and `"option a"` are letters.
2. **Exact text.** The normalized answer equals one choice's normalized text.
3. **MMAU word rule.** The answer's words contain every word of choice i and
   none of the words that only the other choices have (words of choice j not in
   choice i). Exactly one such i -> that choice.

Normalization: lower-case, every character that is not a letter, digit,
apostrophe or whitespace becomes a space (hyphens split words), words split
on whitespace. When no rule gives exactly one choice the answer is
**unmatched** (several candidates -> `ambiguous`); unmatched answers count as
wrong in `accuracy` and are reported separately.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJ"
_NON_WORD = re.compile(r"[^\w'\s]|_")
_WHOLE_LETTER = re.compile(r"^\s*[\(\[]?([a-j])[\)\]]?\s*[.:)]?\s*$", re.IGNORECASE)
_LEADING_LETTER = re.compile(r"^\s*[\(\[]?([a-j])\s*[.:)\]]\s+\S", re.IGNORECASE)
_STATED_LETTER = re.compile(r"\b(answer\s+is|answer\s*:|option|choice)\s*([\(\[]?)([a-j])\b[\)\]]?(?=(\s+\w)?)", re.IGNORECASE)


def _is_article(m: re.Match) -> bool:
    """`answer is a car horn`: an unbracketed lower-case `a` after `answer is/:` with a word after it."""
    keyword, bracket, letter, next_word = m.groups()
    return letter == "a" and not bracket and keyword.lower().startswith("answer") and next_word is not None


def normalize(text: str) -> list[str]:
    """Lower-cased words; punctuation (except apostrophes) separates words."""
    return _NON_WORD.sub(" ", text.lower()).split()


@dataclass(frozen=True)
class Extraction:
    """The choice an answer maps to (index None = unmatched) and the rule that decided."""

    index: int | None
    rule: str
    "letter | exact | words | unmatched | ambiguous | empty"


def extract_choice(answer: str, choices: Sequence[str]) -> Extraction:
    """Map a free-text answer onto one of `choices` (rules in the module docstring).

    Args:
        answer: the model's output.
        choices: the option texts, in letter order (A, B, ...).

    Returns:
        Extraction(index or None, rule).
    """
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"need 2..{len(LETTERS)} choices, got {len(choices)}")
    if answer is None or not answer.strip():
        return Extraction(None, "empty")
    valid = LETTERS[: len(choices)].lower()
    for pattern in (_WHOLE_LETTER, _LEADING_LETTER, _STATED_LETTER):
        if pattern is _STATED_LETTER:
            found = {m.group(3).lower() for m in pattern.finditer(answer) if not _is_article(m)} & set(valid)
        else:
            found = {m.lower() for m in pattern.findall(answer)}
        if len(found) == 1:
            letter = found.pop()
            if letter in valid:
                return Extraction(valid.index(letter), "letter")
        elif len(found) > 1:
            return Extraction(None, "ambiguous")
    words = normalize(answer)
    norm_choices = [normalize(c) for c in choices]
    exact = [i for i, c in enumerate(norm_choices) if c == words]
    if len(exact) == 1:
        return Extraction(exact[0], "exact")
    answer_words = set(words)
    hits = []
    for i, ci in enumerate(norm_choices):
        own = set(ci)
        others = set().union(*(set(cj) for j, cj in enumerate(norm_choices) if j != i)) - own
        if own and own <= answer_words and not (answer_words & others):
            hits.append(i)
    if len(hits) == 1:
        return Extraction(hits[0], "words")
    return Extraction(None, "ambiguous" if hits else "unmatched")


def score_choices(answers: Sequence[str], choices: Sequence[Sequence[str]], correct: Sequence[int]) -> dict:
    """Accuracy of free-text answers to single-choice questions.

    Returns:
        dict with n, correct, wrong (matched but wrong), unmatched (no rule
        decided: unmatched/ambiguous/empty), accuracy = correct / n (unmatched
        count as wrong), accuracy_matched = correct / (n - unmatched), rule
        counts, and per-item (index, rule).
    """
    if not len(answers) == len(choices) == len(correct):
        raise ValueError(f"lengths differ: {len(answers)} answers, {len(choices)} choice lists, {len(correct)} keys")
    items = [extract_choice(a, c) for a, c in zip(answers, choices, strict=True)]
    n = len(items)
    n_correct = sum(e.index == k for e, k in zip(items, correct, strict=True))
    unmatched = sum(e.index is None for e in items)
    rules: dict[str, int] = {}
    for e in items:
        rules[e.rule] = rules.get(e.rule, 0) + 1
    return {
        "n": n,
        "correct": n_correct,
        "wrong": n - n_correct - unmatched,
        "unmatched": unmatched,
        "accuracy": n_correct / n if n else float("nan"),
        "accuracy_matched": n_correct / (n - unmatched) if n > unmatched else float("nan"),
        "rules": rules,
        "items": [{"index": e.index, "rule": e.rule} for e in items],
        "rule_doc": "eval.answers module docstring (letter > exact > MMAU words; unmatched never guessed)",
    }
