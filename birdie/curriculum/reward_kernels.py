"""Compiled (numba) kernels for the reward model's training path: one call per RMSNorm and per recurrence.

:func:`birdie.curriculum.reward_fit.loss_and_gradients` runs a Gated SSM block as torch GEMMs around
elementwise work on (T, state) arrays, T a few dozen history positions. In torch that work is ~40 calls per block
whose fixed costs exceed their arithmetic; here it is two loops per block, forward and backward, that also run the
recurrence, and every buffer is allocated once per fit. Same contract as the torch path in ``reward_fit.py``, and
the same tests against autograd. Imported only when numba is installed (``pip install birdie-lm[fast]``); compiled on
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
def _normalize(x, weight, eps, normalized, inverse_rms, z):
    """RMSNorm of the rows of x (T, D): writes ``normalized`` (T, D), ``inverse_rms`` (T,) and
    ``z = normalized * weight`` (T, D)."""
    length, width = x.shape
    one = x.dtype.type(1)  # typed literals keep float32 arithmetic in float32
    for t in range(length):
        total = x.dtype.type(0)
        for j in range(width):
            total += x[t, j] * x[t, j]
        r = one / np.sqrt(total / x.dtype.type(width) + eps)
        inverse_rms[t] = r
        for j in range(width):
            normalized[t, j] = x[t, j] * r
            z[t, j] = normalized[t, j] * weight[j]


@_jit_sums
def _normalize_backward(grad_z, normalized, inverse_rms, weight, grad_weight, grad_x):
    """Backward of :func:`_normalize` from dL/dz (T, D): writes dL/dweight (D,), ADDS dL/dx into ``grad_x``."""
    length, width = grad_z.shape
    grad_weight[:] = 0
    for t in range(length):
        projection = grad_z.dtype.type(0)
        for j in range(width):
            product = grad_z[t, j] * normalized[t, j]
            grad_weight[j] += product
            projection += product * weight[j]
        projection *= inverse_rms[t] / grad_z.dtype.type(width)
        for j in range(width):
            grad_x[t, j] += grad_z[t, j] * weight[j] * inverse_rms[t] - normalized[t, j] * projection


@_jit
def _gated_scan(gates, projected, h, mixed):
    """From gates (T, 3S) = sigmoid([d + bias, i, o]) and projected (T, 4S) = [d, i, o, u]: writes the states
    h (T, S), ``h_t = a_t h_{t-1} + (1 - a_t) sigmoid(i_t) u_t``, and ``mixed = sigmoid(o) * h`` (T, S)."""
    length, state = h.shape
    zero, one = h.dtype.type(0), h.dtype.type(1)
    for t in range(length):
        for j in range(state):
            a = gates[t, j]
            previous = h[t - 1, j] if t > 0 else zero
            h[t, j] = a * previous + (one - a) * gates[t, state + j] * projected[t, 3 * state + j]
            mixed[t, j] = gates[t, 2 * state + j] * h[t, j]


@_jit
def _gated_scan_backward(grad_mixed, gates, projected, h, grad_projected, grad_bias):
    """Backward of :func:`_gated_scan` from dL/dmixed (T, S): writes dL/dprojected (T, 4S), the gates' derivatives
    taken through their sigmoids, and dL/ddecay_bias (S,)."""
    # Short loops over channel rows with few arrays each, so that LLVM vectorizes them.
    length, state = h.shape
    one = h.dtype.type(1)
    # g_t = dL/db_t = dL/dh_t + a_{t+1} g_{t+1}, right to left; held in the value slot until the last loop.
    for t in range(length - 1, -1, -1):
        g, grad_h, gate_out = grad_projected[t, 3 * state:], grad_mixed[t], gates[t, 2 * state:]
        for j in range(state):
            g[j] = grad_h[j] * gate_out[j]
        if t < length - 1:
            a_next, g_next = gates[t + 1, :state], grad_projected[t + 1, 3 * state:]
            for j in range(state):
                g[j] += a_next[j] * g_next[j]
    grad_bias[:] = 0
    for t in range(length):
        a, gate_in, gate_out = gates[t, :state], gates[t, state:2 * state], gates[t, 2 * state:]
        value, grad_h, g = projected[t, 3 * state:], grad_mixed[t], grad_projected[t, 3 * state:]
        grad_a, grad_in, grad_out = (grad_projected[t, :state], grad_projected[t, state:2 * state],
                                     grad_projected[t, 2 * state:3 * state])
        for j in range(state):
            grad_out[j] = grad_h[j] * h[t, j] * gate_out[j] * (one - gate_out[j])
        # b_t = (1 - a_t) gate_in_t value_t and h_t = a_t h_{t-1} + b_t; then through each sigmoid.
        for j in range(state):
            grad_a[j] = -g[j] * gate_in[j] * value[j] * a[j] * (one - a[j])
        if t > 0:
            for j in range(state):
                grad_a[j] += g[j] * h[t - 1, j] * a[j] * (one - a[j])
        for j in range(state):
            grad_in[j] = g[j] * (one - a[j]) * value[j] * gate_in[j] * (one - gate_in[j])
        for j in range(state):
            g[j] *= (one - a[j]) * gate_in[j]
        for j in range(state):
            grad_bias[j] += grad_a[j]


class _BlockPass:
    """One Gated SSM block's forward and backward on (T, width) rows, on buffers allocated once."""

    def __init__(self, block, grads: dict[Tensor, Tensor], length: int, eps: float) -> None:
        state, width, dtype = block.state, block.norm.weight.shape[0], block.norm.weight.dtype
        self.in_weight, self.out_weight = block.in_proj.weight.detach(), block.out.weight.detach()
        self.decay_bias, self.norm_weight = block.decay_bias.detach(), block.norm.weight.detach().numpy()
        self.eps = self.norm_weight.dtype.type(eps)
        self.grad_in, self.grad_out = grads[block.in_proj.weight], grads[block.out.weight]
        self.grad_bias, self.grad_norm = grads[block.decay_bias].numpy(), grads[block.norm.weight].numpy()
        columns = dict(normalized=width, z=width, y=width, grad_z=width, projected=4 * state,
                       grad_projected=4 * state, gates=3 * state, h=state, mixed=state, grad_mixed=state)
        self.buffers = {name: torch.empty(length, size, dtype=dtype) for name, size in columns.items()}
        self.buffers["inverse_rms"] = torch.empty(length, dtype=dtype)
        self.arrays = {name: buffer.numpy() for name, buffer in self.buffers.items()}

    def forward(self, x: Tensor) -> Tensor:
        """y = block(x), (T, width) -> (T, width) in this pass's buffer."""
        b, n, state = self.buffers, self.arrays, len(self.decay_bias)
        _normalize(x.numpy(), self.norm_weight, self.eps, n["normalized"], n["inverse_rms"], n["z"])
        torch.mm(b["z"], self.in_weight.T, out=b["projected"])
        b["projected"][:, :state] += self.decay_bias
        torch.sigmoid(b["projected"][:, :3 * state], out=b["gates"])
        _gated_scan(n["gates"], n["projected"], n["h"], n["mixed"])
        return torch.addmm(x, b["mixed"], self.out_weight.T, out=b["y"])

    def backward(self, grad_y: Tensor) -> Tensor:
        """dL/dx from dL/dy, accumulated into ``grad_y`` (returned); writes the block's parameter gradients."""
        b, n = self.buffers, self.arrays
        torch.mm(grad_y.T, b["mixed"], out=self.grad_out)
        torch.mm(grad_y, self.out_weight, out=b["grad_mixed"])
        _gated_scan_backward(n["grad_mixed"], n["gates"], n["projected"], n["h"], n["grad_projected"], self.grad_bias)
        torch.mm(b["grad_projected"].T, b["z"], out=self.grad_in)
        torch.mm(b["grad_projected"], self.in_weight, out=b["grad_z"])
        _normalize_backward(n["grad_z"], n["normalized"], n["inverse_rms"], self.norm_weight, self.grad_norm,
                            grad_y.numpy())
        return grad_y


