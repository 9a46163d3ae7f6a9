"""Decayed linear attention on flash-linear-attention's simple-GLA Triton kernels (``pip install birdie-lm[fla]``),
imported when the op runs, never at import time."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from birdie.models.mixer import segment_starts


def fla_decay_linear_attention(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, segment_ids: Tensor, kernel: Callable | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`~birdie.models.kernels.decay_attention.decay_linear_attention` on an fla simple-GLA kernel over the
    flattened batch.

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
