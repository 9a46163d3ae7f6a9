"""Keeping every rank's curriculum identical under ``torch.distributed`` (no-ops when it is not initialized)."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialized process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def _device() -> torch.device:
    # NCCL moves only CUDA tensors; every other backend works on CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(values: np.ndarray) -> np.ndarray:
    """The element-wise mean of ``values`` over all ranks (float64; unchanged when not distributed)."""
    values = np.asarray(values, dtype=np.float64)
    if not is_distributed():
        return values
    tensor = torch.as_tensor(values, device=_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy() / dist.get_world_size()


def broadcast_from_rank0(values: np.ndarray) -> np.ndarray:
    """Rank 0's ``values`` on every rank (float64; unchanged when not distributed). Shapes must match."""
    values = np.asarray(values, dtype=np.float64)
    if not is_distributed():
        return values
    tensor = torch.as_tensor(values, device=_device()).clone()
    dist.broadcast(tensor, src=0)
    return tensor.cpu().numpy()