class CompiledTrainingPass:
    """``loss_and_gradients`` for histories of one length, with numba kernels and buffers allocated once.

    Called once per fit step: ``pass_(normalized_rows, rewards) -> loss``, writing into ``grads`` (see
    :func:`birdie.curriculum.reward_fit.loss_and_gradients` for the arguments). The parameters are read through
    views, so in-place optimizer updates between calls are seen.
    """

    def __init__(self, model, grads: dict[Tensor, Tensor], length: int, eps: float) -> None:
        width, dtype = model.head_norm.weight.shape[0], model.head_norm.weight.dtype
        self.model, self.grads = model, grads
        self.blocks = [_BlockPass(block, grads, length, eps) for block in model.blocks]
        split = model.input_norm
        self.gammas = (split.first.weight.detach(), split.second.weight.detach())
        self.grad_gammas = (grads[split.first.weight], grads[split.second.weight])
        self.embed = model.embed.weight.detach()
        self.head_weight, self.head_bias = model.head.weight.detach(), model.head.bias.detach()
        self.head_norm_weight = model.head_norm.weight.detach().numpy()
        self.eps = self.head_norm_weight.dtype.type(eps)
        self.grad_head, self.grad_head_bias = grads[model.head.weight], grads[model.head.bias]
        self.grad_head_norm = grads[model.head_norm.weight].numpy()
        self.x, self.normalized, self.z, self.grad_x = (torch.empty(length, width, dtype=dtype) for _ in range(4))
        self.inverse_rms = torch.empty(length, dtype=dtype)

    @torch.no_grad()
    def __call__(self, normalized_rows: Tensor, rewards: Tensor) -> Tensor:
        inputs = normalized_rows * torch.cat(self.gammas)
        x = torch.mm(inputs, self.embed.T, out=self.x)
        for block in self.blocks:
            x = block.forward(x)
        _normalize(x.numpy(), self.head_norm_weight, self.eps, self.normalized.numpy(), self.inverse_rms.numpy(),
                   self.z.numpy())
        prediction = torch.tanh(torch.addmm(self.head_bias, self.z, self.head_weight.T))
        error = prediction - rewards
        loss = torch.mean(error * error)

        grad_logits = error.mul_(2.0 / error.numel()).mul_(torch.rsub(prediction * prediction, 1))
        torch.mm(grad_logits.T, self.z, out=self.grad_head)
        torch.sum(grad_logits, dim=0, out=self.grad_head_bias)
        grad_x = self.grad_x.zero_()
        _normalize_backward((grad_logits @ self.head_weight).numpy(), self.normalized.numpy(),
                            self.inverse_rms.numpy(), self.head_norm_weight, self.grad_head_norm, grad_x.numpy())
        for block in reversed(self.blocks):
            grad_x = block.backward(grad_x)
        torch.mm(grad_x.T, inputs, out=self.grads[self.model.embed.weight])
        grad_gamma = torch.sum((grad_x @ self.embed).mul_(normalized_rows), dim=0)
        first, second = self.grad_gammas
        first.copy_(grad_gamma[:len(first)])
        second.copy_(grad_gamma[len(first):])
        return loss
