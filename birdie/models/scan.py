"""Diagonal linear recurrences ``h_t = a_t * h_{t-1} + x_t`` for the recurrent families (Hawk, Gated SSM).

Two implementations with one contract:

* :func:`linear_scan`: the fast form. A custom :class:`torch.autograd.Function` whose forward is a two-level
  chunked scan run without building a graph, and whose backward is the same scan run in the opposite direction
  (Martin & Cundy 2018): ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, ``dL/dx_t = g_t``, ``dL/da_t = g_t h_{t-1}``.
* :func:`linear_scan_reference`: a plain loop over time steps through autograd, the oracle the fast form is
  tested against (forward and gradients).

The chunked kernel splits time into ``N`` chunks of ``C ~ sqrt(T)`` positions. A loop over the ``C`` in-chunk
offsets runs all chunks at once (zero initial state, plus the running product of ``a`` inside the chunk); a loop
over the ``N`` chunks carries each chunk's final state to the next; one broadcast adds ``prod(a) * carry`` to
every position. That is ``C + N ~ 2 sqrt(T)`` Python steps instead of ``T``, each on a ``(B, N, D)`` slab, and
nothing is flipped: reverse scans walk the same buffers from the other end. The kernel runs on any device.
Resets are exact: a reset zeroes ``a``, so the running product is exactly zero from there on and no carried
state reaches the position, whatever its value.

Directions: ``reverse=False`` runs left to right (``h_{t-1}`` is the predecessor); ``reverse=True`` runs right
to left, ``h_t = a_t * h_{t+1} + x_t``, for the backward half of bidirectional layers.

Accumulation is in float32 at least (float64 inputs stay float64, so ``gradcheck`` works); the result has that
accumulation dtype and callers cast it back.

On CUDA with ``flash-linear-attention`` installed (``pip install birdie-lm[fla]``), float32 scans run through its
Triton kernel ``fused_recurrent_hgrn`` instead (:func:`_fla_linear_scan`): the batch is flattened into one varlen
sequence cut into pieces (``cu_seqlens``) at every row start and reset, so the kernel never carries state across
either and runs the pieces in parallel. That kernel works on ``log a``, so there decays must be >= 0. float64
stays on the chunked scan (fla has no float64 kernels). fla is imported lazily and never required.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from birdie.models.mixer import SequenceInfo


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


def _check_inputs(a: Tensor, x: Tensor, reset: Tensor | None) -> None:
    if a.dim() != 3 or a.shape != x.shape:
        raise ValueError(
            f"linear_scan expects a and x of equal shape (batch, time, channels); got a {tuple(a.shape)} "
            f"and x {tuple(x.shape)}"
        )
    if reset is not None and reset.shape != a.shape[:2]:
        raise ValueError(
            f"linear_scan reset must have shape (batch, time) = {tuple(a.shape[:2])}; got {tuple(reset.shape)}"
        )


def _chunked_scan(a: Tensor, x: Tensor, reverse: bool, lagged: bool = False) -> Tensor:
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
"""A graph-free scan kernel ``(a, x, reverse, lagged) -> h`` with :func:`_chunked_scan`'s contract."""


class _LinearScan(torch.autograd.Function):
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
    _check_inputs(a, x, reset)
    dtype = accumulation_dtype(a, x)
    a, x = a.to(dtype), x.to(dtype)
    if x.shape[1] == 0:
        return x.clone()
    if uses_fla(x):
        return _fla_linear_scan(a, x, reset, reverse)
    if reset is not None:
        a = torch.where(reset.unsqueeze(-1), torch.zeros((), dtype=dtype, device=a.device), a)
    return _LinearScan.apply(a, x, reverse, _chunked_scan)


