"""Checks shared by the flash-linear-attention tests: an fla-backed op equals its plain reference (forward and
gradients) on packed inputs with resets, reverse scans and segments.

The callers choose the op and the device: ``fla_interpreted.py`` passes the private fla functions on CPU tensors
(run by the Triton interpreter), ``test_fla_paths.py`` the public dispatching functions on CUDA tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from birdie.models.decay_attention import decay_linear_attention_reference
from birdie.models.scan import linear_scan_reference

# (batch, length, width, reset pattern): widths above fla's 32-channel block exercise its channel masking.
SCAN_CASES = [
    (1, 1, 3, "none"),
    (2, 9, 5, "none"),
    (3, 17, 5, "random"),
    (2, 23, 40, "random"),
    (2, 12, 4, "edges"),
]

# segment_ids rows of one batch: several runs, an id that repeats after another run (a separate segment),
# padding (0) inside and at the end, and a one-position run.
SEGMENTS = [
    [1, 1, 1, 2, 2, 2, 2, 3, 1, 1, 0, 0, 4],
    [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5],
    [1, 0, 2, 2, 2, 2, 2, 2, 3, 3, 3, 0, 0],
]


def scan_inputs(batch: int, length: int, width: int, pattern: str, seed: int = 0) -> tuple[Tensor, Tensor, Tensor | None]:
    """Decays in [0, 1) with some exact zeros away from resets (a == 0 must drop the state exactly), inputs, and
    resets: none, random, or at both row edges (first and last position of each row)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, length, width, generator=gen)
    a[torch.rand(batch, length, width, generator=gen) < 0.05] = 0.0
    x = torch.randn(batch, length, width, generator=gen)
    if pattern == "none":
        return a, x, None
    if pattern == "random":
        return a, x, torch.rand(batch, length, generator=gen) < 0.2
    reset = torch.zeros(batch, length, dtype=torch.bool)
    reset[:, 0] = reset[:, -1] = True
    return a, x, reset


def _value_and_grads(op: Callable[..., Tensor], inputs: list[Tensor], *args: object) -> tuple[Tensor, list[Tensor]]:
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = op(*leaves, *args)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    (out * weights).sum().backward()
    return out.detach(), [leaf.grad for leaf in leaves]


def assert_scan_matches_reference(scan: Callable[..., Tensor], device: str, case: tuple, reverse: bool) -> None:
    """``scan(a, x, reset, reverse)`` on ``device`` equals :func:`linear_scan_reference` in float64 on the CPU."""
    a, x, reset = scan_inputs(*case)
    moved_reset = None if reset is None else reset.to(device)
    h, grads = _value_and_grads(scan, [a.to(device), x.to(device)], moved_reset, reverse)
    assert h.dtype == torch.float32 and h.device.type == device
    expected, expected_grads = _value_and_grads(linear_scan_reference, [a.double(), x.double()], reset, reverse)
    torch.testing.assert_close(h.cpu().double(), expected, rtol=1e-5, atol=1e-5)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad.cpu().double(), expected_grad, rtol=1e-5, atol=1e-5)


def attention_inputs(d_k: int = 8, d_v: int = 4, heads: int = 2, seed: int = 0) -> tuple[list[Tensor], Tensor, Tensor]:
    """q, k (B, H, T, d_k) and v (B, H, T, d_v) with d_k != d_v (catches swapped layouts), per-head log decays,
    and the packed ``SEGMENTS``."""
    segment_ids = torch.tensor(SEGMENTS)
    batch, length = segment_ids.shape
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(batch, heads, length, d_k, generator=gen) * 0.5 for _ in range(2))
    v = torch.randn(batch, heads, length, d_v, generator=gen)
    log_decay = torch.log(torch.linspace(0.6, 0.95, heads))
    return [q, k, v], log_decay, segment_ids


def assert_decay_attention_matches_reference(
    attend: Callable[..., tuple[Tensor, Tensor]], device: str, dtype: torch.dtype, tolerance: float
) -> None:
    """``attend(q, k, v, log_decay, segment_ids)`` on ``device`` with ``dtype`` inputs returns float32 outputs and
    final states equal to :func:`decay_linear_attention_reference` on the same values, forward and gradients."""
    qkv, log_decay, segment_ids = attention_inputs()
    qkv = [t.to(dtype) for t in qkv]

    def run(op: Callable[..., tuple[Tensor, Tensor]], moved: str) -> tuple[Tensor, Tensor, list[Tensor]]:
        leaves = [t.detach().to(moved).requires_grad_(True) for t in qkv]
        out, state = op(*leaves, log_decay.to(moved), segment_ids.to(moved))
        gen = torch.Generator().manual_seed(1)
        loss = (out * torch.randn(out.shape, generator=gen).to(out)).sum()
        (loss + (state * torch.randn(state.shape, generator=gen).to(state)).sum()).backward()
        return out.detach(), state.detach(), [leaf.grad for leaf in leaves]

    out, state, grads = run(attend, device)
    assert out.dtype == torch.float32 and state.dtype == torch.float32 and out.device.type == device
    expected_out, expected_state, expected_grads = run(decay_linear_attention_reference, "cpu")
    close = dict(rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(out.cpu(), expected_out, **close)
    torch.testing.assert_close(state.cpu(), expected_state, **close)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad.cpu().float(), expected_grad.float(), **close)
