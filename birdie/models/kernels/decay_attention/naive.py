"""Decayed linear attention's contract and its oracle: :func:`decay_linear_attention_reference`, the recurrence
one position at a time."""

from __future__ import annotations

import torch
from torch import Tensor

from birdie.models.mixer import segment_starts


def check_attention_inputs(q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor) -> None:
    """Raise ValueError unless q, k are (B, H, T, d_k), v (B, H, T, d_v), log_decay (H,) and segment_ids (B, T)."""
    if q.dim() != 4 or q.shape != k.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            "decay_linear_attention expects q, k (B, H, T, d_k) and v (B, H, T, d_v); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if log_decay.shape != (q.shape[1],):
        raise ValueError(f"log_decay must have shape (heads,) = ({q.shape[1]},); got {tuple(log_decay.shape)}")
    if segment_ids.shape != (q.shape[0], q.shape[2]):
        raise ValueError(f"segment_ids must be (B, T) = {(q.shape[0], q.shape[2])}; got {tuple(segment_ids.shape)}")


def decay_linear_attention_reference(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor
) -> tuple[Tensor, Tensor]:
    """The recurrence, one position at a time (slow; for tests). Same arguments and results as the chunked form."""
    check_attention_inputs(q, k, v, log_decay, segment_ids)
    dtype = torch.promote_types(q.dtype, torch.float32)
    gamma = log_decay.to(dtype).exp()[None, :, None, None]
    starts = segment_starts(segment_ids).to(dtype)
    state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1], dtype=dtype)
    outputs = []
    for q_t, k_t, v_t, start_t in zip(q.to(dtype).unbind(2), k.to(dtype).unbind(2), v.to(dtype).unbind(2),
                                      starts.unbind(1)):
        state = state * gamma * (1 - start_t)[:, None, None, None] + k_t[..., :, None] * v_t[..., None, :]
        outputs.append((q_t[..., None, :] @ state)[..., 0, :])
    return torch.stack(outputs, dim=2), state
