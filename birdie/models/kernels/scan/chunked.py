"""The chunked scan: ``C + N ~ 2 sqrt(T)`` Python steps instead of ``T``, on any device, plus the autograd op
(:class:`LinearScan`) whose backward is the same scan run the other way.

The kernel splits time into ``N`` chunks of ``C ~ sqrt(T)`` positions. A loop over the ``C`` in-chunk offsets
runs all chunks at once (zero initial state, plus the running product of ``a`` inside the chunk); a loop over the
``N`` chunks carries each chunk's final state to the next; one broadcast adds ``prod(a) * carry`` to every
position. Each step works on a ``(B, N, D)`` slab, and nothing is flipped: reverse scans walk the same buffers
from the other end. Resets are exact: a reset zeroes ``a``, so the running product is exactly zero from there on
and no carried state reaches the position, whatever its value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def chunked_scan(a: Tensor, x: Tensor, reverse: bool, lagged: bool = False) -> Tensor:
    """Graph-free chunked scan. a, x: (B, T, D) of the accumulation dtype -> h: (B, T, D).

    ``lagged``: the decay entering each position is the one stored at its predecessor in scan order (what the
    adjoint recurrence needs), read straight into the work buffer instead of through a shifted copy.
    """
    batch, length, width = x.shape
    chunk = max(1, math.isqrt(length))
    n_chunks = -(-length // chunk)
    padding = n_chunks * chunk - length
    # Padding sits after the last real position in scan order (the front for reverse scans), where it cannot
    # influence any real position; nothing is flipped or copied twice.
    start = padding if reverse else 0
    real = slice(start, start + length)
    h = x.new_empty(batch, n_chunks * chunk, width)
    decay = torch.empty_like(h)
    h[:, real] = x
    pad = slice(0, padding) if reverse else slice(length, None)
    h[:, pad] = 0
    decay[:, pad] = 0
    if not lagged:
        decay[:, real] = a
    elif reverse:
        decay[:, start : start + length - 1] = a[:, 1:]
        decay[:, start + length - 1] = 0
    else:
        decay[:, 1:length] = a[:, :-1]
        decay[:, 0] = 0
    h = h.view(batch, n_chunks, chunk, width)
    decay = decay.view(batch, n_chunks, chunk, width)
    # In-chunk pass, all chunks at once: h becomes the zero-initial-state scan, decay the running product of a.
    previous = 1 if reverse else -1
    for offset in range(chunk - 2, -1, -1) if reverse else range(1, chunk):
        h[:, :, offset].addcmul_(decay[:, :, offset], h[:, :, offset + previous])
        decay[:, :, offset].mul_(decay[:, :, offset + previous])
    # Cross-chunk pass, chunks in scan order: the state entering each chunk.
    order = range(n_chunks - 1, -1, -1) if reverse else range(n_chunks)
    exit_offset = 0 if reverse else -1
    carries = x.new_empty(batch, n_chunks, 1, width)
    carry = h[:, order[0], exit_offset]
    for index in order[1:]:
        carries[:, index, 0] = carry
        carry = torch.addcmul(h[:, index, exit_offset], decay[:, index, exit_offset], carry)
    # The first chunk in scan order enters with a zero state: nothing to add there.
    entered = slice(0, n_chunks - 1) if reverse else slice(1, n_chunks)
    h[:, entered].addcmul_(decay[:, entered], carries[:, entered])
    return h.view(batch, n_chunks * chunk, width)[:, real]


Scan = Callable[[Tensor, Tensor, bool, bool], Tensor]
"""A graph-free scan kernel ``(a, x, reverse, lagged) -> h`` with :func:`chunked_scan`'s contract."""


class LinearScan(torch.autograd.Function):
    """``LinearScan.apply(a, x, reverse, scan) -> h``: a :data:`Scan` kernel as an autograd op whose backward is
    the adjoint scan run the other way on the same kernel. a, x: (B, T, D) of the accumulation dtype."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, x: Tensor, reverse: bool, scan: Scan) -> Tensor:
        h = scan(a, x, reverse, False)
        ctx.save_for_backward(a, h)
        ctx.reverse = reverse
        ctx.scan = scan
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, None, None]:
        a, h = ctx.saved_tensors
        reverse = ctx.reverse
        # The adjoint runs the other way; entering t it decays by a at t's successor (t + 1 for a forward scan).
        grad_state = ctx.scan(a, grad_h.to(a.dtype), not reverse, True)
        # dL/da_t = g_t * h at t's predecessor (zero for the first position in scan order).
        grad_a = torch.empty_like(grad_state)
        first, rest, predecessors = (-1, slice(0, -1), slice(1, None)) if reverse else (0, slice(1, None), slice(0, -1))
        grad_a[:, first] = 0
        torch.mul(grad_state[:, rest], h[:, predecessors], out=grad_a[:, rest])
        return grad_a, grad_state, None, None
