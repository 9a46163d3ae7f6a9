"""Decayed linear attention with segment resets: SUPRA's sequence op.

Per head h with fixed decay ``gamma_h = exp(log_decay[h])`` and segment-local recurrence

    S_t = gamma_h * S_{t-1} * [t does not start a segment] + k_t v_t^T        (S: d_k x d_v)
    o_t = q_t S_t

which is ``o_i = sum_{j <= i, same segment} gamma^(i-j) (q_i . k_j) v_j``.

Three forms, one contract:

* :func:`decay_linear_attention`: the chunked form used for training and prefill. Inside a chunk of ``C``
  positions, a (C x C) decay-and-segment-masked score matrix; across chunks, a carried state. A chunk's state
  holds only its last segment, the incoming state reaches a position only if that position continues the previous
  chunk's last segment, and it is carried only if the whole chunk continues it. ``T / C`` Python steps, each a
  batched matmul, so autograd sees a small graph.
* :func:`decay_linear_attention_reference`: the recurrence above as a plain loop, the oracle for tests.
* On CUDA with ``flash-linear-attention`` installed (``pip install birdie-lm[fla]``), its Triton kernel
  ``chunk_simple_gla`` computes the same thing on the flattened batch with ``cu_seqlens``
  (:func:`_fla_decay_linear_attention`); it is imported lazily and never required. float64 stays on the chunked
  form (fla has no float64 kernels).

Accumulation is in float32 at least (float64 stays float64 for ``gradcheck``); outputs keep that dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from birdie.models.mixer import segment_runs, segment_starts
from birdie.models.scan import uses_fla


def _check(q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor) -> None:
    if q.dim() != 4 or q.shape != k.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            "decay_linear_attention expects q, k (B, H, T, d_k) and v (B, H, T, d_v); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if log_decay.shape != (q.shape[1],):
        raise ValueError(f"log_decay must have shape (heads,) = ({q.shape[1]},); got {tuple(log_decay.shape)}")
    if segment_ids.shape != (q.shape[0], q.shape[2]):
        raise ValueError(f"segment_ids must be (B, T) = {(q.shape[0], q.shape[2])}; got {tuple(segment_ids.shape)}")


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
    _check(q, k, v, log_decay, segment_ids)
    if uses_fla(q):
        return _fla_decay_linear_attention(q, k, v, log_decay, segment_ids)
    # Under bf16 autocast the matmuls below would silently drop back to bf16; the state must stay float32.
    with torch.autocast(q.device.type, enabled=False):
        return _chunked(q, k, v, log_decay, segment_ids, chunk_size)


def _chunked(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor, chunk_size: int
) -> tuple[Tensor, Tensor]:
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


def decay_linear_attention_reference(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor
) -> tuple[Tensor, Tensor]:
    """The recurrence, one position at a time (slow; for tests). Same arguments and results as the chunked form."""
    _check(q, k, v, log_decay, segment_ids)
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


def decay_linear_attention_step(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, state: Tensor
) -> tuple[Tensor, Tensor]:
    """One decoding step: q, k (B, H, d_k), v (B, H, d_v), state (B, H, d_k, d_v) float32 -> o (B, H, d_v), state."""
    with torch.autocast(q.device.type, enabled=False):
        gamma = log_decay.to(state.dtype).exp()[None, :, None, None]
        state = state * gamma + k.to(state.dtype)[..., :, None] * v.to(state.dtype)[..., None, :]
        return (q.to(state.dtype)[..., None, :] @ state)[..., 0, :], state


def _fla_decay_linear_attention(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor, kernel: Callable | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`decay_linear_attention` on a flash-linear-attention simple-GLA kernel over the flattened batch.

    ``kernel`` has ``chunk_simple_gla``'s signature and layout (q, k (1, N, H, d_k), v (1, N, H, d_v), ``g_gamma``
    (H,) log decays, ``scale``, ``cu_seqlens``) and defaults to it; the tests pass ``fused_recurrent_simple_gla``,
    which the Triton interpreter runs on the CPU. Every segment run is one varlen sequence, so no state crosses
    a segment or row boundary; inputs are cast to float32 so the kernel's outputs honour the float32 contract.
    """
    if kernel is None:
        from fla.ops.simple_gla import chunk_simple_gla as kernel

    batch, heads, length, _ = q.shape
    start = segment_starts(segment_ids)
    flat_start = start.flatten().nonzero().flatten()
    cu_seqlens = torch.cat((flat_start, flat_start.new_tensor([batch * length])))
    flat = [t.float().transpose(1, 2).reshape(1, batch * length, heads, t.shape[-1]) for t in (q, k, v)]
    out, final = kernel(*flat, g_gamma=log_decay.float(), scale=1.0, output_final_state=True, cu_seqlens=cu_seqlens)
    out = out.reshape(batch, length, heads, -1).transpose(1, 2)
    # Each row's last sequence is the one that ends at the row's end.
    last_sequence = start.long().sum(dim=1).cumsum(dim=0) - 1
    return out.float(), final[last_sequence].float()
