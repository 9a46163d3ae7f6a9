"""Autoencoding (BART-style): mask spans, reconstruct the whole original; optionally shuffle the unmasked spans.

Example (spans "songs fill" and "air" masked; the +deshuffling variant also permutes the pieces)::

    autoencoding                   prefix: Bird <|mask_0|> the early morning <|mask_1|>
    autoencoding_with_deshuffling  prefix: <|mask_1|><|mask_0|> the early morning Bird
    both                           target: Bird songs fill the early morning air
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.objectives.base import Example, LengthRange, ObjectiveConfig, Skip, as_ids, check
from birdie.objectives.spans import largest_fitting_chunk, mask_spans, random_spans, span_counts
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class Autoencoding(ObjectiveConfig):
    """Mask ``corruption_rate`` of a chunk in spans (one sentinel per span); the target is the whole chunk.

    A chunk of ``n`` tokens with ``noise`` masked tokens in ``k`` spans takes ``2 n - noise + k`` positions.

    Attributes:
        corruption_rate: fraction of the chunk's tokens that are masked, in (0, 1). The paper's grid (v1 code)
            uses 0.05, 0.15 and 0.5 (its text says 15% and 85%).
        mean_span_length: mean tokens per masked span (>= 1).
        length: source tokens per example (paper: (192, 384), (384, 768) or (768, 1536)).
    """

    name: ClassVar[str] = "autoencoding"
    objective_class: ClassVar[str] = "autoencoding"
    key_fields: ClassVar[dict[str, str]] = {"corruption_rate": "r", "mean_span_length": "s", "length": "l"}
    #: Permute the pieces of the masked chunk (each piece starts at a sentinel); set by the +deshuffling variant.
    shuffle: ClassVar[bool] = False
    corruption_rate: float = 0.15
    mean_span_length: float = 3.0
    length: LengthRange | None = (192, 384)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "corruption_rate", 0.0 < self.corruption_rate < 1.0, "must be in (0, 1)")
        check(self, "mean_span_length", self.mean_span_length >= 1.0, "must be >= 1")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        sentinels = tokenizer.specials.sentinels
        room = budget - self.paradigm_tokens
        most_spans = int(len(sentinels) * self.mean_span_length / self.corruption_rate)
        n = self.chunk_length(len(ids), min(room, most_spans), rng)

        def cost(m: int) -> int:
            noise, spans = span_counts(m, self.corruption_rate, self.mean_span_length, len(sentinels))
            return 2 * m - noise + spans

        n = largest_fitting_chunk(n, cost, room)
        if n < 2:
            return Skip(f"needs >= 2 tokens, got {n} (document {len(ids)}, budget {budget})", ids)
        noise, spans = span_counts(n, self.corruption_rate, self.mean_span_length, len(sentinels))
        starts, lengths = random_spans(n, noise, spans, rng)
        chunk = ids[:n]
        masked, _ = mask_spans(chunk, starts, lengths, sentinels[:spans])
        if self.shuffle:
            sentinel_positions = starts - (np.cumsum(lengths) - lengths) + np.arange(spans)
            masked = shuffle_pieces(masked, sentinel_positions, rng)
        return Example(prefix=self.with_paradigm(masked, rng, tokenizer), target=chunk, leftover=ids[n:])


@dataclass(frozen=True)
class AutoencodingWithDeshuffling(Autoencoding):
    """:class:`Autoencoding` whose input pieces are also permuted (BART text infilling + permutation).

    The masked chunk is cut before every sentinel; the non-empty pieces are put in a random order that is never the
    original one when there are two or more pieces. The paper groups both variants in one curriculum class.
    """

    name: ClassVar[str] = "autoencoding_with_deshuffling"
    shuffle: ClassVar[bool] = True


def shuffle_pieces(tokens: np.ndarray, cut_positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``tokens`` cut before each of ``cut_positions`` (increasing), pieces in a random non-identity order."""
    bounds = np.concatenate(([0], cut_positions, [len(tokens)]))
    if bounds[1] == 0:  # the chunk starts with a span: no empty first piece
        bounds = bounds[1:]
    sizes = np.diff(bounds)
    if len(sizes) < 2:
        return tokens
    order = rng.permutation(len(sizes))
    if (order == np.arange(len(sizes))).all():
        order = np.roll(order, 1)
    new_sizes = sizes[order]
    gather = np.repeat(bounds[:-1][order] - (np.cumsum(new_sizes) - new_sizes), new_sizes) + np.arange(len(tokens))
    return tokens[gather]
