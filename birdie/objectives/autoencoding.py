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

from birdie.objectives.base import Example, LengthRange, Skip, as_ids
from birdie.objectives.spans import SpanCorruptionConfig, corrupted_pieces, gather_segments
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class Autoencoding(SpanCorruptionConfig):
    """Mask ``corruption_rate`` of a chunk in spans (one sentinel per span); the target is the whole chunk.

    A chunk of ``n`` tokens with ``noise`` masked tokens in ``k`` spans takes ``2 n - noise + k`` positions.

    Attributes:
        corruption_rate: fraction of the chunk's tokens that are masked, in (0, 1). The paper's grid (v1 code)
            uses 0.05, 0.15 and 0.5 (its text says 15% and 85%).
        mean_span_length: mean tokens per masked span, >= 1 (paper: 3, 8, 32).
        length: source tokens per example (paper: (192, 384), (384, 768) or (768, 1536)).
    """

    name: ClassVar[str] = "autoencoding"
    objective_class: ClassVar[str] = "autoencoding"
    #: Permute the pieces of the masked chunk (each piece starts at a sentinel); set by the +deshuffling variant.
    shuffle: ClassVar[bool] = False
    length: LengthRange | None = (192, 384)

    def example_cost(self, n: int, noise: int, spans: int) -> int:
        return 2 * n - noise + spans

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        layout = self.sample_layout(ids, rng, budget, tokenizer)
        if isinstance(layout, Skip):
            return layout
        starts, sizes = corrupted_pieces(layout.kept, layout.lengths, layout.n)
        if self.shuffle:
            starts, sizes = shuffle_pieces(starts, sizes, rng)
        masked = gather_segments(layout.source, starts, sizes)
        return Example(prefix=self.with_paradigm(masked, rng, tokenizer), target=ids[:layout.n],
                       leftover=ids[layout.n:])


@dataclass(frozen=True)
class AutoencodingWithDeshuffling(Autoencoding):
    """:class:`Autoencoding` whose input pieces are also permuted (BART text infilling + permutation).

    The masked chunk is cut before every sentinel; the non-empty pieces are put in a random order that is never the
    original one when there are two or more pieces (the paper's "shuffle the non-masked spans"). The paper groups
    both variants in one curriculum class.
    """

    name: ClassVar[str] = "autoencoding_with_deshuffling"
    shuffle: ClassVar[bool] = True


def shuffle_pieces(starts: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The non-empty pieces (rows of ``starts``/``sizes``) in a random order other than the original one.

    Only the first piece (the kept run before the first span) can be empty; every other one holds a sentinel.
    """
    if sizes[0, 1] == 0:
        starts, sizes = starts[1:], sizes[1:]
    count = len(sizes)
    if count < 2:
        return starts, sizes
    order = rng.permutation(count)
    if order[0] == 0 and not np.any(order[1:] < order[:-1]):  # the identity: every piece would stay in place
        order = np.roll(order, 1)
    return starts[order], sizes[order]
