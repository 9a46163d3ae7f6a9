"""The chunked scan equals the plain loop (forward and gradients), resets are exact, gradients pass gradcheck."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie.models.kernels.scan import linear_scan
from birdie.models.kernels.scan.naive import linear_scan_reference


def _inputs(batch: int, length: int, width: int, seed: int, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, length, width, generator=gen, dtype=dtype)
    x = torch.randn(batch, length, width, generator=gen, dtype=dtype)
    reset = torch.rand(batch, length, generator=gen) < 0.1
    return a, x, reset


def _value_and_grads(scan, a: torch.Tensor, x: torch.Tensor, reset, reverse: bool, weights: torch.Tensor):
    a = a.clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)
    h = scan(a, x, reset, reverse)
    (h * weights).sum().backward()
    return h.detach(), a.grad, x.grad


@pytest.mark.parametrize("reverse", [False, True])
@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    length=st.integers(1, 70),
    width=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    with_reset=st.booleans(),
)
def test_fast_scan_matches_reference_forward_and_gradients(reverse, batch, length, width, seed, with_reset):
    a, x, reset = _inputs(batch, length, width, seed)
    reset = reset if with_reset else None
    weights = torch.randn(batch, length, width, generator=torch.Generator().manual_seed(seed + 1))
    fast = _value_and_grads(linear_scan, a, x, reset, reverse, weights)
    slow = _value_and_grads(linear_scan_reference, a, x, reset, reverse, weights)
    for got, want in zip(fast, slow):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("decay", [0.0, 1.0 - 1e-6, 1.0])
def test_extreme_decays_match_reference(reverse, decay):
    _, x, reset = _inputs(2, 300, 4, seed=3)
    a = torch.full_like(x, decay)
    weights = torch.randn_like(x)
    fast = _value_and_grads(linear_scan, a, x, reset, reverse, weights)
    slow = _value_and_grads(linear_scan_reference, a, x, reset, reverse, weights)
    for got, want in zip(fast, slow):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    if decay == 0.0:
        torch.testing.assert_close(fast[0], x, rtol=0, atol=0)


@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_float64(reverse):
    a, x, reset = _inputs(2, 23, 3, seed=7, dtype=torch.float64)
    a.requires_grad_(True)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, x: linear_scan(a, x, reset, reverse), (a, x))


@pytest.mark.parametrize("reverse", [False, True])
def test_reset_blocks_all_flow_exactly(reverse):
    """Inputs on one side of a reset leave the other side bit-identical, forward and in the gradients."""
    length, cut = 50, 31
    a, x, _ = _inputs(1, length, 8, seed=11)
    a = torch.full_like(a, 1.0)  # the slowest possible decay, so any leak would be visible
    reset = torch.zeros(1, length, dtype=torch.bool)
    # Forward scans reset at the first position of the right part; reverse scans at the last of the left part.
    reset[0, cut if not reverse else cut - 1] = True
    upstream = slice(0, cut) if not reverse else slice(cut, length)
    downstream = slice(cut, length) if not reverse else slice(0, cut)
    x2 = x.clone()
    x2[:, upstream] += 100.0
    h1, h2 = linear_scan(a, x, reset, reverse), linear_scan(a, x2, reset, reverse)
    assert torch.equal(h1[:, downstream], h2[:, downstream])

    x = x.clone().requires_grad_(True)
    linear_scan(a, x, reset, reverse)[:, downstream].sum().backward()
    assert torch.count_nonzero(x.grad[:, upstream]) == 0


def test_low_precision_inputs_accumulate_in_float32():
    a, x, reset = _inputs(2, 40, 5, seed=5)
    h = linear_scan(a.bfloat16(), x.bfloat16(), reset)
    assert h.dtype == torch.float32
    torch.testing.assert_close(h, linear_scan_reference(a.bfloat16().float(), x.bfloat16().float(), reset))


def test_empty_sequence_returns_empty_state():
    a, x, _ = _inputs(2, 0, 3, seed=0)
    assert linear_scan(a, x).shape == (2, 0, 3)


def test_bad_shapes_are_rejected_with_the_shapes_named():
    a, x, reset = _inputs(2, 10, 3, seed=0)
    with pytest.raises(ValueError, match=r"equal shape .*\(2, 10, 3\).*\(2, 9, 3\)"):
        linear_scan(a, x[:, :9])
    with pytest.raises(ValueError, match=r"reset must have shape"):
        linear_scan(a, x, reset[:, :5])
