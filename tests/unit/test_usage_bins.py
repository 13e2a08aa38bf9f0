"""The roll-up's bin texts: what `encode` writes, `decode` reads back, in bulk or one by one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors import usage


def test_decode_reads_every_form_a_store_may_hold() -> None:
    texts = ['{"0":3,"5":7}', None, "", "{}", "[1,2,3]", '{"2": 4}', float("nan"), '{"7":1}']
    assert usage.decode(texts, 8).tolist() == [
        [3, 0, 0, 0, 0, 7, 0, 0],  # sparse, as encode writes it
        [0] * 8, [0] * 8, [0] * 8,  # missing, empty text, no bins
        [1, 2, 3, 0, 0, 0, 0, 0],  # dense list
        [0, 0, 4, 0, 0, 0, 0, 0],  # JSON with a space (written by hand or another tool)
        [0] * 8,  # NaN from a database NULL
        [0, 0, 0, 0, 0, 0, 0, 1]]  # the last bin (above the last bound)


def test_decode_refuses_what_is_not_bins() -> None:
    with pytest.raises(ValueError, match="'a'"):
        usage.decode(['{"1":2}', '{"a":1}'], 3)
    with pytest.raises(IndexError):
        usage.decode(['{"1":2}', '{"9":1}'], 3)  # no bin 9 on 3 bins


@given(st.lists(st.lists(st.integers(0, 10**12), min_size=6, max_size=6), max_size=40))
def test_decode_is_the_inverse_of_encode(rows: list[list[int]]) -> None:
    texts = [usage.encode(np.asarray(row, dtype=np.int64)) for row in rows]
    decoded = usage.decode(texts, 6)
    assert decoded.tolist() == (rows or np.zeros((0, 6), dtype=np.int64).tolist())
    assert all(json.loads(t) == {str(i): v for i, v in enumerate(r) if v}
               for t, r in zip(texts, rows, strict=True))


def test_gap_counts_by_hand() -> None:
    # ITL bounds start 0.001, 0.0025, 0.005, 0.0075: 0.001 sits on the first bound (bin 0,
    # `le`), 0.002 in bin 1, 0.005 on the third bound (bin 2), 0.0051 in bin 3; 1e9 lies
    # above the last bound, and NaN is counted there too
    top = len(usage.ITL_BOUNDS)
    assert usage.ITL_BOUNDS[:4] == (0.001, 0.0025, 0.005, 0.0075)
    assert usage.gap_counts([0.001, 0.002, 0.005, 0.0051, 1e9, float("nan")]) == \
        f'{{"0":1,"1":1,"2":1,"3":1,"{top}":2}}'
    assert usage.gap_counts([]) is None


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=50))
def test_gap_counts_agree_with_the_vectorised_bins(gaps: list[float]) -> None:
    """The sidecar's plain-Python count equals the roll-up's numpy bins, so a row the sink
    wrote sums as the histogram would have."""
    index = usage.bin_index(np.asarray(gaps, dtype="float64"), usage.ITL_BOUNDS)
    expected = usage.encode(np.bincount(index, minlength=len(usage.ITL_BOUNDS) + 1))
    assert usage.gap_counts(gaps) == expected
