"""The scan on flash-linear-attention's Triton kernel ``fused_recurrent_hgrn`` (``pip install birdie-lm[fla]``).

The batch is flattened into one varlen sequence cut into pieces (``cu_seqlens``) at every row start and reset, so
the kernel never carries state across either and runs the pieces in parallel. fla is imported when a scan runs,
never at import time.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from birdie.models.kernels.scan.chunked import LinearScan


def fla_linear_scan(a: Tensor, x: Tensor, reset: Tensor | None = None, reverse: bool = False) -> Tensor:
    """:func:`~birdie.models.kernels.scan.linear_scan` on fla's Triton kernel ``fused_recurrent_hgrn``.

    a, x: (B, T, D) float32 with T > 0, on CUDA (or on the CPU under ``TRITON_INTERPRET=1``, as the tests run it);
    ``a`` must be >= 0, since the kernel takes log decays ``g = log a``. Returns h: (B, T, D) float32.

    The batch becomes one sequence of B * T positions cut into pieces (``cu_seqlens``) before every row start and
    wherever a reset stops the flow, so every piece starts from a zero state. Gradients come from the same
    adjoint as the chunked scan, run on the same kernel (:class:`~birdie.models.kernels.scan.chunked.LinearScan`),
    so no gradient passes through ``log a``: a == 0 inside a piece gives g = -inf, and exp(-inf) = 0 drops the
    state exactly, as the chunked scan does; there is nothing to clamp.
    """
    if bool((a < 0).any()):
        raise ValueError("linear_scan on fla's kernel needs decays a >= 0 (it runs on log a); got negative values. "
                         "Pass float64 tensors or CPU tensors to use the chunked scan, which accepts any a")
    batch, length, width = x.shape
    cut = torch.zeros(batch, length, dtype=torch.bool, device=x.device)
    cut[:, 0] = True
    if reset is not None:
        # A forward scan cuts before each reset position; a reverse one after it (no flow from t + 1 into t).
        cut |= reset if not reverse else F.pad(reset[:, :-1], (1, 0), value=False)
    cut = cut.flatten()
    starts = cut.nonzero().flatten()
    cu_seqlens = torch.cat((starts, starts.new_tensor([batch * length])))
    # Each piece's first position in scan order takes a = 1 (g = 0, never log 0): the kernel ignores it, as the
    # piece starts from zero, and the mask stops gradient flowing to it, as the chunked scan's reset does.
    first = cut if not reverse else torch.cat((cut[1:], cut.new_ones(1)))
    a = torch.where(first[:, None], torch.ones((), dtype=a.dtype, device=a.device), a.reshape(-1, width))
    scan = functools.partial(fla_scan, cu_seqlens=cu_seqlens)
    h = LinearScan.apply(a.unsqueeze(0), x.reshape(1, -1, width), reverse, scan)
    return h.view(batch, length, width)


def fla_scan(a: Tensor, x: Tensor, reverse: bool, lagged: bool, *, cu_seqlens: Tensor) -> Tensor:
    """The :data:`~birdie.models.kernels.scan.chunked.Scan` contract on ``fused_recurrent_hgrn`` over (1, N, D) pieces; reverse scans run flipped."""
    from fla.ops.hgrn import fused_recurrent_hgrn

    if reverse:
        a, x, cu_seqlens = a.flip(1), x.flip(1), x.shape[1] - cu_seqlens.flip(0)
    if lagged:
        # The value entering position 0 lands on a piece start, where the kernel ignores it.
        a = F.pad(a[:, :-1], (0, 0, 1, 0), value=1.0)
    h, _ = fused_recurrent_hgrn(x, torch.log(a), cu_seqlens=cu_seqlens)
    return h.flip(1) if reverse else h
