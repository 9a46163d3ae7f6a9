"""Birdie's Gated SSM block (Birdie §3.4): an LSTM-like recurrence whose gates read only the input.

For a pre-normed input x (B, T, D) and state width N::

    [i | z | o] = W x + b                          one fused projection D -> 3N
    f = W_f x + b_f                                the forget gate's own projection D -> N
    h_t = sigmoid(f_t) * h_{t-1} + sigmoid(i_t) * z_t
    y   = W_out(GeLU(o) * h)                       N -> D

The block fuses the sequence mixer and the MLP, so the family registers with ``has_mlp=False``. The forget gate
has its own projection so that it can be kept out of weight decay, as the paper does (``no_weight_decay``). The recurrence
runs in float32 (the paper's A.11). In bidirectional layers the last ``N // 2`` state channels (their forget
gate and input ``i * z``) run right to left over the prefix only; see
:func:`birdie.models.recurrence.bidirectional_scan` for the exact packing rules.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdie.models.config import ModelConfig
from birdie.models.kernels.backend import accumulation_dtype
from birdie.models.mixer import Mixer, SequenceInfo
from birdie.models.recurrence import RecurrentState, bidirectional_scan
from birdie.models.registry import register_family


class GatedSSMMixer(Mixer):
    """The Gated SSM block as a :class:`~birdie.models.mixer.Mixer`; built as ``GatedSSMMixer(config, layer)``.

    Reads ``d_model``, ``recurrent_width`` (N), ``n_layers`` (output init scale) and
    ``is_bidirectional(layer_index)``.
    """

    no_weight_decay = ("forget_proj.weight", "forget_proj.bias")  # Birdie §5: no weight decay on W_f

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        self.width = config.recurrent_width
        self.n_reverse = self.width // 2 if config.is_bidirectional(layer_index) else 0
        self.in_proj = nn.Linear(config.d_model, 3 * self.width)  # [input gate | z | output gate]
        self.forget_proj = nn.Linear(config.d_model, self.width)
        self.out_proj = nn.Linear(self.width, config.d_model)
        # Variance 1/fan_in for the gates, a 2/n_layers-scaled output: each residual branch starts small.
        for projection in (self.in_proj, self.forget_proj):
            nn.init.normal_(projection.weight, std=config.d_model**-0.5)
            nn.init.zeros_(projection.bias)
        nn.init.normal_(self.out_proj.weight, std=math.sqrt(2.0 / config.n_layers / self.width))
        nn.init.zeros_(self.out_proj.bias)

    @property
    def n_forward(self) -> int:
        return self.width - self.n_reverse

    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Forget gate, recurrence input and output gate, each (..., N) in the accumulation dtype."""
        dtype = accumulation_dtype(x)
        input_gate, z, output_gate = self.in_proj(x).to(dtype).chunk(3, dim=-1)
        return torch.sigmoid(self.forget_proj(x).to(dtype)), torch.sigmoid(input_gate) * z, F.gelu(output_gate, approximate="tanh")

    def forward(self, x: Tensor, info: SequenceInfo) -> tuple[Tensor, RecurrentState]:
        """x: (B, T, D) -> y: (B, T, D), state after the last position of each row."""
        forget, inputs, output_gate = self._terms(x)
        h = bidirectional_scan(forget, inputs, info, self.n_reverse)
        y = self.out_proj((output_gate * h).to(x.dtype))
        return y, RecurrentState(h=h[:, -1, : self.n_forward])

    def step(self, x: Tensor, position: Tensor, state: RecurrentState | None) -> tuple[Tensor, RecurrentState]:
        """One causal token. x: (B, D); position (B,) int64 (0 starts a fresh sequence); state from ``forward``
        or ``step`` (None = empty). Returns y (B, D) and the next state."""
        forget, inputs, output_gate = self._terms(x)
        previous = inputs.new_zeros(x.shape[0], self.n_forward) if state is None else state.h
        previous = torch.where((position == 0).unsqueeze(-1), torch.zeros_like(previous), previous)
        forward_h = forget[:, : self.n_forward] * previous + inputs[:, : self.n_forward]
        # Generated tokens are target region, where the reverse channels hold just their input.
        h = torch.cat((forward_h, inputs[:, self.n_forward :]), dim=-1)
        y = self.out_proj((output_gate * h).to(x.dtype))
        return y, RecurrentState(h=forward_h)


register_family("gated_ssm", GatedSSMMixer, has_mlp=False, fixed_size_state=True)
