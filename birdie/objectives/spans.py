"""Random span corruption shared by infilling and autoencoding (T5's ``random_spans_noise_mask``, vectorized).

A chunk of ``n`` tokens gets exactly ``round(n * rate)`` noise tokens in ``round(noise / mean_span_length)``
non-overlapping spans, so the corruption fraction and the mean span length match the config by construction;
span lengths and the kept runs between them are random compositions. Spans may start at the first token or end
at the last one; two spans are always separated by at least one kept token.

Outputs are assembled with one gather over *segments* of ``source = concat(chunk, sentinels)``: a segment is a
``(start, size)`` run of ``source``, so a sentinel is the segment ``(n + i, 1)``. Building examples this way costs a
fixed handful of numpy calls per example, whatever its length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from birdie.objectives.base import ObjectiveConfig, Skip, check, too_short
from birdie.tokenizers import Tokenizer


def span_counts(n: int, rate: float, mean_span_length: float, max_spans: int) -> tuple[int, int]:
    """``(noise_tokens, spans)`` for a chunk of ``n >= 2`` tokens; at least one token is kept and one masked."""
    noise = min(max(int(round(n * rate)), 1), n - 1)
    spans = int(round(noise / mean_span_length))
    return noise, min(max(spans, 1), noise, n - noise + 1, max_spans)


def random_composition(total: int, parts: int, uniforms: np.ndarray, minimum: int = 1) -> np.ndarray:
    """``parts`` integers ``>= minimum`` summing to ``total`` (int64), from ``parts - 1`` uniforms in [0, 1)."""
    spare = total - parts * minimum
    bounds = np.empty(parts + 1, dtype=np.int64)
    bounds[0], bounds[-1] = 0, spare
    bounds[1:-1] = uniforms * (spare + 1)
    bounds[1:-1].sort()
    return bounds[1:] - bounds[:-1] + minimum


def random_spans(n: int, noise: int, spans: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random layout of ``spans`` noise spans holding ``noise`` of ``n`` tokens.

    Returns:
        ``(kept, lengths)``: ``kept[i]`` tokens precede span ``i`` (after span ``i - 1``), ``kept[-1]`` follow the
        last span (shape ``spans + 1``; the two ends may be 0, the inner ones are >= 1); ``lengths[i] >= 1`` is the
        size of span ``i`` (shape ``spans``).
    """
    uniforms = rng.random(2 * spans - 1)
    lengths = random_composition(noise, spans, uniforms[:spans - 1])
    kept = random_composition(n - noise + 2, spans + 1, uniforms[spans - 1:])
    kept[0] -= 1
    kept[-1] -= 1
    return kept, lengths


def corrupted_pieces(kept: np.ndarray, lengths: np.ndarray, n: int, with_target: bool = False):
    """Segments of the corrupted chunk (each span replaced by its sentinel), one row per piece.

    Row 0 is the kept run before the first span (after an empty placeholder segment); row ``i`` is sentinel
    ``i - 1`` followed by the kept run after span ``i - 1``. With ``with_target`` the T5 target
    ``sentinel_0 span_0 sentinel_1 span_1 ...`` follows as ``spans`` more rows, so one gather builds both.

    Returns:
        ``(starts, sizes)``, each of shape ``(spans + 1, 2)`` (``(2 spans + 1, 2)`` with the target).
    """
    spans = len(lengths)
    rows = 2 * spans + 1 if with_target else spans + 1
    starts = np.empty((rows, 2), dtype=np.int64)
    sizes = np.empty((rows, 2), dtype=np.int64)
    sentinel_ids = np.arange(n, n + spans)
    span_ends = (kept[:-1] + lengths).cumsum()
    starts[0] = 0
    sizes[:, 0] = 1
    sizes[0, 0] = 0
    starts[1:spans + 1, 0] = sentinel_ids
    starts[1:spans + 1, 1] = span_ends
    sizes[:spans + 1, 1] = kept
    if with_target:
        starts[spans + 1:, 0] = sentinel_ids
        starts[spans + 1:, 1] = span_ends - lengths
        sizes[spans + 1:, 1] = lengths
    return starts, sizes


def gather_segments(source: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``source[s:s + z]`` over the segments ``(s, z)`` (any shape, read in C order)."""
    starts, sizes = starts.reshape(-1), sizes.reshape(-1)
    ends = sizes.cumsum()
    return source[(starts - ends + sizes).repeat(sizes) + np.arange(ends[-1])]


@dataclass(frozen=True)
class SpanCorruptionConfig(ObjectiveConfig):
    """Fields and chunk sizing shared by the span-corrupting objectives (infilling, autoencoding).

    Attributes:
        corruption_rate: fraction of the chunk's tokens that are masked, in (0, 1).
        mean_span_length: mean tokens per masked span (>= 1).
    """

    key_fields: ClassVar[dict[str, str]] = {"corruption_rate": "r", "mean_span_length": "s", "length": "l"}
    corruption_rate: float = 0.15
    mean_span_length: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "corruption_rate", 0.0 < self.corruption_rate < 1.0, "must be in (0, 1)")
        check(self, "mean_span_length", self.mean_span_length >= 1.0, "must be >= 1")

    def example_cost(self, n: int, noise: int, spans: int) -> int:
        """Positions (prefix + target, without the paradigm token) an example from an ``n``-token chunk takes."""
        raise TypeError(f"{type(self).__name__} does not define example_cost")

    def sample_layout(self, ids: np.ndarray, rng: np.random.Generator, budget: int,
                      tokenizer: Tokenizer) -> "SpanLayout | Skip":
        """The chunk and its random spans for the next example, or a Skip when ``ids`` cannot serve one.

        The chunk is drawn from ``length``, then shortened until the example fits ``budget`` and its spans fit
        the tokenizer's sentinels (so the mean span length is kept rather than stretched).
        """
        sentinels = tokenizer.specials.sentinels
        room = budget - self.paradigm_tokens
        most = int(len(sentinels) * self.mean_span_length / self.corruption_rate)
        n = self.chunk_length(len(ids), min(room, most), rng)
        noise, spans = span_counts(n, self.corruption_rate, self.mean_span_length, len(sentinels))
        # Shorten by the excess until it fits: the cost grows by >= 1 per token, so this takes a few steps.
        while n >= 2 and (excess := self.example_cost(n, noise, spans) - room) > 0:
            n -= excess
            noise, spans = span_counts(n, self.corruption_rate, self.mean_span_length, len(sentinels))
        if n < 2:
            return too_short(2, n, ids, budget)
        kept, lengths = random_spans(n, noise, spans, rng)
        source = np.empty(n + spans, dtype=np.int32)
        source[:n], source[n:] = ids[:n], sentinels[:spans]
        return SpanLayout(n, noise, kept, lengths, source)


class SpanLayout(NamedTuple):
    """A chunk's span corruption: ``source = concat(chunk, sentinels[:spans])`` and the layout of its spans.

    Attributes:
        n: chunk length. noise: masked tokens. kept, lengths: as returned by :func:`random_spans`.
    """

    n: int
    noise: int
    kept: np.ndarray
    lengths: np.ndarray
    source: np.ndarray
