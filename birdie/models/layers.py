"""Building blocks shared by the families: norms, the gated MLP and rotary position embeddings.

Parameter names follow open_lm (``weight`` for norms, ``w12``/``w3`` for the gated MLP) so open_lm checkpoints load
without renaming.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdie.models.config import ModelConfig


class RMSNorm(nn.Module):
    """``x * rsqrt(mean(x**2) + eps) * weight`` over the last dimension, computed in fp32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


def build_norm(config: ModelConfig, dim: int | None = None) -> nn.Module:
    """The config's norm over ``dim`` features (default ``d_model``): RMSNorm or gain-only LayerNorm."""
    width = dim or config.d_model
    if config.norm == "rmsnorm":
        return RMSNorm(width, config.norm_eps)
    return nn.LayerNorm(width, eps=config.norm_eps, bias=False)


class GatedMLP(nn.Module):
    """``w3(act(a) * b)`` with ``[a | b] = w12(x)``: SwiGLU (``silu``) or GeGLU (``gelu_tanh``), no biases.

    Shapes: (..., d_model) -> (..., d_model); hidden width ``config.mlp_width``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.hidden = config.mlp_width
        self.activation = config.mlp_activation
        self.w12 = nn.Linear(config.d_model, 2 * self.hidden, bias=False)
        self.w3 = nn.Linear(self.hidden, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.w12(x).chunk(2, dim=-1)
        act = F.silu(gate) if self.activation == "silu" else F.gelu(gate, approximate="tanh")
        return self.w3(act * up)


def rotate_half(x: Tensor) -> Tensor:
    """``[x1 | x2] -> [-x2 | x1]`` on the last dimension (the GPT-NeoX / open_lm ``rotary`` layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_frequencies(dim: int, base: float, scaling: Mapping[str, Any] | None, device: torch.device,
                     dtype: torch.dtype) -> Tensor:
    """(dim / 2,) rotary inverse frequencies ``base ** (-2i / dim)``, rescaled as ``scaling`` says.

    ``linear`` divides every frequency by ``factor``; ``llama3`` divides the low frequencies (wavelength above
    ``original_max_position_embeddings / low_freq_factor``) by ``factor``, keeps the high ones and interpolates
    in between (Llama 3.1's rule, as transformers computes it).
    """
    inv_freq = base ** (-torch.arange(0, dim, 2, device=device, dtype=dtype) / dim)
    if scaling is None:
        return inv_freq
    factor = float(scaling["factor"])
    if scaling["rope_type"] == "linear":
        return inv_freq / factor
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    context = float(scaling["original_max_position_embeddings"])
    wavelength = 2 * math.pi / inv_freq
    scaled = torch.where(wavelength > context / low, inv_freq / factor, inv_freq)
    smooth = (context / wavelength - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= context / high) & (wavelength <= context / low)
    return torch.where(medium, smoothed, scaled)


def apply_rope(x: Tensor, positions: Tensor, base: float, scaling: Mapping[str, Any] | None = None) -> Tensor:
    """Rotary position embedding in the rotate-half layout.

    Args:
        x: (B, T, H, d) with d even.
        positions: (B, T) integer positions of each token.
        base: RoPE base frequency.
        scaling: optional frequency rescaling (``ModelConfig.rope_scaling``, see :func:`rope_frequencies`).

    Returns:
        (B, T, H, d), same dtype as ``x``; angles are computed in fp32 (fp64 for fp64 inputs) from the positions
        (no cached table, so any position works and the module has no buffers).
    """
    dim = x.shape[-1]
    dtype = torch.promote_types(x.dtype, torch.float32)
    inv_freq = rope_frequencies(dim, base, scaling, x.device, dtype)
    angles = positions.to(dtype)[..., None] * inv_freq  # (B, T, d/2)
    angles = torch.cat((angles, angles), dim=-1)[:, :, None, :]  # (B, T, 1, d)
    wide = x.to(dtype)
    return (wide * angles.cos() + rotate_half(wide) * angles.sin()).to(x.dtype)
