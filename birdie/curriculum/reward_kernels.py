"""Compiled (numba) kernels for the reward model's training path: one call per RMSNorm and per recurrence.

:func:`birdie.curriculum.reward_model.loss_and_gradients` runs a Gated SSM block as torch GEMMs around
elementwise work on (T, state) arrays, T a few dozen history positions. In torch that work is ~40 calls per block
whose fixed costs exceed their arithmetic; here it is two loops per block, forward and backward, that also run the
recurrence. Same contract as the torch path in ``reward_model.py`` (``block_forward``/``block_backward``), and the
same tests against autograd. Imported only when numba is installed (``pip install birdie-lm[fast]``); compiled on
first use and cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

_jit = numba.njit(cache=True, nogil=True)
# The norms' row sums may be reassociated, so that they vectorize (a different summation order, not other maths).
_jit_sums = numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})


@_jit_sums
def _normalize(x, weight, eps, normalized, inverse_rms, z):  # pragma: no cover - compiled
    length, width = x.shape
    for t in range(length):
        total = 0.0
        for j in range(width):
            total += x[t, j] * x[t, j]
        r = 1.0 / np.sqrt(total / width + eps)
        inverse_rms[t] = r
        for j in range(width):
            normalized[t, j] = x[t, j] * r
            z[t, j] = normalized[t, j] * weight[j]


@_jit_sums
def _normalize_backward(grad_z, normalized, inverse_rms, weight, grad_weight, grad_x):  # pragma: no cover
    length, width = grad_z.shape
    grad_weight[:] = 0.0
    for t in range(length):
        projection = 0.0
        for j in range(width):
            product = grad_z[t, j] * normalized[t, j]
            grad_weight[j] += product
            projection += product * weight[j]
        projection *= inverse_rms[t] / width
        for j in range(width):
            grad_x[t, j] += grad_z[t, j] * weight[j] * inverse_rms[t] - normalized[t, j] * projection


@_jit
def _gated_scan(gates, projected, h, mixed):  # pragma: no cover - compiled
    length, state = h.shape
    for t in range(length):
        for j in range(state):
            a = gates[t, j]
            previous = h[t - 1, j] if t > 0 else 0.0
            h[t, j] = a * previous + (1.0 - a) * gates[t, state + j] * projected[t, 3 * state + j]
            mixed[t, j] = gates[t, 2 * state + j] * h[t, j]


@_jit
def _gated_scan_backward(grad_mixed, gates, projected, h, grad_projected, grad_bias):  # pragma: no cover
    # Short loops over channel rows with few arrays each, so that LLVM vectorizes them.
    length, state = h.shape
    # g_t = dL/db_t = dL/dh_t + a_{t+1} g_{t+1}, right to left; held in the value slot until the last loop.
    for t in range(length - 1, -1, -1):
        g, grad_h, gate_out = grad_projected[t, 3 * state:], grad_mixed[t], gates[t, 2 * state:]
        for j in range(state):
            g[j] = grad_h[j] * gate_out[j]
        if t < length - 1:
            a_next, g_next = gates[t + 1, :state], grad_projected[t + 1, 3 * state:]
            for j in range(state):
                g[j] += a_next[j] * g_next[j]
    grad_bias[:] = 0.0
    for t in range(length):
        a, gate_in, gate_out = gates[t, :state], gates[t, state:2 * state], gates[t, 2 * state:]
        value, grad_h, g = projected[t, 3 * state:], grad_mixed[t], grad_projected[t, 3 * state:]
        grad_a, grad_in, grad_out = (grad_projected[t, :state], grad_projected[t, state:2 * state],
                                     grad_projected[t, 2 * state:3 * state])
        for j in range(state):
            grad_out[j] = grad_h[j] * h[t, j] * gate_out[j] * (1.0 - gate_out[j])
        # b_t = (1 - a_t) gate_in_t value_t and h_t = a_t h_{t-1} + b_t; then through each sigmoid.
        for j in range(state):
            grad_a[j] = -g[j] * gate_in[j] * value[j] * a[j] * (1.0 - a[j])
        if t > 0:
            for j in range(state):
                grad_a[j] += g[j] * h[t - 1, j] * a[j] * (1.0 - a[j])
        for j in range(state):
            grad_in[j] = g[j] * (1.0 - a[j]) * value[j] * gate_in[j] * (1.0 - gate_in[j])
        for j in range(state):
            g[j] *= (1.0 - a[j]) * gate_in[j]
        for j in range(state):
            grad_bias[j] += grad_a[j]


def normalize(x: Tensor, weight: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """RMSNorm of the rows of x (T, D): normalized rows, (T,) inverse RMS, and ``normalized * weight``."""
    normalized, z = torch.empty_like(x), torch.empty_like(x)
    inverse_rms = torch.empty(len(x), dtype=x.dtype)
    _normalize(x.numpy(), weight.numpy(), eps, normalized.numpy(), inverse_rms.numpy(), z.numpy())
    return normalized, inverse_rms, z


def normalize_backward(grad_z: Tensor, normalized: Tensor, inverse_rms: Tensor, weight: Tensor,
                       grad_weight: Tensor, grad_x: Tensor) -> Tensor:
    """Backward of :func:`normalize`: writes dL/dweight and ADDS dL/dx into ``grad_x`` (returned)."""
    _normalize_backward(grad_z.numpy(), normalized.numpy(), inverse_rms.numpy(), weight.numpy(),
                        grad_weight.numpy(), grad_x.numpy())
    return grad_x


def block_forward(block, x: Tensor, eps: float) -> tuple[Tensor, tuple]:
    """``block(x)`` for one (T, width) contiguous sequence, and what :func:`block_backward` needs."""
    state = block.state
    normalized, inverse_rms, z = normalize(x, block.norm.weight, eps)
    projected = z @ block.in_proj.weight.T
    projected[:, :state] += block.decay_bias
    gates = torch.sigmoid(projected[:, :3 * state])
    h, mixed = torch.empty(len(x), state, dtype=x.dtype), torch.empty(len(x), state, dtype=x.dtype)
    _gated_scan(gates.numpy(), projected.numpy(), h.numpy(), mixed.numpy())
    y = torch.addmm(x, mixed, block.out.weight.T)
    return y, (normalized, inverse_rms, z, projected, gates, h, mixed)


def block_backward(block, grad_y: Tensor, saved: tuple, grads: dict[Tensor, Tensor]) -> Tensor:
    """dL/dx of :func:`block_forward` from dL/dy (reused as the result's buffer); writes the block's gradients."""
    normalized, inverse_rms, z, projected, gates, h, mixed = saved
    torch.mm(grad_y.T, mixed, out=grads[block.out.weight])
    grad_mixed = grad_y @ block.out.weight
    grad_projected = torch.empty_like(projected)
    _gated_scan_backward(grad_mixed.numpy(), gates.numpy(), projected.numpy(), h.numpy(),
                         grad_projected.numpy(), grads[block.decay_bias].numpy())
    torch.mm(grad_projected.T, z, out=grads[block.in_proj.weight])
    return normalize_backward(grad_projected @ block.in_proj.weight, normalized, inverse_rms, block.norm.weight,
                              grads[block.norm.weight], grad_y)
