"""Batches for fine-tuning: which examples a step reads, and how they become model inputs.

The order is a function of ``(seed, step)`` alone: epoch ``e`` visits the examples in ``randperm(N, seed + e)``
and step ``s`` reads the ``s % steps_per_epoch``-th slice of ``batch_size`` of them (drop-last, as EasyLM). Every
data rank takes its contiguous share of that global batch, so a run's data depends on neither the process count
nor where it resumed.

Rows follow the model's batch contract: ``input_ids``, ``label_ids`` (the next token at each position, -100 =
no loss), ``segment_ids`` (1..k per example in a row, 0 = padding) and ``position_ids`` (restarting per example).
An example of ``L`` tokens fills ``L - 1`` positions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from birdie.finetune.datasets import Example
from birdie.models.lm import IGNORE_INDEX


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return num_examples // batch_size


def global_batch(num_examples: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Example indices of the global batch at optimizer step ``step`` (0-based)."""
    per_epoch = steps_per_epoch(num_examples, batch_size)
    if per_epoch < 1:
        raise ValueError(f"{num_examples} examples are fewer than one batch of {batch_size}; lower the batch size "
                         "or add data")
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed + epoch))
    return order[index * batch_size:(index + 1) * batch_size].tolist()


def rank_micro_batches(indices: list[int], data_world: int, data_rank: int, grad_accum: int) -> list[list[int]]:
    """This rank's contiguous share of the global batch ``indices``, split into ``grad_accum`` micro-batches."""
    share = len(indices) // data_world
    mine = indices[data_rank * share:(data_rank + 1) * share]
    size = share // grad_accum
    return [mine[i * size:(i + 1) * size] for i in range(grad_accum)]


def _rows(layout: list[list[Example]], length: int, pad_id: int) -> dict[str, torch.Tensor]:
    shape = (len(layout), length)
    input_ids = np.full(shape, pad_id, dtype=np.int64)
    label_ids = np.full(shape, IGNORE_INDEX, dtype=np.int64)
    segment_ids = np.zeros(shape, dtype=np.int64)
    position_ids = np.zeros(shape, dtype=np.int64)
    for row, examples in enumerate(layout):
        at = 0
        for number, example in enumerate(examples, 1):
            n = len(example.ids) - 1
            input_ids[row, at:at + n] = example.ids[:-1]
            label_ids[row, at:at + n] = np.where(example.mask[1:], example.ids[1:], IGNORE_INDEX)
            segment_ids[row, at:at + n] = number
            position_ids[row, at:at + n] = np.arange(n)
            at += n
    return {"input_ids": torch.from_numpy(input_ids), "label_ids": torch.from_numpy(label_ids),
            "segment_ids": torch.from_numpy(segment_ids), "position_ids": torch.from_numpy(position_ids)}


def pack(examples: Sequence[Example], length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """First-fit packing: each example, in order, goes into the first row with room for it, else a new row.
    Every example must fill at most ``length`` positions."""
    layout: list[list[Example]] = []
    free: list[int] = []
    for example in examples:
        n = len(example.ids) - 1
        if n > length:
            raise ValueError(f"an example of {n + 1} tokens does not fit rows of {length} positions")
        row = next((r for r, room in enumerate(free) if room >= n), None)
        if row is None:
            layout.append([])
            free.append(length)
            row = len(layout) - 1
        layout[row].append(example)
        free[row] -= n
    return _rows(layout, length, pad_id)


def pad(examples: Sequence[Example], length: int | None, pad_id: int) -> dict[str, torch.Tensor]:
    """One example per row, right-padded to ``length`` positions (None: the longest example's)."""
    longest = max(len(e.ids) - 1 for e in examples)
    return _rows([[e] for e in examples], longest if length is None else length, pad_id)
