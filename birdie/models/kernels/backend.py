"""Which backend runs a sequence kernel (fla's Triton kernels or the chunked form) and in which dtype it
accumulates."""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import Tensor


@functools.cache
def fla_available() -> bool:
    """Whether flash-linear-attention and Triton are importable (checked once; fla is imported only when used)."""
    return importlib.util.find_spec("fla") is not None and importlib.util.find_spec("triton") is not None


def uses_fla(tensor: Tensor) -> bool:
    """Whether a sequence op on ``tensor`` runs on fla's kernels: CUDA, a dtype they support, fla installed."""
    return tensor.is_cuda and tensor.dtype != torch.float64 and fla_available()


def accumulation_dtype(*tensors: Tensor) -> torch.dtype:
    """float32, or the widest input dtype when wider (float64 stays float64, so gradcheck-grade checks work)."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype
