"""The owners of a run's state, as checkpoints gather them, and the plain encoding of their side state.

Every owner gives ``state_dict()`` / ``load_state_dict(state)`` (:class:`Stateful`). A :class:`TrainingState`
groups them by how they are stored: ``sharded`` (model and optimizer, through DCP: every rank writes its shards),
``shared`` (identical on every rank, e.g. the schedule and the curriculum agent: written once) and ``per_rank``
(this rank's own, e.g. its data position and RNGs).

Side state is saved with ``torch.save`` and read back with ``weights_only=True``, which allows tensors, numbers,
strings, bytes and containers but no other objects. :func:`encode_state` turns the numpy arrays and scalars that
the curriculum's state holds into such values and :func:`decode_state` restores them exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

_NUMPY = "__numpy__"


@runtime_checkable
class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainingState:
    """A run's state owners by storage: ``sharded`` (DCP), ``shared`` (written once) and ``per_rank``."""

    sharded: dict[str, Stateful] = field(default_factory=dict)
    shared: dict[str, Stateful] = field(default_factory=dict)
    per_rank: dict[str, Stateful] = field(default_factory=dict)


class ModelState:
    """A (possibly DDP/FSDP2-wrapped) model's parameters and buffers, in the layout DCP reshards."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        return get_model_state_dict(self.model)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_model_state_dict(self.model, state)


class OptimizerState:
    """An optimizer's state keyed by parameter name (so it reshards with the model)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    def state_dict(self) -> dict[str, Any]:
        return get_optimizer_state_dict(self.model, self.optimizer)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_optimizer_state_dict(self.model, self.optimizer, state)


class RngState:
    """This process's Python, numpy and torch (CPU and CUDA) generator states."""

    def state_dict(self) -> dict[str, Any]:
        state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def encode_state(value: Any) -> Any:
    """``value`` with every numpy array and scalar replaced by ``{"__numpy__": kind, "dtype", "shape", "data"}``
    (raw bytes), so that ``torch.load(weights_only=True)`` can read it; containers are walked recursively."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)  # tobytes() below copies in C order
        return {_NUMPY: "array" if isinstance(value, np.ndarray) else "scalar", "dtype": array.dtype.str,
                "shape": list(array.shape), "data": array.tobytes()}
    if isinstance(value, dict):
        return {key: encode_state(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [encode_state(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def decode_state(value: Any) -> Any:
    """The inverse of :func:`encode_state`."""
    if isinstance(value, dict):
        if _NUMPY in value:
            array = np.frombuffer(value["data"], dtype=np.dtype(value["dtype"])).reshape(tuple(value["shape"])).copy()
            return array if value[_NUMPY] == "array" else array[()]
        return {key: decode_state(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [decode_state(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value
