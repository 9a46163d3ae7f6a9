"""Hawk's recurrent block: a gated, segment-masked temporal convolution feeding the RG-LRU (Griffin §2.4).

For a pre-normed input x (B, T, D) and recurrent width W::

    gate        = GeLU(W_gate x)                                  branch 1
    u           = Conv1D(W_in x)                                  branch 2, causal, depthwise, width 4
    r, i        = sigmoid(W_a u), sigmoid(W_x u)                  block-diagonal gates (config.n_heads blocks)
    log a_t     = -8 * r_t * softplus(decay_param)                a_t = exp(log a_t) in (0, 1]
    h_t         = a_t * h_{t-1} + sqrt(1 - a_t**2) * (i_t * u_t)
    y           = W_out(gate * h)

The shell adds the gated MLP (GeGLU in the paper) after this block. Numerics follow the released RecurrentGemma
code: ``a`` and ``a**2`` come from ``log a`` (never ``sigmoid(.)**(8 r)``), the square root's gradient is bounded
by 1000, the recurrence runs in float32, and at a reset the state is dropped and the multiplier is 1
(``h_t = i_t * u_t``). The base decay ``exp(-softplus(decay_param))`` starts in [0.9, 0.999] with its square
uniform (RecurrentGemma's ``rnn_param_init``).

Packing: the convolution only reads inputs of the same segment, the forward recurrence resets at every segment
start, and in bidirectional layers the last ``W // 2`` channels run right to left over the prefix only
(:func:`birdie.models.recurrence.bidirectional_scan`), so nothing crosses a segment boundary.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdie.models.config import ModelConfig
from birdie.models.kernels.backend import accumulation_dtype
from birdie.models.mixer import Mixer, SequenceInfo
from birdie.models.recurrence import RecurrentState, bidirectional_scan, channel_resets
from birdie.models.registry import register_family

RG_LRU_C = 8.0
MAX_SQRT_GRADIENT = 1000.0
MIN_BASE_DECAY, MAX_BASE_DECAY = 0.9, 0.999


class _SqrtBoundDerivative(torch.autograd.Function):
    """sqrt(x) whose backward is bounded: d/dx = 1 / sqrt(max(4x, 1 / MAX_SQRT_GRADIENT**2))."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.sqrt()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad / torch.sqrt(torch.clamp(4.0 * x, min=1.0 / MAX_SQRT_GRADIENT**2))


def sqrt_bound_derivative(x: Tensor) -> Tensor:
    """``sqrt(x)`` with its gradient clipped at ``MAX_SQRT_GRADIENT`` (Griffin's SqrtBoundDerivative)."""
    return _SqrtBoundDerivative.apply(x)


def steps_since_segment_start(info: SequenceInfo) -> Tensor:
    """(B, T) int64: how far each position is from the start of its segment (or padding run).

    Derived from the segment ids rather than trusting ``position_ids``, so the conv mask holds for any batch.
    """
    index = torch.arange(info.segment_ids.shape[1], device=info.segment_ids.device).expand_as(info.segment_ids)
    return index - torch.where(info.segment_start, index, 0).cummax(dim=1).values


