"""Diagonal linear recurrences ``h_t = a_t * h_{t-1} + x_t`` for the recurrent families (Hawk, Gated SSM) and
the curriculum's reward model.

Forms with one contract (see :mod:`birdie.models.kernels`):

* :func:`linear_scan` (here): the entry point; dispatches to fla's kernel or the chunked form.
* :mod:`.chunked`: a custom :class:`torch.autograd.Function` whose forward is a two-level chunked scan run
  without building a graph, and whose backward is the same scan run in the opposite direction (Martin & Cundy
  2018): ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, ``dL/dx_t = g_t``, ``dL/da_t = g_t h_{t-1}``.
* :mod:`.fla`: float32 scans on CUDA with ``flash-linear-attention`` installed (``pip install birdie-lm[fla]``)
  run through its Triton kernel ``fused_recurrent_hgrn``, with the same adjoint. That kernel works on ``log a``,
  so there decays must be >= 0. float64 stays on the chunked scan (fla has no float64 kernels).
* :mod:`.naive`: :func:`~.naive.linear_scan_reference`, a plain loop over time steps through autograd, the
  oracle the fast forms are tested against (forward and gradients).

Directions: ``reverse=False`` runs left to right (``h_{t-1}`` is the predecessor); ``reverse=True`` runs right
to left, ``h_t = a_t * h_{t+1} + x_t``, for the backward half of bidirectional layers.

Accumulation is in float32 at least (float64 inputs stay float64, so ``gradcheck`` works); the result has that
accumulation dtype and callers cast it back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from birdie.models.kernels.backend import accumulation_dtype, uses_fla
from birdie.models.kernels.scan.chunked import LinearScan, chunked_scan
from birdie.models.kernels.scan.fla import fla_linear_scan
from birdie.models.kernels.scan.naive import check_scan_inputs


def linear_scan(a: Tensor, x: Tensor, reset: Tensor | None = None, reverse: bool = False) -> Tensor:
    """Fast diagonal linear recurrence with per-position resets.

    Args:
        a: (B, T, D) decays, usually in [0, 1]; >= 0 on the fla path (CUDA float32 with fla installed).
        x: (B, T, D) inputs.
        reset: optional (B, T) bool; True where no state flows into position t from its predecessor in scan
            order (t - 1 forward, t + 1 reverse), i.e. ``h_t = x_t`` there. Segment starts for forward scans.
        reverse: scan right to left, ``h_t = a_t * h_{t+1} + x_t``.

    Returns:
        h: (B, T, D) in the accumulation dtype (float32, or float64 for float64 inputs).
    """
    check_scan_inputs(a, x, reset)
    dtype = accumulation_dtype(a, x)
    a, x = a.to(dtype), x.to(dtype)
    if x.shape[1] == 0:
        return x.clone()
    if uses_fla(x):
        return fla_linear_scan(a, x, reset, reverse)
    if reset is not None:
        a = torch.where(reset.unsqueeze(-1), torch.zeros((), dtype=dtype, device=a.device), a)
    return LinearScan.apply(a, x, reverse, chunked_scan)
