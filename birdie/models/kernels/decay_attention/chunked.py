"""Decayed linear attention in chunks: a decay-and-segment-masked (C x C) score matrix inside a chunk of ``C``
positions, a carried (d_k x d_v) state across chunks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from birdie.models.mixer import segment_runs


def chunked_decay_linear_attention(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor, chunk_size: int
) -> tuple[Tensor, Tensor]:
    """:func:`~birdie.models.kernels.decay_attention.decay_linear_attention` as ``T / chunk_size`` batched matmul
    steps (see the package docstring), on any device; call it with autocast off so the state stays float32."""
    dtype = torch.promote_types(q.dtype, torch.float32)
    batch, heads, length, _ = q.shape
    n_chunks = -(-length // chunk_size)
    pad = n_chunks * chunk_size - length
    # Left padding keeps the row's last position last; run id 0 (never a real run) isolates the pad.
    runs = F.pad(segment_runs(segment_ids), (pad, 0), value=0).view(batch, n_chunks, chunk_size)
    q, k, v = (F.pad(t.to(dtype), (0, 0, pad, 0)).unflatten(2, (n_chunks, chunk_size)) for t in (q, k, v))

    rate = -log_decay.to(device=q.device, dtype=dtype)  # (H,), >= 0
    offset = torch.arange(chunk_size, device=q.device)
    lag = offset[:, None] - offset[None, :]
    intra_decay = torch.exp(-rate[:, None, None] * lag.clamp(min=0)) * (lag >= 0)  # (H, C, C)
    same_run = (runs[..., :, None] == runs[..., None, :])[:, None]  # (B, 1, N, C, C)
    scores = (q @ k.transpose(-1, -2)) * intra_decay[:, None] * same_run
    out = scores @ v  # (B, H, N, C, d_v)

    last = runs[..., -1]  # (B, N): the run each chunk's state holds
    previous_last = F.pad(last[:, :-1], (1, 0), value=-1)
    reads_state = (runs == previous_last[..., None])[:, None, ..., None]  # (B, 1, N, C, 1)
    writes_state = (runs == last[..., None])[:, None, ..., None]
    carries = (last == previous_last)[:, None, :, None, None].to(dtype)  # (B, 1, N, 1, 1)
    q_in = q * torch.exp(-rate[:, None] * (offset + 1))[:, None, :, None] * reads_state
    k_out = k * torch.exp(-rate[:, None] * (chunk_size - 1 - offset))[:, None, :, None] * writes_state
    chunk_states = k_out.transpose(-1, -2) @ v  # (B, H, N, d_k, d_v)
    chunk_decay = torch.exp(-rate * chunk_size)[None, :, None, None]

    state = q.new_zeros(batch, heads, q.shape[-1], v.shape[-1])
    inter = []
    for n in range(n_chunks):
        inter.append(q_in[:, :, n] @ state)
        state = state * chunk_decay * carries[:, :, n] + chunk_states[:, :, n]
    out = out + torch.stack(inter, dim=2)
    return out.flatten(2, 3)[:, :, pad:], state
