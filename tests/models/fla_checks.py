"""Checks shared by the flash-linear-attention tests: an fla-backed op equals its plain reference (forward and
gradients) on packed inputs with resets, reverse scans and segments.

The callers choose the op and the device: ``fla_interpreted.py`` passes the private fla functions on CPU tensors
(run by the Triton interpreter), ``test_fla_paths.py`` the public dispatching functions on CUDA tensors. The
model check runs a whole tiny model both ways, so the dispatch inside the families is covered too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor

import family_checks
from birdie.models.kernels.decay_attention.naive import decay_linear_attention_reference
from birdie.models.kernels.scan.naive import linear_scan_reference

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


def scan_inputs(
    batch: int, length: int, width: int, pattern: str, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor | None]:
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


# The recurrent families' tiny presets, with bidirectional layers where the family has them (SUPRA is causal).
MODEL_CASES = [("hawk", "alternate"), ("gated_ssm", "alternate"), ("supra", "none")]


def _packed_rows(vocab_size: int) -> dict[str, Tensor]:
    """Two packed rows with prefixes, a one-token segment and padding, in the pipeline's batch format."""
    rows = [
        family_checks.pack(family_checks.random_examples(vocab_size, [13, 7, 21, 1], [5, 0, 9, 1], seed=1), 48),
        family_checks.pack(family_checks.random_examples(vocab_size, [30, 18], [12, 0], seed=2), 48),
    ]
    return {key: torch.cat([row[key] for row in rows]) for key in rows[0]}


def _logits_and_grads(model: torch.nn.Module, batch: dict[str, Tensor], device: str) -> tuple[Tensor, dict]:
    model.zero_grad()
    logits, _ = model(**{key: value.to(device) for key, value in batch.items()})
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(3)).to(logits)
    (logits * weights * (batch["segment_ids"] > 0).to(logits)[..., None]).sum().backward()
    grads = {name: p.grad.cpu() for name, p in model.named_parameters() if p.grad is not None}
    return logits.detach().cpu(), grads


def assert_model_matches_chunked(
    family: str, bidirectional_layers: str, device: str, fast: contextlib.AbstractContextManager, tolerance: float
) -> None:
    """A tiny model's logits and parameter gradients on packed rows are the same on ``device`` inside ``fast`` (the
    fla paths) as on the CPU's chunked forms."""
    model = family_checks.tiny_model(family, bidirectional_layers=bidirectional_layers)
    batch = _packed_rows(model.config.vocab_size)
    expected_logits, expected_grads = _logits_and_grads(model, batch, "cpu")
    with fast:
        logits, grads = _logits_and_grads(model.to(device), batch, device)
    torch.testing.assert_close(logits, expected_logits, rtol=tolerance, atol=tolerance)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        scale = max(1.0, expected_grads[name].abs().max().item())
        torch.testing.assert_close(grad, expected_grads[name], rtol=tolerance, atol=tolerance * scale, msg=name)
