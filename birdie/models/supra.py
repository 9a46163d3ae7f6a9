"""SUPRA linear attention (Mercat et al. 2024, ``TRI-ML/linear_open_lm``), the ``supra`` family.

Per layer, exactly as linear_open_lm runs it:

1. ``[q | k | v] = in_proj(x)``, the softmax model's projection, reused.
2. Feature map ``relu(_totrain_embed(.))``, one dense Linear with bias shared by q and k (a second one,
   ``_totrain_embed_kv``, for k when ``n_kv_heads != n_heads``); optional ``_totrain_q_norm``/``_totrain_k_norm``.
3. RoPE (rotate-half) *after* the feature map; k scaled by 1/sqrt(head_dim); k and v repeated for GQA.
4. Decayed linear attention with a fixed per-head decay (ALiBi slopes by default), reset at segment starts
   (:mod:`birdie.models.kernels.decay_attention`).
5. ``_totrain_gn``: GroupNorm with one group per head and no affine parameters, in place of the denominator.
6. ``out_proj``, reused.

Parameter names match open_lm, so a softmax open_lm checkpoint loads with ``strict=False`` leaving exactly the
``_totrain_*`` keys new. SUPRA is trained causally: every layer must be causal (``bidirectional_layers="none"``).
The decoding state is the (B, H, head_dim, head_dim) float32 matrix, independent of the context length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdie.models.config import ModelConfig
from birdie.models.kernels.decay_attention import decay_linear_attention, decay_linear_attention_step
from birdie.models.layers import apply_rope, build_norm
from birdie.models.mixer import Mixer, SequenceInfo
from birdie.models.registry import register_family

GROUP_NORM_EPS = 1e-5


def _alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi's slopes 2^(-8 (h + 1) / H); for H not a power of two, ALiBi's interleaving of the 2H set."""
    if math.log2(n_heads).is_integer():
        return [2.0 ** (-8.0 * (head + 1) / n_heads) for head in range(n_heads)]
    closest = 2 ** math.floor(math.log2(n_heads))
    return _alibi_slopes(closest) + _alibi_slopes(2 * closest)[0::2][: n_heads - closest]


def decay_rates(n_heads: int, kind: str) -> Tensor:
    """(H,) float64 per-head decay rates s_h >= 0 (gamma_h = exp(-s_h)): ``alibi`` (open_lm's default),
    ``retnet`` (gamma_h = 1 - 2^(-5 - h)) or ``none`` (no decay)."""
    if kind == "alibi":
        return torch.tensor(_alibi_slopes(n_heads), dtype=torch.float64)
    if kind == "retnet":
        return -torch.log1p(-(2.0 ** (-5.0 - torch.arange(n_heads, dtype=torch.float64))))
    if kind == "none":
        return torch.zeros(n_heads, dtype=torch.float64)
    raise ValueError(f"unknown SUPRA decay {kind!r}; use 'alibi', 'retnet' or 'none'")


class LinearAttention(Mixer):
    """SUPRA's linear attention layer (open_lm ``LinearAttn``)."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        if config.is_bidirectional(layer_index):
            raise ValueError(
                f"SUPRA layers are causal, but bidirectional_layers={config.bidirectional_layers!r} makes layer "
                f"{layer_index} bidirectional; use bidirectional_layers='none' with family 'supra'"
            )
        self.n_heads, self.kv_heads, self.head_dim = config.n_heads, config.kv_heads, config.head_size
        self.rope_base = config.rope_base
        self.rope_scaling = config.rope_scaling
        self.chunk_size = config.chunk_size
        q_width, kv_width = self.n_heads * self.head_dim, self.kv_heads * self.head_dim
        self.in_proj = nn.Linear(config.d_model, q_width + 2 * kv_width, bias=False)
        self.out_proj = nn.Linear(q_width, config.d_model, bias=False)
        self._totrain_embed = nn.Linear(q_width, q_width)
        self._totrain_embed_kv = nn.Linear(kv_width, kv_width) if self.kv_heads != self.n_heads else None
        self._totrain_q_norm = build_norm(config, q_width) if config.qk_norm else None
        self._totrain_k_norm = build_norm(config, kv_width) if config.qk_norm else None
        self._totrain_gn = nn.GroupNorm(self.n_heads, q_width, eps=GROUP_NORM_EPS, affine=False)
        # A plain attribute, not a buffer: the decays are constants that must stay float32+ under .to(bf16).
        self.log_decay = -decay_rates(self.n_heads, config.decay)
        nn.init.normal_(self.in_proj.weight, std=config.init_std)
        nn.init.normal_(self.out_proj.weight, std=config.init_std / math.sqrt(2 * config.n_layers))

    def _features(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, T, D), positions (B, T) -> q, k (B, H, T, d) feature-mapped, rotated, k scaled; v (B, H, T, d)."""
        batch, length, _ = x.shape
        q_width, kv_width = self.n_heads * self.head_dim, self.kv_heads * self.head_dim
        q, k, v = self.in_proj(x).split([q_width, kv_width, kv_width], dim=-1)
        q = F.relu(self._totrain_embed(q))
        k_embed = self._totrain_embed if self._totrain_embed_kv is None else self._totrain_embed_kv
        k = F.relu(k_embed(k))
        if self._totrain_q_norm is not None:
            q, k = self._totrain_q_norm(q), self._totrain_k_norm(k)
        rope = (positions, self.rope_base, self.rope_scaling)
        q = apply_rope(q.view(batch, length, self.n_heads, self.head_dim), *rope)
        k = apply_rope(k.view(batch, length, self.kv_heads, self.head_dim), *rope)
        k = k * self.head_dim**-0.5
        v = v.view(batch, length, self.kv_heads, self.head_dim)
        groups = self.n_heads // self.kv_heads
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=2), v.repeat_interleave(groups, dim=2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def _output(self, attended: Tensor, dtype: torch.dtype) -> Tensor:
        """attended (B, H, T, d) float32 -> GroupNorm per head -> out_proj -> (B, T, D) in ``dtype``."""
        batch, _, length, _ = attended.shape
        flat = attended.transpose(1, 2).reshape(batch * length, self.n_heads * self.head_dim)
        normed = self._totrain_gn(flat).view(batch, length, -1).to(dtype)
        return self.out_proj(normed)

    def forward(self, x: Tensor, info: SequenceInfo) -> tuple[Tensor, Tensor]:
        q, k, v = self._features(x, info.position_ids)
        log_decay = self.log_decay.to(x.device)
        attended, state = decay_linear_attention(q, k, v, log_decay, info.segment_ids, self.chunk_size)
        return self._output(attended, x.dtype), state

    def step(self, x: Tensor, position: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        q, k, v = self._features(x[:, None], position[:, None])
        log_decay = self.log_decay.to(x.device)
        attended, state = decay_linear_attention_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], log_decay, state)
        return self._output(attended[:, :, None], x.dtype)[:, 0], state


register_family("supra", LinearAttention, has_mlp=True, fixed_size_state=True)
