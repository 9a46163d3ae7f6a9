"""Batch surgery on model states (recurrent states, KV caches) without knowing their structure.

A state is a nest of dicts, lists, tuples, named tuples and dataclasses whose array leaves (numpy arrays or torch
tensors) have the batch as leading dimension; other leaves (ints, strings, None) are shared by every row.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np


def _map(function: Callable[[list[Any]], Any], states: Sequence[Any]) -> Any:
    """Apply ``function`` to the list of matching leaves of ``states`` (all with the same structure)."""
    first = states[0]
    if isinstance(first, dict):
        return {key: _map(function, [s[key] for s in states]) for key in first}
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        names = [f.name for f in dataclasses.fields(first) if f.init]
        return dataclasses.replace(first, **{n: _map(function, [getattr(s, n) for s in states]) for n in names})
    if isinstance(first, (list, tuple)):
        items = [_map(function, [s[i] for s in states]) for i in range(len(first))]
        return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)
    if isinstance(first, np.ndarray) or hasattr(first, "index_select"):
        return function(list(states))
    if first is None or isinstance(first, (int, float, str)):
        return first
    raise TypeError(
        f"cannot batch a state leaf of type {type(first).__name__}; states must nest dict/list/tuple/dataclass "
        "around numpy arrays or tensors with the batch as leading dimension"
    )


def concat_states(states: Sequence[Any]) -> Any:
    """One state whose rows are the rows of ``states`` in order (a state may appear several times)."""
    if len(states) == 1:
        return states[0]

    def join(leaves: list[Any]) -> Any:
        if isinstance(leaves[0], np.ndarray):
            return np.concatenate(leaves, axis=0)
        import torch

        return torch.cat(leaves, dim=0)

    return _map(join, states)


def state_row(state: Any, row: int) -> Any:
    """Row ``row`` of a batched state, as a batch-1 state."""
    return _map(lambda leaves: leaves[0][row : row + 1], [state])


def select_rows(state: Any, rows: Sequence[int]) -> Any:
    """The batched state made of rows ``rows`` of ``state``, in that order."""
    return _map(lambda leaves: leaves[0][list(rows)], [state])