class HawkMixer(Mixer):
    """Hawk's recurrent block as a :class:`~birdie.models.mixer.Mixer`; built as ``HawkMixer(config, layer)``.

    Reads ``d_model``, ``recurrent_width`` (W), ``n_heads`` (diagonal blocks of the gates; must divide W),
    ``conv_width``, ``n_layers`` (output init scale) and ``is_bidirectional(layer_index)``.
    """

    # Griffin/Birdie §5: the RG-LRU's gates and decay parameter are never weight-decayed.
    no_weight_decay = ("gate_weight", "gate_bias", "decay_param")

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        width, heads = config.recurrent_width, config.n_heads
        if width % heads:
            raise ValueError(
                f"Hawk needs ModelConfig.n_heads={heads} to divide the recurrent width (state_dim or d_model) "
                f"{width}: the RG-LRU gates are block-diagonal with n_heads blocks"
            )
        self.width = width
        self.heads = heads
        self.conv_width = config.conv_width
        self.n_reverse = width // 2 if config.is_bidirectional(layer_index) else 0
        block = width // heads
        self.in_proj = nn.Linear(config.d_model, 2 * width)  # [branch 2 input | branch 1 gate]
        self.conv_weight = nn.Parameter(torch.empty(config.conv_width, width))  # [lag, channel]
        self.conv_bias = nn.Parameter(torch.zeros(width))
        self.gate_weight = nn.Parameter(torch.empty(2, heads, block, block))  # [a-gate | input gate] blocks
        self.gate_bias = nn.Parameter(torch.zeros(2 * width))  # 1-D like every bias (kept out of weight decay)
        self.decay_param = nn.Parameter(torch.empty(width))
        self.out_proj = nn.Linear(width, config.d_model)
        self._init_parameters(config.d_model, config.n_layers)

    def _init_parameters(self, d_model: int, n_layers: int) -> None:
        # RecurrentGemma's initialisers: variance 1/fan_in, a small conv, a 2/n_layers-scaled output.
        nn.init.normal_(self.in_proj.weight, std=d_model**-0.5)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.normal_(self.conv_weight, std=math.sqrt(0.01 / self.conv_width))
        nn.init.normal_(self.gate_weight, std=(self.width // self.heads) ** -0.5)
        nn.init.normal_(self.out_proj.weight, std=math.sqrt(2.0 / n_layers / self.width))
        nn.init.zeros_(self.out_proj.bias)
        with torch.no_grad():
            squared = torch.empty(self.width).uniform_(MIN_BASE_DECAY**2, MAX_BASE_DECAY**2)
            # softplus(p) = -log(base decay)  <=>  p = log(expm1(-log(base decay)))
            self.decay_param.copy_(torch.log(torch.expm1(-0.5 * torch.log(squared))))

    @property
    def n_forward(self) -> int:
        return self.width - self.n_reverse

    def _rg_lru_terms(self, u: Tensor, resets: Tensor) -> tuple[Tensor, Tensor]:
        """Decay a and normalised input for the conv output u (..., W) (accumulation dtype); resets (..., W) bool."""
        blocks = u.unflatten(-1, (self.heads, -1))
        gates = torch.einsum("...hi,ghij->g...hj", blocks, self.gate_weight.to(u.dtype))
        bias = self.gate_bias.to(u.dtype).view((2,) + (1,) * (u.dim() - 1) + (self.heads, -1))
        gates = torch.sigmoid(gates + bias)
        recurrence_gate, input_gate = gates.flatten(-2).unbind(0)
        log_a = -RG_LRU_C * recurrence_gate * F.softplus(self.decay_param.to(u.dtype))
        multiplier = sqrt_bound_derivative(1.0 - torch.exp(2.0 * log_a))
        multiplier = torch.where(resets, torch.ones_like(multiplier), multiplier)
        return torch.exp(log_a), u * input_gate * multiplier

    def _convolve(self, taps: list[Tensor]) -> Tensor:
        """Depthwise causal conv: ``conv_bias + sum_s conv_weight[s] * taps[s]``, taps[s] (..., W) being the input
        s positions back (already zeroed where that position lies in another segment)."""
        dtype = taps[0].dtype
        out = torch.addcmul(self.conv_bias.to(dtype), taps[0], self.conv_weight[0].to(dtype))
        for lag in range(1, self.conv_width):
            out = torch.addcmul(out, taps[lag], self.conv_weight[lag].to(dtype))
        return out

    def forward(self, x: Tensor, info: SequenceInfo) -> tuple[Tensor, RecurrentState]:
        """x: (B, T, D) -> y: (B, T, D), state after the last position of each row."""
        length = x.shape[1]
        u, gate = self.in_proj(x).to(accumulation_dtype(x)).chunk(2, dim=-1)
        lags = self.conv_width - 1
        since_start = steps_since_segment_start(info)
        # The tap s positions back is kept only when that position is in t's segment (s <= steps since its start),
        # so the conv never reaches across a boundary.
        padded = F.pad(u, (0, 0, lags, 0))
        taps = [u] + [
            padded[:, lags - lag : lags - lag + length] * (since_start >= lag).unsqueeze(-1)
            for lag in range(1, self.conv_width)
        ]
        conv = self._convolve(taps)
        a, normalised = self._rg_lru_terms(conv, channel_resets(info, self.width, self.n_reverse))
        h = bidirectional_scan(a, normalised, info, self.n_reverse)
        y = self.out_proj((F.gelu(gate, approximate="tanh") * h).to(x.dtype))
        # The decoder's conv history: the last `lags` inputs, those of the row's final segment only.
        lags_back = torch.arange(lags - 1, -1, -1, device=x.device)
        tail = padded[:, length:] * (lags_back <= since_start[:, -1:]).unsqueeze(-1)
        return y, RecurrentState(h=h[:, -1, : self.n_forward], conv=tail)

    def step(self, x: Tensor, position: Tensor, state: RecurrentState | None) -> tuple[Tensor, RecurrentState]:
        """One causal token. x: (B, D); position (B,) int64 (0 starts a fresh sequence); state from ``forward``
        or ``step`` (None = empty). Returns y (B, D) and the next state."""
        batch = x.shape[0]
        u, gate = self.in_proj(x).to(accumulation_dtype(x)).chunk(2, dim=-1)
        fresh = (position == 0).view(batch, 1)
        history = u.new_zeros(batch, self.conv_width - 1, self.width) if state is None else state.conv
        history = torch.where(fresh.unsqueeze(-1), torch.zeros_like(history), history)
        window = torch.cat((history, u.unsqueeze(1)), dim=1)
        conv = self._convolve([window[:, self.conv_width - 1 - lag] for lag in range(self.conv_width)])
        # Generated tokens are target region: the reverse channels are reset at every step.
        resets = torch.cat((fresh.expand(batch, self.n_forward), fresh.new_ones(batch, self.n_reverse)), dim=-1)
        a, normalised = self._rg_lru_terms(conv, resets)
        previous = u.new_zeros(batch, self.n_forward) if state is None else state.h
        previous = torch.where(fresh, torch.zeros_like(previous), previous)
        forward_h = a[:, : self.n_forward] * previous + normalised[:, : self.n_forward]
        h = torch.cat((forward_h, normalised[:, self.n_forward :]), dim=-1)
        y = self.out_proj((F.gelu(gate, approximate="tanh") * h).to(x.dtype))
        return y, RecurrentState(h=forward_h, conv=window[:, 1:])


register_family("hawk", HawkMixer, has_mlp=True, fixed_size_state=True)
