"""The reward model: a small causal Gated SSM over the history of (validation losses, action) (paper A.1.5).

Each history position ``t`` holds the row ``[losses_t, action_t]`` (2K features: the K per-configuration validation
losses measured before ``action_t`` was trained on, then the K mixture probabilities) and is trained to predict
the K per-configuration rewards observed after it. To score a candidate action the model reads the whole history
followed by the row ``[current losses, candidate]`` and takes its output at that LAST REAL position (upstream read
a zero-padded position and scored every candidate 0).

Architecture: separate RMSNorms for the loss half and the action half of the input, a linear projection to
``width``, ``num_layers`` residual Gated SSM blocks and a tanh head (rewards lie in [-1, 1]). A block computes,
from ``z = RMSNorm(x)`` and one projection ``W z_t = [d_t, i_t, o_t, u_t]``::

    a_t = sigmoid(d_t + decay_bias)                         (per-channel decay, state width = expansion * width)
    h_t = a_t * h_{t-1} + (1 - a_t) * sigmoid(i_t) * u_t    (linear recurrence)
    y_t = x_t + W_o(sigmoid(o_t) * h_t)

The module's ``forward`` (autograd; the recurrence as :func:`birdie.models.kernels.scan.linear_scan`) scores
candidates and is the reference the hand-written training path of :mod:`birdie.curriculum.reward_fit` is tested
against.

Scoring N candidates runs the history once and then one recurrent step for all candidates from the shared state,
so its cost barely grows with N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from birdie.checks import check, option
from birdie.models.kernels.scan import linear_scan

#: The epsilon of every RMSNorm of the reward model.
NORM_EPS = 1e-6


@dataclass(frozen=True)
class RewardModelConfig:
    """Reward-model size and training (paper defaults: 4 layers, width 256, 200 AdamW steps per evaluation).

    Attributes:
        width: residual width.
        num_layers: Gated SSM blocks.
        state_expansion: recurrent state width = ``state_expansion * width``.
        train_steps: AdamW steps on the whole history at every decision.
        lr, weight_decay, grad_clip: AdamW learning rate, weight decay and gradient-norm clip.
    """

    width: int = option(256, "reward model residual width (paper: 256)")
    num_layers: int = option(4, "reward model Gated SSM blocks (paper: 4)")
    state_expansion: int = option(1, "reward model recurrent state width = state_expansion * width")
    train_steps: int = option(200, "AdamW steps on the whole history at every decision (paper: 200)")
    lr: float = option(1e-3, "reward model AdamW learning rate")
    weight_decay: float = option(0.1, "reward model AdamW weight decay")
    grad_clip: float = option(1.0, "reward model gradient-norm clip")

    def __post_init__(self) -> None:
        for name in ("width", "num_layers", "state_expansion"):
            check(self, name, getattr(self, name) >= 1, "must be >= 1")
        check(self, "train_steps", self.train_steps >= 0, "must be >= 0")
        check(self, "lr", self.lr > 0, "must be > 0")
        check(self, "weight_decay", self.weight_decay >= 0, "must be >= 0")
        check(self, "grad_clip", self.grad_clip > 0, "must be > 0")


class SplitRMSNorm(nn.Module):
    """RMSNorm applied separately to the first ``split`` features (losses) and the rest (action)."""

    def __init__(self, features: int, split: int) -> None:
        super().__init__()
        self.split = split
        self.first = nn.RMSNorm(split, eps=NORM_EPS)
        self.second = nn.RMSNorm(features - split, eps=NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.first(x[..., :self.split]), self.second(x[..., self.split:])], dim=-1)


class GatedSSMBlock(nn.Module):
    """One residual Gated SSM block (see the module docstring); carries a (B, state) recurrent state."""

    def __init__(self, width: int, state_expansion: int) -> None:
        super().__init__()
        self.state = width * state_expansion
        self.norm = nn.RMSNorm(width, eps=NORM_EPS)
        self.in_proj = nn.Linear(width, 4 * self.state, bias=False)
        # nn.Linear's bias initialization, for the decay part only.
        self.decay_bias = nn.Parameter(torch.empty(self.state).uniform_(-1 / math.sqrt(width), 1 / math.sqrt(width)))
        self.out = nn.Linear(self.state, width, bias=False)

    def _gates(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        decay, gate_in, gate_out, value = self.in_proj(self.norm(x)).chunk(4, dim=-1)
        a = torch.sigmoid(decay + self.decay_bias)
        b = (1 - a) * torch.sigmoid(gate_in) * value
        return a, b, gate_out

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, width) -> (B, T, width) and the (B, state) state after the last position (zeros when T = 0)."""
        a, b, gate_out = self._gates(x)
        states = linear_scan(a, b)
        last = states[:, -1] if states.shape[1] else states.new_zeros(states.shape[0], states.shape[2])
        return x + self.out(torch.sigmoid(gate_out) * states), last

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        """One position for many rows from a shared or per-row state: x (N, width), h (1 or N, state) -> (N, width)."""
        # The same maths as forward's, in place on (N, state) rows: scoring steps thousands of candidates.
        projected = self.in_proj(self.norm(x))
        projected[:, :self.state] += self.decay_bias
        a, gate_in, gate_out = torch.sigmoid(projected[:, :3 * self.state]).chunk(3, dim=-1)
        state = torch.rsub(a, 1).mul_(gate_in).mul_(projected[:, 3 * self.state:]).addcmul_(a, h)
        return torch.addmm(x, state.mul_(gate_out), self.out.weight.T)


class RewardModel(nn.Module):
    """Causal map from history rows (B, T, 2K) to predicted per-configuration rewards (B, T, K) in [-1, 1]."""

    def __init__(self, num_configs: int, config: RewardModelConfig = RewardModelConfig()) -> None:
        super().__init__()
        self.num_configs = num_configs
        self.input_norm = SplitRMSNorm(2 * num_configs, num_configs)
        self.embed = nn.Linear(2 * num_configs, config.width, bias=False)
        self.blocks = nn.ModuleList(
            GatedSSMBlock(config.width, config.state_expansion) for _ in range(config.num_layers)
        )
        self.head_norm = nn.RMSNorm(config.width, eps=NORM_EPS)
        self.head = nn.Linear(config.width, num_configs)

    def _head(self, x: Tensor) -> Tensor:
        return torch.tanh(self.head(self.head_norm(x)))

    def forward_with_states(self, rows: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, T, 2K) rows -> (B, T, K) predictions and each block's (B, state) state after the last row."""
        x = self.embed(self.input_norm(rows))
        states = []
        for block in self.blocks:
            x, last = block(x)
            states.append(last)
        return self._head(x), states

    def forward(self, rows: Tensor) -> Tensor:
        return self.forward_with_states(rows)[0]

    @torch.inference_mode()
    def predict_next(self, history: Tensor, next_rows: Tensor) -> Tensor:
        """Predicted rewards for each of N candidate rows appended after the history.

        Args:
            history: (T, 2K) past rows (T may be 0).
            next_rows: (N, 2K) rows ``[current losses, candidate action]``.
        Returns:
            (N, K): the model output at position T (the last real position) of ``history + [row]`` for every row.
        """
        _, states = self.forward_with_states(history[None])
        x = self.embed(self.input_norm(next_rows))
        for block, h in zip(self.blocks, states):
            x = block.step(x, h)
        return self._head(x)
