"""Packing: exact layouts, a naive reference, and the invariants that keep segments apart."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie.data.packing import BATCH_KEYS, IGNORE_INDEX, BatchBuilder, pack_examples

PAD, BEGIN = 0, 2


def naive_row(examples, length, pad=PAD, begin=BEGIN):
    """The layout written out token by token, as the contract states it."""
    row = {key: [] for key in BATCH_KEYS}
    for k, (prefix, target) in enumerate(examples, start=1):
        prefix, target = list(prefix), list(target)
        row["input_ids"] += prefix + [begin] + target[:-1]
        row["label_ids"] += [IGNORE_INDEX] * len(prefix) + target
        row["attention_mask"] += [1] * len(prefix) + [0] * len(target)
        row["segment_ids"] += [k] * (len(prefix) + len(target))
        row["position_ids"] += list(range(len(prefix) + len(target)))
    fill = {"input_ids": pad, "label_ids": IGNORE_INDEX, "attention_mask": 0, "segment_ids": 0, "position_ids": 0}
    return {key: np.array(v + [fill[key]] * (length - len(v))) for key, v in row.items()}


def test_paper_example_layout():
    # birdie.md §1.0: inputs {4,5,6}, labels {7,8,9} -> {4,5,6,1,7,8} / {-,-,-,7,8,9}, here begin = 2.
    batch = pack_examples([([4, 5, 6], [7, 8, 9]), ([30, 31], [40])], 1, 12, PAD, BEGIN)
    assert batch["input_ids"][0].tolist() == [4, 5, 6, 2, 7, 8, 30, 31, 2, 0, 0, 0]
    assert batch["label_ids"][0].tolist() == [-100, -100, -100, 7, 8, 9, -100, -100, 40, -100, -100, -100]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert batch["segment_ids"][0].tolist() == [1, 1, 1, 1, 1, 1, 2, 2, 2, 0, 0, 0]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 0, 0, 0]
    assert all(t.dtype.is_floating_point is False and t.dtype.itemsize == 8 for t in batch.values())


def test_pure_causal_example_has_no_bidirectional_position():
    batch = pack_examples([([], [5, 6, 7])], 1, 4, PAD, BEGIN)
    assert batch["input_ids"][0].tolist() == [2, 5, 6, 0]
    assert batch["label_ids"][0].tolist() == [5, 6, 7, -100]
    assert batch["attention_mask"][0].tolist() == [0, 0, 0, 0]


def test_best_fit_picks_the_tightest_row():
    builder = BatchBuilder(3, 10, PAD, BEGIN)
    builder.add(np.array([1] * 3), np.array([1] * 3), row=0)  # 4 free
    builder.add(np.array([1] * 1), np.array([1] * 1), row=1)  # 8 free
    assert builder.best_fit_row(4) == 0
    assert builder.best_fit_row(5) == 1
    assert builder.best_fit_row(11) == -1
    assert builder.add(np.array([9]), np.array([9, 9, 9])) == 0


def test_errors_name_the_problem():
    builder = BatchBuilder(1, 4, PAD, BEGIN)
    with pytest.raises(ValueError, match="does not fit"):
        builder.add(np.array([1, 2]), np.array([3, 4, 5]))
    with pytest.raises(ValueError, match="empty target"):
        builder.add(np.array([1]), np.array([], dtype=np.int32))


examples_strategy = st.lists(
    st.tuples(st.lists(st.integers(3, 99), max_size=6), st.lists(st.integers(3, 99), min_size=1, max_size=6)),
    min_size=1, max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(examples_strategy)
def test_matches_naive_reference_and_segments_are_disjoint(examples):
    length = 100
    batch = pack_examples(examples, 1, length, PAD, BEGIN)
    expected = naive_row(examples, length)
    for key in BATCH_KEYS:
        assert batch[key][0].tolist() == expected[key].tolist(), key
    seg, pos = batch["segment_ids"][0].numpy(), batch["position_ids"][0].numpy()
    # Positions restart at every segment boundary and count up inside a segment.
    starts = np.flatnonzero(np.diff(np.concatenate([[0], seg])) != 0)
    assert (pos[starts[seg[starts] > 0]] == 0).all()
    inner = (seg[1:] == seg[:-1]) & (seg[1:] > 0)
    assert (pos[1:][inner] == pos[:-1][inner] + 1).all()
    # Every label is the next input of its own segment (teacher forcing never crosses a boundary).
    labels, inputs = batch["label_ids"][0].numpy(), batch["input_ids"][0].numpy()
    for i in np.flatnonzero(labels[:-1] != IGNORE_INDEX):
        if seg[i + 1] == seg[i]:
            assert inputs[i + 1] == labels[i]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=40), st.integers(1, 4))
def test_best_fit_never_overflows_and_counts_fill(lengths, rows):
    builder = BatchBuilder(rows, 32, PAD, BEGIN)
    placed = 0
    for n in lengths:
        if builder.best_fit_row(n) >= 0:
            builder.add(np.zeros(0, dtype=np.int32), np.full(n, 7))
            placed += n
    assert (builder.used <= 32).all()
    assert builder.fill_rate == pytest.approx(placed / (rows * 32))
