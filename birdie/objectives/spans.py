"""Random span corruption shared by infilling and autoencoding (T5's ``random_spans_noise_mask``, vectorized).

A chunk of ``n`` tokens gets exactly ``round(n * rate)`` noise tokens in ``round(noise / mean_span_length)``
non-overlapping spans, so the corruption fraction and the mean span length match the config by construction;
span lengths and the gaps between them are random compositions. Spans may start at the first token or end at the
last one; two spans are always separated by at least one kept token.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def span_counts(n: int, rate: float, mean_span_length: float, max_spans: int) -> tuple[int, int]:
    """``(noise_tokens, spans)`` for a chunk of ``n >= 2`` tokens; at least one token is kept and one masked."""
    noise = min(max(int(round(n * rate)), 1), n - 1)
    spans = int(round(noise / mean_span_length))
    return noise, min(max(spans, 1), noise, n - noise + 1, max_spans)


def largest_fitting_chunk(n: int, cost: Callable[[int], int], room: int) -> int:
    """Largest ``m <= n`` with ``cost(m) <= room`` for a cost that grows with ``m`` (a few steps, not per token)."""
    while n > 0 and cost(n) > room:
        n -= max(1, cost(n) - room)
    return n


def random_composition(total: int, parts: int, rng: np.random.Generator, minimum: int = 1) -> np.ndarray:
    """``parts`` integers ``>= minimum`` summing to ``total`` (int64)."""
    spare = total - parts * minimum
    cuts = np.sort(rng.integers(0, spare + 1, size=parts - 1))
    return np.diff(cuts, prepend=0, append=spare) + minimum


def random_spans(n: int, noise: int, spans: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Starts (increasing) and lengths of ``spans`` noise spans holding ``noise`` of ``n`` tokens."""
    lengths = random_composition(noise, spans, rng)
    # spans + 1 gaps; the inner ones keep >= 1 token, the two ends may be empty.
    gaps = random_composition(n - noise + 2, spans + 1, rng)
    gaps[0] -= 1
    starts = np.cumsum(gaps[:-1]) + np.cumsum(lengths) - lengths
    return starts, lengths


def mask_spans(chunk: np.ndarray, starts: np.ndarray, lengths: np.ndarray, sentinels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace span ``i`` of ``chunk`` by ``sentinels[i]``.

    Returns:
        ``(masked, noise_positions)``: the corrupted chunk (int32) and the positions of the masked tokens in order.
    """
    noise_positions = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
    keep = np.ones(len(chunk), dtype=bool)
    keep[noise_positions] = False
    keep[starts] = True
    tokens = chunk.copy()
    tokens[starts] = sentinels
    return tokens[keep], noise_positions


def sentinel_target(noise_tokens: np.ndarray, lengths: np.ndarray, sentinels: np.ndarray) -> np.ndarray:
    """``sentinels[0] span_0 sentinels[1] span_1 ...`` (T5 layout: each span after its sentinel), int32."""
    spans = len(lengths)
    target = np.empty(len(noise_tokens) + spans, dtype=np.int32)
    sentinel_slots = np.cumsum(lengths) - lengths + np.arange(spans)
    noise_slots = np.repeat(np.arange(1, spans + 1), lengths) + np.arange(len(noise_tokens))
    target[sentinel_slots] = sentinels
    target[noise_slots] = noise_tokens
    return target
