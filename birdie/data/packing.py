"""Best-fit packing of examples into fixed-shape batches.

An example ``(prefix, target)`` becomes one segment of ``len(prefix) + len(target)`` positions::

    input_ids       prefix                     + [begin_generating] + target[:-1]
    label_ids       [-100] * len(prefix)       + target
    attention_mask  [1] * len(prefix)          + [0] * len(target)
    segment_ids     [k] * (len(prefix) + len(target))        k = 1, 2, ... within the row
    position_ids    0, 1, ..., len(prefix) + len(target) - 1

A separator of ``s`` tokens ``[g_1 .. g_s]`` in place of the one ``begin_generating`` id (the seeds'
``start_generating_paradigm``) lengthens the segment by ``s - 1``: ``input_ids = prefix + [g_1 .. g_s] +
target[:-1]``, ``label_ids = [-100] * (len(prefix) + s - 1) + target``; the separator is causal and ``g_s``
predicts ``target[0]``, as the paper's begin-generating token does.

Padding is ``input_ids = specials.pad``, ``label_ids = -100`` and 0 for the other three keys. ``attention_mask``
is 1 exactly on bidirectional (prefix) positions: a position may attend to every position of its own segment
whose mask is 1 and, causally, to every earlier position of its own segment. Nothing crosses a segment boundary.

:class:`BatchBuilder` holds one batch under construction as a single ``(5, batch, length)`` int64 buffer, so a
finished batch crosses a process boundary as one numpy array; each segment is written with a handful of slice
assignments (no per-token Python).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

#: Order of the batch keys in the packed buffer.
BATCH_KEYS: tuple[str, ...] = ("input_ids", "label_ids", "attention_mask", "segment_ids", "position_ids")
IGNORE_INDEX = -100


class BatchBuilder:
    """One ``(batch_size, sequence_length)`` batch being filled segment by segment with best fit.

    Args:
        batch_size: rows of the batch.
        sequence_length: positions per row.
        pad_id: ``input_ids`` value on padding (``tokenizer.specials.pad``).
        begin_generating_id: the id placed between prefix and target (``tokenizer.specials.begin_generating``),
            or a sequence of ids (a multi-token separator; see the module docstring).
    """

    def __init__(self, batch_size: int, sequence_length: int, pad_id: int,
                 begin_generating_id: int | Sequence[int]) -> None:
        if batch_size < 1 or sequence_length < 2:
            raise ValueError(f"BatchBuilder needs batch_size >= 1 and sequence_length >= 2, got "
                             f"{batch_size} and {sequence_length}")
        self.batch_size = batch_size
        self.sequence_length = sequence_length
        self.pad_id = pad_id
        self.separator = np.atleast_1d(np.asarray(begin_generating_id, dtype=np.int64))
        if self.separator.ndim != 1 or len(self.separator) == 0:
            raise ValueError(f"BatchBuilder needs a begin-generating id or a non-empty sequence of ids, got "
                             f"{begin_generating_id!r}")
        #: Positions a segment takes beyond ``len(prefix) + len(target)``.
        self.extra = len(self.separator) - 1
        self._positions = np.arange(sequence_length, dtype=np.int64)
        self.buffer = np.zeros((len(BATCH_KEYS), batch_size, sequence_length), dtype=np.int64)
        self.buffer[0] = pad_id
        self.buffer[1] = IGNORE_INDEX
        # Python ints, not arrays: a batch has few rows, and every segment reads them (best fit, the budget),
        # where a numpy call costs more than a loop over a handful of ints.
        self._used = [0] * batch_size
        self._segments = [0] * batch_size

    @property
    def used(self) -> np.ndarray:
        """Positions taken per row, shape (batch_size,)."""
        return np.array(self._used, dtype=np.int64)

    @property
    def remaining(self) -> np.ndarray:
        """Free positions per row, shape (batch_size,)."""
        return self.sequence_length - self.used

    @property
    def max_remaining(self) -> int:
        """The largest example length that still fits somewhere."""
        return self.sequence_length - min(self._used)

    def roomiest_row(self) -> int:
        """The row with the most free positions (the first of them on a tie)."""
        return self._used.index(min(self._used))

    def best_fit_row(self, length: int) -> int:
        """The row with the least free space that still holds ``length`` positions (the first of them on a tie),
        or -1 when none does."""
        best, best_free = -1, self.sequence_length + 1
        for row, used in enumerate(self._used):
            free = self.sequence_length - used
            if length <= free < best_free:
                best, best_free = row, free
        return best

    def add(self, prefix: np.ndarray, target: np.ndarray, row: int | None = None) -> int:
        """Write ``(prefix, target)`` as the next segment of ``row`` (default: best fit); return the row used.

        Raises:
            ValueError: ``target`` is empty, or the segment fits in no row (or not in the given row).
        """
        n, m = len(prefix), len(target)
        if m == 0:
            raise ValueError("cannot pack an example with an empty target")
        extra = self.extra
        length = n + m + extra
        if row is None:
            row = self.best_fit_row(length)
        start = self._used[row] if row >= 0 else 0
        if row < 0 or start + length > self.sequence_length:
            raise ValueError(f"an example of {length} positions does not fit: rows have {self.remaining.tolist()} free")
        begin, end = start + n + extra, start + length
        buffer = self.buffer
        buffer[0, row, start:start + n] = prefix
        buffer[0, row, start + n:begin + 1] = self.separator
        buffer[0, row, begin + 1:end] = target[:-1]
        buffer[1, row, begin:end] = target
        buffer[2, row, start:start + n] = 1
        self._segments[row] += 1
        buffer[3, row, start:end] = self._segments[row]
        buffer[4, row, start:end] = self._positions[:length]
        self._used[row] = end
        return row

    def close_row(self, row: int) -> None:
        """Mark ``row`` full: its free positions stay padding."""
        self._used[row] = self.sequence_length

    @property
    def fill_rate(self) -> float:
        """Fraction of non-padding positions."""
        return float((self.buffer[3] > 0).mean())


def batch_to_torch(buffer: np.ndarray) -> dict[str, torch.Tensor]:
    """View a ``(5, batch, length)`` int64 buffer as the batch dict of (batch, length) int64 tensors (no copy)."""
    tensor = torch.from_numpy(buffer)
    return {key: tensor[k] for k, key in enumerate(BATCH_KEYS)}


def pack_examples(
    examples: list[tuple[np.ndarray, np.ndarray]], batch_size: int, sequence_length: int, pad_id: int,
    begin_generating_id: int | Sequence[int],
) -> dict[str, torch.Tensor]:
    """Pack ``(prefix, target)`` pairs in order with best fit into one batch (a convenience for tests and tools).

    Raises:
        ValueError: an example fits in no row.
    """
    builder = BatchBuilder(batch_size, sequence_length, pad_id, begin_generating_id)
    for prefix, target in examples:
        builder.add(np.asarray(prefix), np.asarray(target))
    return batch_to_torch(builder.buffer)
