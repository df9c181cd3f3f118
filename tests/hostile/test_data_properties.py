"""Property tests: the manifest row parser and the sample-metadata parser never fail unnamed.

For any input they either return a well-formed value or raise the library's own error
(`data_prep.adapters.RecordError`, `lmmsn.data.format.ShardFormatError`); never a TypeError,
KeyError, ValueError of their own. The default run is a seeded share (derandomize=True, 200
examples per property); `LMMSN_HYPOTHESIS_EXAMPLES=5000` runs a large one.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from data_prep.adapters import PATH_COLUMNS, Record, RecordError, parse_manifest_row
from lmmsn.data.format import MAX_CODE, REQUIRED_META, ShardFormatError, decode_sample

EXAMPLES = int(os.environ.get("LMMSN_HYPOTHESIS_EXAMPLES", "200"))
PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
ROW_KEYS = [*PATH_COLUMNS, "caption", "captions", "split", "key", "offset_s", "duration_s", "source"]
keys = st.sampled_from(ROW_KEYS) | st.text(max_size=6)
plausible = (st.text(max_size=10) | st.sampled_from(["a.wav", "x/y.flac", "/abs/z.ogg", "1.5", "-2", "nan", "a|b", ""])
             | st.lists(st.text(max_size=5), max_size=3))
rows = (st.dictionaries(keys, plausible | json_values, max_size=8)  # JSONL rows, mostly plausible
        | st.dictionaries(st.sampled_from(ROW_KEYS) | st.none(), st.text(max_size=8) | st.none(), max_size=8)  # CSV
        | json_values)


@PROPERTY
@given(row=rows)
def test_manifest_row_parser_returns_a_record_or_a_record_error(row) -> None:
    try:
        record = parse_manifest_row(row, Path("/root"), "m.jsonl:3", "m")
    except RecordError as exc:
        assert str(exc).startswith("m.jsonl:3: ")
        return
    assert isinstance(record, Record) and isinstance(record.audio_path, Path) and record.audio_path.name
    assert isinstance(record.key, str) and isinstance(record.dataset, str) and isinstance(record.split, str)
    assert isinstance(record.captions, list) and all(isinstance(c, str) and c for c in record.captions)
    assert math.isfinite(record.offset_s) and record.offset_s >= 0
    assert record.duration_s is None or (math.isfinite(record.duration_s) and record.duration_s >= 0)
    json.dumps(record.meta)  # the metadata still serialises


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


base_meta = st.fixed_dictionaries({k: st.just(v) for k, v in
                                   zip(REQUIRED_META, [["c"], "d", "p.wav", 0.0, 1.0, 16000], strict=True)})
metas = (st.builds(lambda base, extra: {**base, **extra}, base_meta,
                   st.dictionaries(st.sampled_from([*REQUIRED_META, "num_frames", "conversations"]), json_values,
                                   max_size=3))
         | json_values)
dtypes = st.sampled_from(["f2", "f4", "f8", "i2", "i8", "u1", "b1", "c8"])
arrays = dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
members = st.one_of(arrays.map(npy), st.binary(max_size=64))


@PROPERTY
@given(meta=metas, raw_json=st.none() | st.binary(max_size=40), latent=st.none() | members,
       codes=st.none() | members)
def test_sample_parser_returns_a_valid_sample_or_a_format_error(meta, raw_json, latent, codes) -> None:
    raw = {"__key__": "k", "__url__": "s.tar", "json": raw_json if raw_json is not None else json.dumps(meta).encode()}
    raw.update({name: data for name, data in (("latent.npy", latent), ("codes.npy", codes)) if data is not None})
    try:
        sample = decode_sample(raw)
    except ShardFormatError as exc:
        assert "sample k (in s.tar)" in str(exc)
        return
    assert isinstance(sample.meta, dict)
    assert all(isinstance(c, str) for c in sample.meta.get("captions", []))
    lengths = []
    if sample.latent is not None:
        assert sample.latent.ndim == 2 and min(sample.latent.shape) >= 1 and bool(sample.latent.isfinite().all())
        lengths.append(sample.latent.shape[0])
    if sample.codes is not None:
        assert sample.codes.ndim == 1 and 0 <= int(sample.codes.min()) and int(sample.codes.max()) <= MAX_CODE
        lengths.append(sample.codes.shape[0])
    if lengths or "num_frames" in sample.meta:
        assert 1 <= sample.num_frames <= min(lengths, default=sample.num_frames)
