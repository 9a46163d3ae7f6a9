"""Fitting the reward model (:mod:`birdie.curriculum.reward_model`): AdamW over one flat buffer and a
hand-written training pass.

:func:`loss_and_gradients` gives the MSE and every parameter's gradient from a hand-written backward pass. A
history is a few dozen positions; through autograd a fit step was ~150 tiny ops whose fixed costs made up 2/3 of it.
Here a block is two GEMMs forward and three backward around, with numba installed, one compiled kernel per norm
and one for the gates and the recurrence each way (:mod:`birdie.curriculum.reward_kernels`), else ~35 torch calls
and a short-sequence numpy scan (:func:`scan_rows`). Gradients land in one flat buffer (:func:`make_optimizer`), so
clipping is one norm and AdamW one fused call (:func:`fit_reward_model`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdie.curriculum.reward_model import NORM_EPS, GatedSSMBlock, RewardModel, RewardModelConfig
from birdie.lazy import numba_disabled


def make_optimizer(model: RewardModel, config: RewardModelConfig) -> torch.optim.AdamW:
    """Fused AdamW over one flat buffer holding every reward-model parameter.

    The model's parameters become views of that buffer (a ``load_state_dict`` into the model still works: it copies
    in place), and the buffer's ``.grad`` holds every parameter's gradient, so :func:`fit_reward_model` clips with
    one norm and steps with one fused AdamW call.
    """
    parameters = list(model.parameters())
    flat = nn.Parameter(torch.cat([parameter.detach().reshape(-1) for parameter in parameters]))
    for parameter, view in zip(parameters, _views(flat.data, parameters)):
        parameter.data = view
    flat.grad = torch.zeros_like(flat)
    return torch.optim.AdamW([flat], lr=config.lr, weight_decay=config.weight_decay, fused=True)


def _views(flat: Tensor, parameters: list[Tensor]) -> list[Tensor]:
    """Consecutive views of ``flat`` shaped like ``parameters``."""
    offsets = np.cumsum([0] + [parameter.numel() for parameter in parameters])
    return [flat[start:end].view_as(p) for p, start, end in zip(parameters, offsets[:-1], offsets[1:])]


def _flat_gradients(model: RewardModel, optimizer: torch.optim.Optimizer) -> tuple[Tensor, dict[Tensor, Tensor]]:
    """The flat gradient buffer of an optimizer from :func:`make_optimizer` and its view for each parameter."""
    parameters = list(model.parameters())
    flat = optimizer.param_groups[0]["params"][0]
    views = _views(flat.data, parameters)
    if flat.grad is None or any(p.data_ptr() != v.data_ptr() for p, v in zip(parameters, views)):
        raise ValueError("fit_reward_model needs the optimizer that make_optimizer(model, config) made for this model")
    return flat.grad, dict(zip(parameters, _views(flat.grad, parameters)))


def fit_reward_model(
    model: RewardModel, optimizer: torch.optim.Optimizer, rows: Tensor, rewards: Tensor, config: RewardModelConfig,
    compiled: bool | None = None,
) -> float:
    """Train ``config.train_steps`` AdamW steps of MSE between ``model(rows)`` and ``rewards`` on the whole history.

    Each step: the loss and gradients of :func:`loss_and_gradients`, the gradient clipped to norm
    ``config.grad_clip`` (as ``clip_grad_norm_``), one AdamW step.

    Args:
        model: the reward model; optimizer: made by :func:`make_optimizer` for it.
        rows: (T, 2K) history rows, T >= 1; rewards: (T, K) rewards observed after each row.
        compiled: see :func:`training_pass`.
    Returns:
        The MSE before the last step (``nan`` when ``train_steps`` is 0).
    """
    if len(rows) == 0:
        raise ValueError("fit_reward_model needs at least one history row")
    flat_grad, grads = _flat_gradients(model, optimizer)
    normalized_rows = torch.cat([F.rms_norm(half, (model.num_configs,), eps=NORM_EPS)
                                 for half in rows.split(model.num_configs, dim=1)], dim=1)
    loss = torch.tensor(float("nan"))
    loss_and_gradients_of = training_pass(model, grads, len(rows), compiled)
    try:
        for _ in range(config.train_steps):
            loss = loss_and_gradients_of(normalized_rows, rewards)
            # Fused AdamW divides the gradient by ``grad_scale`` (a float32 scalar; the protocol torch.amp.GradScaler
            # uses): clipping without another pass over the gradient, by clip_grad_norm_'s factor
            # min(1, max_norm / (norm + 1e-6)).
            norm = torch.linalg.vector_norm(flat_grad)
            optimizer.grad_scale = norm.add_(1e-6).div_(config.grad_clip).clamp_(min=1.0).float()
            optimizer.step()
    finally:
        optimizer.__dict__.pop("grad_scale", None)
    return float(loss)


def scan_rows(entering: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """The linear recurrence ``out_0 = b_0``, ``out_t = entering_{t-1} * out_{t-1} + b_t`` over the rows.

    Args:
        entering: (T - 1, D) decays into positions 1..T-1; b: (T, D) inputs; out: (T, D), written. Any strides,
            so a reversed view (``x[::-1]``) runs the recurrence right to left.

    A two-level scan for short sequences: positions split into chunks of ``C = isqrt(T)``; one pass over the
    in-chunk offsets runs every chunk at once from a zero state (and the running product of the decays), then
    one pass over the chunks adds each chunk's carried-in state. ``3C + 2T/C`` numpy calls on rows, where a plain
    loop makes ``2T``.
    """
    length, width = b.shape
    chunk = max(1, math.isqrt(length))
    count = -(-length // chunk)
    h = np.zeros((count * chunk, width), dtype=b.dtype)
    decay = np.zeros_like(h)
    h[:length] = b
    decay[1:length] = entering
    h, decay = h.reshape(count, chunk, width), decay.reshape(count, chunk, width)
    term = np.empty((count, width), dtype=b.dtype)
    for offset in range(1, chunk):
        np.multiply(decay[:, offset], h[:, offset - 1], out=term)
        np.add(h[:, offset], term, out=h[:, offset])
        np.multiply(decay[:, offset], decay[:, offset - 1], out=decay[:, offset])
    term = np.empty((chunk, width), dtype=b.dtype)
    for index in range(1, count):
        np.multiply(decay[index], h[index - 1, -1], out=term)
        np.add(h[index], term, out=h[index])
    np.copyto(out, h.reshape(-1, width)[:length])


def _normalize(x: Tensor, weight: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """RMSNorm of the rows of x (T, D): the normalized rows, their (T, 1) inverse RMS, ``normalized * weight``."""
    inverse_rms = torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True).add_(eps))
    normalized = x * inverse_rms
    return normalized, inverse_rms, normalized * weight


def _normalize_backward(grad_z: Tensor, normalized: Tensor, inverse_rms: Tensor, weight: Tensor,
                        grad_weight: Tensor, grad_x: Tensor) -> Tensor:
    """Backward of :func:`_normalize`: writes dL/dweight and ADDS dL/dx into ``grad_x`` (returned)."""
    product = grad_z * normalized
    torch.sum(product, dim=0, out=grad_weight)
    # dx = r * (g - n * mean(g * n)) with g = grad_z * weight, n = normalized, r = inverse_rms.
    projection = torch.mv(product, weight).unsqueeze_(1).mul_(inverse_rms).div_(normalized.shape[1])
    grad_x.addcmul_(grad_z * weight, inverse_rms)
    return grad_x.addcmul_(normalized, projection, value=-1)


def _block_forward(block: GatedSSMBlock, x: Tensor, eps: float) -> tuple[Tensor, tuple]:
    """``block(x)`` for one (T, width) sequence, and what :func:`_block_backward` needs."""
    state = block.state
    normalized, inverse_rms, z = _normalize(x, block.norm.weight, eps)
    projected = z @ block.in_proj.weight.T
    projected[:, :state] += block.decay_bias
    gates = torch.sigmoid(projected[:, :3 * state])
    a, gate_in, gate_out = gates.split(state, dim=1)
    value = projected[:, 3 * state:]
    keep = torch.rsub(a, 1)
    kept_in = keep * gate_in
    h = torch.empty(value.shape, dtype=value.dtype)
    scan_rows(a[1:].numpy(), (kept_in * value).numpy(), h.numpy())
    mixed = gate_out * h
    y = torch.addmm(x, mixed, block.out.weight.T)
    return y, (normalized, inverse_rms, z, gates, value, keep, kept_in, h, mixed)


def _block_backward(block: GatedSSMBlock, grad_y: Tensor, saved: tuple, grads: dict[Tensor, Tensor]) -> Tensor:
    """dL/dx of :func:`_block_forward` from dL/dy (reused as the result's buffer); writes the block's gradients."""
    normalized, inverse_rms, z, gates, value, keep, kept_in, h, mixed = saved
    state = block.state
    a, gate_in, gate_out = gates.split(state, dim=1)
    torch.mm(grad_y.T, mixed, out=grads[block.out.weight])
    grad_mixed = grad_y @ block.out.weight
    grad_projected = torch.empty(len(h), 4 * state, dtype=h.dtype)
    grad_a, grad_in, grad_out, grad_value = grad_projected.split(state, dim=1)
    torch.mul(grad_mixed, h, out=grad_out)
    g = torch.empty_like(h)  # dL/db_t, b_t = keep_t * gate_in_t * value_t
    # The adjoint recurrence g_t = dL/dh_t + a_{t+1} g_{t+1}, right to left.
    scan_rows(a.numpy()[:0:-1], grad_mixed.mul_(gate_out).numpy()[::-1], g.numpy()[::-1])
    torch.mul(g, kept_in, out=grad_value)
    g_value = g * value
    torch.mul(g_value, keep, out=grad_in)
    torch.mul(g_value, gate_in, out=grad_a).neg_()
    grad_a[1:].addcmul_(g[1:], h[:-1])  # through a_t * h_{t-1}
    grad_gates = grad_projected[:, :3 * state]
    grad_gates.mul_(gates).mul_(torch.rsub(gates, 1))
    torch.sum(grad_a, dim=0, out=grads[block.decay_bias])
    torch.mm(grad_projected.T, z, out=grads[block.in_proj.weight])
    return _normalize_backward(grad_projected @ block.in_proj.weight, normalized, inverse_rms, block.norm.weight,
                               grads[block.norm.weight], grad_y)


def training_pass(model: RewardModel, grads: dict[Tensor, Tensor], length: int,
                  compiled: bool | None = None) -> Callable[[Tensor, Tensor], Tensor]:
    """:func:`loss_and_gradients` for ``length``-row histories as a function of (normalized_rows, rewards).

    ``compiled``: use the numba kernels (:class:`birdie.curriculum.reward_kernels.CompiledTrainingPass`, buffers
    allocated once); None: when numba is installed and ``BIRDIE_NO_NUMBA`` (the objectives' switch too) is unset;
    False: the torch path.
    """
    if compiled is None and numba_disabled():
        compiled = False
    if compiled is not False:
        try:
            from birdie.curriculum.reward_kernels import CompiledTrainingPass
        except ImportError:
            if compiled:
                raise ImportError("compiled=True needs numba: pip install 'birdie-lm[fast]'") from None
        else:
            return CompiledTrainingPass(model, grads, length, NORM_EPS)
    return lambda normalized_rows, rewards: _torch_loss_and_gradients(model, normalized_rows, rewards, grads)


def loss_and_gradients(model: RewardModel, normalized_rows: Tensor, rewards: Tensor, grads: dict[Tensor, Tensor],
                       compiled: bool | None = None) -> Tensor:
    """MSE of ``model(rows)`` against ``rewards`` and every parameter's gradient, without autograd.

    Args:
        model: the reward model.
        normalized_rows: (T, 2K) history rows with each half RMS-normalized (no weight): the input norm's part that
            does not depend on parameters, computed once per fit.
        rewards: (T, K) targets.
        grads: for each parameter of ``model``, a tensor of its shape that receives its gradient (overwritten).
        compiled: see :func:`training_pass`.
    Returns:
        The scalar MSE.
    """
    return training_pass(model, grads, len(normalized_rows), compiled)(normalized_rows, rewards)


@torch.no_grad()
def _torch_loss_and_gradients(model: RewardModel, normalized_rows: Tensor, rewards: Tensor,
                              grads: dict[Tensor, Tensor]) -> Tensor:
    split = model.input_norm
    gamma = torch.cat([split.first.weight, split.second.weight])
    inputs = normalized_rows * gamma
    x = inputs @ model.embed.weight.T
    saved = []
    for block in model.blocks:
        x, block_saved = _block_forward(block, x, NORM_EPS)
        saved.append(block_saved)
    normalized, inverse_rms, z = _normalize(x, model.head_norm.weight, NORM_EPS)
    prediction = torch.tanh(torch.addmm(model.head.bias, z, model.head.weight.T))
    error = prediction - rewards
    loss = torch.mean(error * error)

    grad_logits = error.mul_(2.0 / error.numel()).mul_(torch.rsub(prediction * prediction, 1))
    torch.mm(grad_logits.T, z, out=grads[model.head.weight])
    torch.sum(grad_logits, dim=0, out=grads[model.head.bias])
    grad_x = _normalize_backward(grad_logits @ model.head.weight, normalized, inverse_rms,
                                 model.head_norm.weight, grads[model.head_norm.weight], torch.zeros_like(x))
    for block, block_saved in zip(reversed(model.blocks), reversed(saved)):
        grad_x = _block_backward(block, grad_x, block_saved, grads)
    torch.mm(grad_x.T, inputs, out=grads[model.embed.weight])
    grad_gamma = torch.sum((grad_x @ model.embed.weight).mul_(normalized_rows), dim=0)
    grads[split.first.weight].copy_(grad_gamma[:model.num_configs])
    grads[split.second.weight].copy_(grad_gamma[model.num_configs:])
    return loss