def _fla_linear_scan(a: Tensor, x: Tensor, reset: Tensor | None = None, reverse: bool = False) -> Tensor:
    """:func:`linear_scan` on flash-linear-attention's Triton kernel ``fused_recurrent_hgrn``.

    a, x: (B, T, D) float32 with T > 0, on CUDA (or on the CPU under ``TRITON_INTERPRET=1``, as the tests run it);
    ``a`` must be >= 0, since the kernel takes log decays ``g = log a``. Returns h: (B, T, D) float32.

    The batch becomes one sequence of B * T positions cut into pieces (``cu_seqlens``) before every row start and
    wherever a reset stops the flow, so every piece starts from a zero state. Gradients come from the same
    adjoint as the chunked scan, run on the same kernel (:class:`_LinearScan`), so no gradient passes through
    ``log a``: a == 0 inside a piece gives g = -inf, and exp(-inf) = 0 drops the state exactly, as the chunked
    scan does; there is nothing to clamp.
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
    scan = functools.partial(_fla_scan, cu_seqlens=cu_seqlens)
    h = _LinearScan.apply(a.unsqueeze(0), x.reshape(1, -1, width), reverse, scan)
    return h.view(batch, length, width)


def _fla_scan(a: Tensor, x: Tensor, reverse: bool, lagged: bool, *, cu_seqlens: Tensor) -> Tensor:
    """The :data:`Scan` contract on ``fused_recurrent_hgrn`` over (1, N, D) pieces; reverse scans run flipped."""
    from fla.ops.hgrn import fused_recurrent_hgrn

    if reverse:
        a, x, cu_seqlens = a.flip(1), x.flip(1), x.shape[1] - cu_seqlens.flip(0)
    if lagged:
        # The value entering position 0 lands on a piece start, where the kernel ignores it.
        a = F.pad(a[:, :-1], (0, 0, 1, 0), value=1.0)
    h, _ = fused_recurrent_hgrn(x, torch.log(a), cu_seqlens=cu_seqlens)
    return h.flip(1) if reverse else h


def linear_scan_reference(a: Tensor, x: Tensor, reset: Tensor | None = None, reverse: bool = False) -> Tensor:
    """The same contract as :func:`linear_scan`, as a plain loop over time steps (the test oracle)."""
    _check_inputs(a, x, reset)
    dtype = accumulation_dtype(a, x)
    a, x = a.to(dtype), x.to(dtype)
    if x.shape[1] == 0:
        return x.clone()
    decays, inputs = a.unbind(1), x.unbind(1)
    resets = reset.unbind(1) if reset is not None else None
    order = range(len(inputs) - 1, -1, -1) if reverse else range(len(inputs))
    state = torch.zeros_like(inputs[0])
    outputs: dict[int, Tensor] = {}
    for t in order:
        decay = decays[t] if resets is None else torch.where(resets[t].unsqueeze(-1), 0.0, decays[t])
        state = decay * state + inputs[t]
        outputs[t] = state
    return torch.stack([outputs[t] for t in range(len(inputs))], dim=1)


def reverse_resets(info: SequenceInfo) -> Tensor:
    """(B, T) bool resets of a reverse (right-to-left) scan over the bidirectional prefix.

    State flows from t + 1 into t only when both are prefix positions of the same segment, so the reverse state
    of a prefix position summarises the later prefix positions of its segment, and every target or padding
    position (and the last prefix position, whose successor is the first target-region input) sees nothing
    later. That keeps a prefix's encoding a function of the prefix alone, exactly like the prefix-LM attention
    mask, and makes a prefilled prompt equal the same prompt inside a longer sequence.
    """
    flows = torch.zeros_like(info.prefix)
    flows[:, :-1] = info.prefix[:, :-1] & info.prefix[:, 1:] & (info.segment_ids[:, :-1] == info.segment_ids[:, 1:])
    return ~flows


def channel_resets(info: SequenceInfo, width: int, n_reverse: int) -> Tensor:
    """(B, T, width) bool: per channel, whether its scan resets at t (forward channels first, then reverse)."""
    batch, length = info.segment_ids.shape
    forward = info.segment_start.unsqueeze(-1).expand(batch, length, width - n_reverse)
    if n_reverse == 0:
        return forward
    backward = reverse_resets(info).unsqueeze(-1).expand(batch, length, n_reverse)
    return torch.cat((forward, backward), dim=-1)


def bidirectional_scan(a: Tensor, x: Tensor, info: SequenceInfo, n_reverse: int) -> Tensor:
    """The recurrence of a (possibly bidirectional) layer over packed rows.

    Channels ``[:D - n_reverse]`` run left to right over everything, resetting at segment starts; the last
    ``n_reverse`` channels run right to left over the prefix only (:func:`reverse_resets`). ``n_reverse = 0`` is
    a causal layer. a, x: (B, T, D) -> h: (B, T, D) in the accumulation dtype.
    """
    n_forward = x.shape[-1] - n_reverse
    forward = linear_scan(a[..., :n_forward], x[..., :n_forward], info.segment_start)
    if n_reverse == 0:
        return forward
    backward = linear_scan(a[..., n_forward:], x[..., n_forward:], reverse_resets(info), reverse=True)
    return torch.cat((forward, backward), dim=-1)


@dataclass
class RecurrentState:
    """Decoding cache of a recurrent layer: float32, its size independent of the sequence length.

    Attributes:
        h: (B, n_forward) state of the causal channels (bidirectional layers' reverse half needs no cache: in the
            target region it equals its input).
        conv: (B, conv_width - 1, W) the last inputs of a temporal convolution, oldest first; None without one.
    """

    h: Tensor
    conv: Tensor | None = None
