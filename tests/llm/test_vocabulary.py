"""AudioVocabulary: id mapping, spans, tokenizer round trip and the documented parse rules."""

from __future__ import annotations

import pytest
import torch

from lmmsn.llm.tiny import build_tiny_text_tokenizer
from lmmsn.llm.vocabulary import AudioSegment, AudioVocabulary, TextSegment

K = 32
FIRST = 100
V = AudioVocabulary(K, FIRST)
SOA, EOA = V.soa_id, V.eoa_id


def a(*codes: int) -> list[int]:
    return [FIRST + c for c in codes]


def test_ids_and_codes_round_trip():
    assert (SOA, EOA) == (FIRST + K, FIRST + K + 1)
    codes = torch.tensor([[0, 5], [31, 7]])
    ids = V.codes_to_ids(codes)
    assert ids.shape == (2, 2) and int(ids.min()) == FIRST and int(ids.max()) == FIRST + 31
    assert torch.equal(V.ids_to_codes(ids), codes)
    assert V.is_audio(ids).all() and not V.is_audio(torch.tensor([SOA, EOA, FIRST - 1])).any()
    assert V.audio_span_ids([2, 3]) == [SOA, FIRST + 2, FIRST + 3, EOA]
    assert V.format_audio([2, 3]) == "<soa><a_2><a_3><eoa>"
    with pytest.raises(ValueError, match="audio codes must be in"):
        V.codes_to_ids([K])
    with pytest.raises(ValueError, match="non-audio"):
        V.ids_to_codes([SOA])


def test_extend_tokenizer_tokenizes_spans_and_is_idempotent(tmp_path):
    tokenizer = build_tiny_text_tokenizer()
    n = len(tokenizer)
    voc = AudioVocabulary.extend(tokenizer, K)
    assert voc.first_audio_id == n and len(tokenizer) == n + K + 2
    codes = [31, 0, 7, 7]
    text = "a dog " + voc.format_audio(codes) + " barks"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    start = ids.index(voc.soa_id)
    assert ids[start : start + len(codes) + 2] == voc.audio_span_ids(codes)
    assert AudioVocabulary.extend(tokenizer, K) == voc and len(tokenizer) == n + K + 2
    voc.save(tmp_path)
    assert AudioVocabulary.load(tmp_path) == voc
    segments = voc.parse(ids, tokenizer)
    assert [type(s) for s in segments] == [TextSegment, AudioSegment, TextSegment]
    assert segments[0].text == "a dog " and segments[2].text == " barks" and segments[1].codes == codes


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        # well-formed
        ([1, 2, SOA, *a(3, 4), EOA, 5], [TextSegment([1, 2]), AudioSegment([3, 4]), TextSegment([5])]),
        # rule 3: text inside a span is dropped and counted, the span goes on
        ([SOA, *a(1), 7, 8, *a(2), EOA], [AudioSegment([1, 2], dropped=2)]),
        # rule 4: missing <eoa>
        ([9, SOA, *a(1, 2)], [TextSegment([9]), AudioSegment([1, 2], closed=False)]),
        # rule 5: <soa> inside a span restarts it
        ([SOA, *a(1), SOA, *a(2), EOA], [AudioSegment([1], closed=False), AudioSegment([2])]),
        # rule 6: bare audio ids; ended by text or by <eoa>
        ([*a(1, 2), 9], [AudioSegment([1, 2], opened=False, closed=False), TextSegment([9])]),
        ([*a(4), EOA, 9], [AudioSegment([4], opened=False, closed=True), TextSegment([9])]),
        # rule 7: stray <eoa> dropped
        ([1, EOA, 2], [TextSegment([1, 2])]),
        # rule 8: out-of-range ids dropped (counted inside spans)
        ([-1, 1, EOA + 1, SOA, *a(0), EOA + 5, EOA], [TextSegment([1]), AudioSegment([0], dropped=1)]),
        # rule 9: empty span
        ([SOA, EOA], [AudioSegment([])]),
        ([], []),
    ],
)
def test_parse_malformed(ids, expected):
    assert V.parse(torch.tensor(ids, dtype=torch.long)) == expected
    assert V.parse(ids) == expected


def test_parse_complete_flag_and_audio_codes():
    segments = V.parse([SOA, *a(1), EOA, *a(2)])
    assert [s.complete for s in segments] == [True, False]
    assert V.audio_codes([SOA, *a(1), EOA, 3, SOA, *a(5, 6)]) == [[1], [5, 6]]
