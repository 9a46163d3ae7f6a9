"""Forward+backward time of the chunked linear scan against the plain reference loop, side by side.

    OMP_NUM_THREADS=2 .venv/bin/python bench/scan.py [--min-seconds 1]

Prints the median wall time (``torch.utils.benchmark``, at the process's thread count) of
``h = scan(a, x, reset); (h * w).sum().backward()`` for each implementation at T = 512 and 2048, the speedup,
and the largest difference between the two (outputs and gradients).
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.benchmark import Timer

from birdie.models.kernels.scan import linear_scan
from birdie.models.kernels.scan.naive import linear_scan_reference

SHAPES = [(8, 512, 256), (8, 2048, 256), (2, 512, 2560), (2, 2048, 2560)]


def fwd_bwd(scan, a: torch.Tensor, x: torch.Tensor, reset: torch.Tensor, weights: torch.Tensor):
    a = a.detach().requires_grad_(True)
    x = x.detach().requires_grad_(True)
    h = scan(a, x, reset)
    (h * weights).sum().backward()
    return h.detach(), a.grad, x.grad


def median_seconds(fn, min_seconds: float) -> float:
    timer = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_seconds).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-seconds", type=float, default=1.0, help="timing budget per implementation and shape")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, resets at ~1% of positions")
    print(f"{'B':>3} {'T':>5} {'D':>5} | {'reference ms':>12} {'chunked ms':>10} {'speedup':>7} | max |diff|")
    gen = torch.Generator().manual_seed(0)
    for batch, length, width in SHAPES:
        a = torch.rand(batch, length, width, generator=gen)
        x = torch.randn(batch, length, width, generator=gen)
        reset = torch.rand(batch, length, generator=gen) < 0.01
        weights = torch.randn(batch, length, width, generator=gen)
        slow = median_seconds(lambda: fwd_bwd(linear_scan_reference, a, x, reset, weights), args.min_seconds)
        fast = median_seconds(lambda: fwd_bwd(linear_scan, a, x, reset, weights), args.min_seconds)
        diff = max(
            (got - want).abs().max().item()
            for got, want in zip(fwd_bwd(linear_scan, a, x, reset, weights),
                                 fwd_bwd(linear_scan_reference, a, x, reset, weights))
        )
        print(f"{batch:>3} {length:>5} {width:>5} | {slow * 1e3:>12.1f} {fast * 1e3:>10.1f} {slow / fast:>6.1f}x "
              f"| {diff:.1e}")


if __name__ == "__main__":
    main()
