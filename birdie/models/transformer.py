"""Softmax attention mixer (the Transformer family): MHA/GQA, RoPE, causal or prefix-LM, segment-masked.

Mask (True = may attend), per row, query q and key k:
``run[q] == run[k] and (k <= q or (bidirectional layer and prefix[q] and prefix[k]))``, where ``run`` numbers
the contiguous segments of a row. Padding only attends to earlier padding, so no query row is ever fully masked.
Unpacked causal batches take SDPA's ``is_causal`` fast path instead of building the (B, 1, T, T) mask.

Parameter names follow open_lm: ``in_proj`` (q | k | v stacked on the output dim) and ``out_proj``. Head counts
are read from ``in_proj``'s output width, so under tensor parallelism (:meth:`Attention.tp_plan`) each rank
attends over its own heads.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdie.models.config import ModelConfig
from birdie.models.layers import apply_rope
from birdie.models.mixer import Mixer, SequenceInfo
from birdie.models.registry import register_family

KVCache = tuple[Tensor, Tensor]  # keys, values: (B, kv_heads, T, head_dim), keys already rotated


def attention_mask(info: SequenceInfo, bidirectional: bool, window: int | None = None) -> Tensor:
    """(B, 1, T, T) boolean SDPA mask for ``info`` (True = attend); ``window`` bounds how far back a query sees."""
    length = info.segment_ids.shape[1]
    index = torch.arange(length, device=info.segment_ids.device)
    allowed = index[None, :] <= index[:, None]  # (Tq, Tk)
    if window is not None:
        allowed = allowed & (index[None, :] > index[:, None] - window)
    allowed = allowed[None]  # (1, Tq, Tk)
    if bidirectional:
        allowed = allowed | (info.prefix[:, :, None] & info.prefix[:, None, :])
    runs = info.segment_runs
    same_segment = runs[:, :, None] == runs[:, None, :]
    return (allowed & same_segment)[:, None]


class Attention(Mixer):
    """Multi-head (or grouped-query) softmax attention with rotary positions."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.kv_heads = config.kv_heads
        self.head_dim = config.head_size
        self.rope_base = config.rope_base
        self.rope_scaling = config.rope_scaling
        self.window = config.sliding_window
        self.bidirectional = config.is_bidirectional(layer_index)
        q_width, kv_width = self.n_heads * self.head_dim, self.kv_heads * self.head_dim
        self.in_proj = nn.Linear(config.d_model, q_width + 2 * kv_width, bias=False)
        self.out_proj = nn.Linear(q_width, config.d_model, bias=False)
        nn.init.normal_(self.in_proj.weight, std=config.init_std)
        nn.init.normal_(self.out_proj.weight, std=config.init_std / math.sqrt(2 * config.n_layers))

    def _project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, T, D), positions (B, T) -> rotated q (B, H, T, d), rotated k and v (B, H_kv, T, d)."""
        batch, length, _ = x.shape
        qkv = self.in_proj(x)
        # All heads, or this rank's share of them under tensor parallelism (same q : kv ratio).
        kv_width = qkv.shape[-1] * self.kv_heads // (self.n_heads + 2 * self.kv_heads)
        q, k, v = qkv.split([qkv.shape[-1] - 2 * kv_width, kv_width, kv_width], dim=-1)
        q = apply_rope(q.view(batch, length, -1, self.head_dim), positions, self.rope_base, self.rope_scaling)
        k = apply_rope(k.view(batch, length, -1, self.head_dim), positions, self.rope_base, self.rope_scaling)
        v = v.view(batch, length, -1, self.head_dim)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool) -> Tensor:
        """q (B, H, Tq, d), k/v (B, H_kv, Tk, d) -> (B, Tq, H * d)."""
        groups = q.shape[1] // k.shape[1]
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return out.transpose(1, 2).flatten(2)

    def forward(self, x: Tensor, info: SequenceInfo) -> tuple[Tensor, KVCache]:
        q, k, v = self._project(x, info.position_ids)
        sees_prefix = self.bidirectional and bool(info.prefix.any())
        unwindowed = self.window is None or x.shape[1] <= self.window
        plain_causal = not sees_prefix and unwindowed and bool((info.segment_ids == info.segment_ids[:, :1]).all())
        if plain_causal:
            out = self._attend(q, k, v, None, is_causal=True)
        else:
            out = self._attend(q, k, v, attention_mask(info, self.bidirectional, self.window), is_causal=False)
        return self.out_proj(out), (k, v)

    def step(self, x: Tensor, position: Tensor, state: KVCache) -> tuple[Tensor, KVCache]:
        q, k, v = self._project(x[:, None], position[:, None])
        keys, values = torch.cat((state[0], k), dim=2), torch.cat((state[1], v), dim=2)
        if self.window is not None:  # keys beyond the window are never seen again
            keys, values = keys[:, :, -self.window:], values[:, :, -self.window:]
        out = self._attend(q, keys, values, None, is_causal=False)
        return self.out_proj(out[:, 0]), (keys, values)

    def tp_plan(self) -> dict[str, Any]:
        """Whole heads per tensor-parallel rank: ``in_proj``'s q, k and v each sharded by heads, ``out_proj``
        row-wise. Needs ``n_kv_heads == n_heads`` (q, k and v of equal width) and tp dividing ``n_heads``."""
        if self.kv_heads != self.n_heads:
            raise ValueError(
                f"tensor parallel shards the fused [q | k | v] projection in equal parts, but n_kv_heads="
                f"{self.kv_heads} != n_heads={self.n_heads} (GQA); use n_kv_heads=n_heads or tp=1")
        from birdie.models.tensor_parallel import attention_plan

        return attention_plan()


register_family("transformer", Attention, has_mlp=True)
