"""Selective copying's uniqueness tests (byte search over the context) against naive token-level references.

Ids are drawn from small alphabets of values chosen to straddle byte boundaries (0, 1, 255, 256, 65535, 65536, ...),
so a byte-level match that is not at a token boundary exists often and must not count.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from objective_checks import occurrences

from birdie.objectives.selective_copying import _unique, _window_hashes, _Windows

ALPHABETS = [(0, 1), (1, 256), (0, 255, 256, 65280), (1, 256, 65536, 16777216), (255, 65535, 65536, 2**31 - 1)]

contexts = st.builds(
    lambda alphabet, picks: np.array([alphabet[p % len(alphabet)] for p in picks], dtype=np.int32),
    alphabet=st.sampled_from(ALPHABETS),
    picks=st.lists(st.integers(0, 3), min_size=2, max_size=60),
)


def naive_once(context: np.ndarray, start: int, stop: int) -> bool:
    return len(occurrences(context, context[start:stop])) == 1


@settings(max_examples=300, deadline=None)
@given(context=contexts, data=st.data())
def test_occurs_once_matches_naive_search(context, data):
    windows = _Windows(context, width=1)
    start = data.draw(st.integers(0, len(context) - 1))
    stop = data.draw(st.integers(start + 1, len(context)))
    assert windows.occurs_once(start, stop) == naive_once(context, start, stop)


@settings(max_examples=200, deadline=None)
@given(context=contexts, width=st.integers(1, 6), data=st.data())
def test_unique_windows_and_shortest_delimiters_match_naive(context, width, data):
    if len(context) < width:
        return
    windows = _Windows(context, width)
    naive = [naive_once(context, i, i + width) for i in range(len(context) - width + 1)]
    assert [windows.occurs_once(i, i + width) for i in range(len(naive))] == naive
    assert windows.unique_all().tolist() == naive == _unique(_window_hashes(context, width)).tolist()
    unique_starts = [i for i, ok in enumerate(naive) if ok]
    if not unique_starts:
        return
    first = data.draw(st.sampled_from(unique_starts))
    preferred = data.draw(st.integers(1, width))
    # end delimiter: the run beginning at `first`; start delimiter: the run ending at `first + width`
    expected_after = next(n for n in range(preferred, width + 1) if naive_once(context, first, first + n))
    assert windows.shortest_unique(first, 1, preferred) == expected_after
    anchor = first + width
    expected_before = next(n for n in range(preferred, width + 1) if naive_once(context, anchor - n, anchor))
    assert windows.shortest_unique(anchor, -1, preferred) == expected_before
