"""Hostile input for `AudioVocabulary.parse` (llm/vocabulary.py): it never raises, and junk changes nothing.

Property tests (hypothesis): the default suite runs a seeded share (`derandomize=True`,
`LMMSN_HYPOTHESIS_EXAMPLES` examples per property, 200 unless set); a long run sets e.g.
`LMMSN_HYPOTHESIS_EXAMPLES=5000`.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lmmsn.llm.vocabulary import AudioSegment, AudioVocabulary, TextSegment  # noqa: E402

K, FIRST = 8, 20
VOCAB = AudioVocabulary(K, FIRST)  # <a_c> = 20 + c, <soa> = 28, <eoa> = 29
SOA, EOA = VOCAB.soa_id, VOCAB.eoa_id
EXAMPLES = int(os.environ.get("LMMSN_HYPOTHESIS_EXAMPLES", "200"))
SEEDED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None)


class _Opaque:
    """An object that is no number."""


JUNK = st.sampled_from([math.nan, math.inf, -math.inf, None, 0.5, -2.25, "7", b"x", True, False, _Opaque(), {"id": 3}])
IDS = st.one_of(st.integers(-3, EOA + 3), st.sampled_from([-(2**70), 2**70, 2**63]))
ELEMENT = st.one_of(IDS, JUNK, st.floats(allow_nan=True, allow_infinity=True),
                    IDS.map(float))  # integral floats are ids (a float tensor's .tolist())
CHAOS = st.recursive(st.lists(ELEMENT, max_size=30), lambda inner: st.lists(st.one_of(ELEMENT, inner), max_size=6),
                     max_leaves=60)


def _reference_ids(value) -> list[int | None]:
    """Rule 10 written out independently: the flat id sequence (None for an element that is no id)."""
    if isinstance(value, (list, tuple)):
        return [i for v in value for i in _reference_ids(v)]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [None]
    if isinstance(value, float):
        return [int(value)] if math.isfinite(value) and value.is_integer() else [None]
    return [value]


def _summary(segments) -> list[tuple]:
    """Segments without their `dropped` counters (what junk may change)."""
    out = []
    for s in segments:
        assert isinstance(s, (TextSegment, AudioSegment)), type(s)
        out.append(("text", tuple(s.ids)) if isinstance(s, TextSegment) else ("audio", tuple(s.codes), s.opened, s.closed))
    return out


@SEEDED
@given(CHAOS)
@example([math.nan])
@example([None, 3, None])
@example([1.0, 2.5, 21.0, float("inf")])
@example([[SOA, 21], [22, EOA]])  # 2-D as nested lists
@example([SOA, [21, [22, [math.nan, EOA]]], "x"])
def test_parse_never_raises_and_keeps_every_valid_audio_id(ids):
    segments = VOCAB.parse(ids)
    flat = _reference_ids(ids)
    audio = [i - FIRST for i in flat if i is not None and FIRST <= i < SOA]
    assert [c for s in segments if isinstance(s, AudioSegment) for c in s.codes] == audio
    text = [i for s in segments if isinstance(s, TextSegment) for i in s.ids]
    assert all(0 <= i < FIRST for i in text)
    assert len(text) <= sum(1 for i in flat if i is not None and 0 <= i < FIRST)
    assert VOCAB.audio_codes(ids) == [list(s.codes) for s in segments if isinstance(s, AudioSegment)]


SEGMENT = st.one_of(
    st.lists(st.integers(0, FIRST - 1), min_size=1, max_size=5).map(lambda ids: ("text", ids)),
    st.lists(st.integers(0, K - 1), max_size=6).map(lambda codes: ("audio", codes)),
)


@SEEDED
@given(st.lists(SEGMENT, max_size=6), st.lists(st.tuples(st.integers(0, 60), JUNK), max_size=8))
def test_junk_anywhere_changes_no_segment(segments, junk):
    ids: list = []
    for kind, values in segments:
        ids += values if kind == "text" else VOCAB.audio_span_ids(values)
    expected = []
    for kind, values in segments:  # consecutive text runs form one segment (rule 1)
        if kind == "text" and expected and expected[-1][0] == "text":
            expected[-1] = ("text", expected[-1][1] + tuple(values))
        else:
            expected.append(("text", tuple(values)) if kind == "text" else ("audio", tuple(values), True, True))
    assert _summary(VOCAB.parse(ids)) == expected
    noisy = list(ids)
    for position, item in junk:
        noisy.insert(position % (len(noisy) + 1), item)
    assert _summary(VOCAB.parse(noisy)) == expected
    dropped = sum(s.dropped for s in VOCAB.parse(noisy) if isinstance(s, AudioSegment))
    assert dropped <= len(junk)


@SEEDED
@given(st.lists(st.lists(st.integers(0, EOA), min_size=3, max_size=3), min_size=1, max_size=4))
def test_tensors_of_any_shape_and_dtype_parse_as_their_flat_list(rows):
    flat = [i for row in rows for i in row]
    expected = _summary(VOCAB.parse(flat))
    assert _summary(VOCAB.parse(torch.tensor(rows))) == expected  # 2-D, row-major
    assert _summary(VOCAB.parse(torch.tensor(rows, dtype=torch.float32))) == expected
    assert _summary(VOCAB.parse(torch.tensor(rows).numpy())) == expected
    assert _summary(VOCAB.parse(tuple(flat))) == expected


@pytest.mark.parametrize(
    "ids, expected",
    [
        (None, []),
        (5, [("text", (5,))]),
        (5.0, [("text", (5,))]),
        (math.nan, []),
        ("abc", []),  # one element that is no id, not three characters
        (b"\x00", []),
        (torch.tensor(3), [("text", (3,))]),
        (torch.tensor([math.nan, 21.0]), [("audio", (1,), False, False)]),
        (torch.tensor([], dtype=torch.float64), []),
        (_Opaque(), []),
        ([], []),
        ([[]], []),
        (iter([SOA, 21]), [("audio", (1,), True, False)]),
    ],
)
def test_odd_whole_inputs_are_sequences_or_nothing(ids, expected):
    assert _summary(VOCAB.parse(ids)) == expected
