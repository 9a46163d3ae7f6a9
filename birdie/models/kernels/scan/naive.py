"""The scan's contract and its oracle: :func:`linear_scan_reference`, a plain loop over time steps."""

from __future__ import annotations

import torch
from torch import Tensor

from birdie.models.kernels.backend import accumulation_dtype


def check_scan_inputs(a: Tensor, x: Tensor, reset: Tensor | None) -> None:
    """Raise ValueError unless a and x are (B, T, D) of equal shape and ``reset`` (when given) is (B, T)."""
    if a.dim() != 3 or a.shape != x.shape:
        raise ValueError(
            f"linear_scan expects a and x of equal shape (batch, time, channels); got a {tuple(a.shape)} "
            f"and x {tuple(x.shape)}"
        )
    if reset is not None and reset.shape != a.shape[:2]:
        raise ValueError(
            f"linear_scan reset must have shape (batch, time) = {tuple(a.shape[:2])}; got {tuple(reset.shape)}"
        )


def linear_scan_reference(a: Tensor, x: Tensor, reset: Tensor | None = None, reverse: bool = False) -> Tensor:
    """The same contract as :func:`birdie.models.kernels.scan.linear_scan`, as a plain loop over time steps (the
    test oracle). a, x: (B, T, D), reset: optional (B, T) bool -> h: (B, T, D) in the accumulation dtype."""
    check_scan_inputs(a, x, reset)
    dtype = accumulation_dtype(a, x)
    a, x = a.to(dtype), x.to(dtype)
    if x.shape[1] == 0:
        return x.clone()
    decays, inputs = a.unbind(1), x.unbind(1)
    resets = reset.unbind(1) if reset is not None else None
    order = range(len(inputs) - 1, -1, -1) if reverse else range(len(inputs))
    state = torch.zeros_like(inputs[0])
    outputs: dict[int, Tensor] = {}
    for t in order:
        decay = decays[t] if resets is None else torch.where(resets[t].unsqueeze(-1), 0.0, decays[t])
        state = decay * state + inputs[t]
        outputs[t] = state
    return torch.stack([outputs[t] for t in range(len(inputs))], dim=1)
