"""Decayed linear attention with segment resets: SUPRA's sequence op.

Per head h with fixed decay ``gamma_h = exp(log_decay[h])`` and segment-local recurrence

    S_t = gamma_h * S_{t-1} * [t does not start a segment] + k_t v_t^T        (S: d_k x d_v)
    o_t = q_t S_t

which is ``o_i = sum_{j <= i, same segment} gamma^(i-j) (q_i . k_j) v_j``.

Forms with one contract (see :mod:`birdie.models.kernels`):

* :func:`decay_linear_attention` (here): the entry point for training and prefill; dispatches to fla's kernel or
  the chunked form. :func:`decay_linear_attention_step` (here) is one decoding step.
* :mod:`.chunked`: the chunked form. Inside a chunk of ``C`` positions, a (C x C) decay-and-segment-masked score
  matrix; across chunks, a carried state. A chunk's state holds only its last segment, the incoming state reaches
  a position only if that position continues the previous chunk's last segment, and it is carried only if the
  whole chunk continues it. ``T / C`` Python steps, each a batched matmul, so autograd sees a small graph.
* :mod:`.naive`: :func:`~.naive.decay_linear_attention_reference`, the recurrence above as a plain loop, the
  oracle for tests.
* :mod:`.fla`: on CUDA with ``flash-linear-attention`` installed (``pip install birdie-lm[fla]``), its Triton
  kernel ``chunk_simple_gla`` computes the same thing on the flattened batch with ``cu_seqlens``
  (:func:`~.fla.fla_decay_linear_attention`); it is imported lazily and never required. float64 stays on the
  chunked form (fla has no float64 kernels).

Accumulation is in float32 at least (float64 stays float64 for ``gradcheck``); outputs keep that dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from birdie.models.kernels.backend import uses_fla
from birdie.models.kernels.decay_attention.chunked import chunked_decay_linear_attention
from birdie.models.kernels.decay_attention.fla import fla_decay_linear_attention
from birdie.models.kernels.decay_attention.naive import check_attention_inputs


def decay_linear_attention(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor, chunk_size: int = 64
) -> tuple[Tensor, Tensor]:
    """Chunked decayed linear attention (see the module docstring).

    Args:
        q, k: (B, H, T, d_k); v: (B, H, T, d_v).
        log_decay: (H,) log of each head's decay, <= 0 (a constant: no gradient flows to it).
        segment_ids: (B, T); state never crosses a change of id.
        chunk_size: positions per chunk.

    Returns:
        o (B, H, T, d_v) and the state after each row's last position, (B, H, d_k, d_v), both float32 or wider.
    """
    check_attention_inputs(q, k, v, log_decay, segment_ids)
    if uses_fla(q):
        return fla_decay_linear_attention(q, k, v, log_decay, segment_ids)
    # Under bf16 autocast the matmuls below would silently drop back to bf16; the state must stay float32.
    with torch.autocast(q.device.type, enabled=False):
        return chunked_decay_linear_attention(q, k, v, log_decay, segment_ids, chunk_size)


def decay_linear_attention_step(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, state: Tensor
) -> tuple[Tensor, Tensor]:
    """One decoding step: q, k (B, H, d_k), v (B, H, d_v), state (B, H, d_k, d_v) float32 -> o (B, H, d_v), state."""
    with torch.autocast(q.device.type, enabled=False):
        gamma = log_decay.to(state.dtype).exp()[None, :, None, None]
        state = state * gamma + k.to(state.dtype)[..., :, None] * v.to(state.dtype)[..., None, :]
        return (q.to(state.dtype)[..., None, :] @ state)[..., 0, :], state
