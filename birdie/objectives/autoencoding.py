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
from birdie.objectives.spans import (SpanCorruptionConfig, SpanLayout, compiled_kernels, gather_segments,
                                     gather_shifted, layout, segments)
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

    def extra_uniforms(self, spans: int) -> int:
        return spans + 3 if self.shuffle else 0  # the shuffle's keys

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        draw = self.sample_spans(ids, rng, budget, tokenizer)
        if isinstance(draw, Skip):
            return draw
        n = draw.n
        kernels = compiled_kernels()
        if kernels is not None:
            masked = kernels.span_example(ids, *draw, kernels.SHUFFLED if self.shuffle else kernels.MASKED)[0]
        else:
            masked = self._masked_chunk(layout(ids, draw))
        return Example(masked, ids[:n], ids[n:])

    def _masked_chunk(self, chunk: SpanLayout) -> np.ndarray:
        """The numpy path: the masked chunk (int32), its pieces shuffled when :attr:`shuffle` is set."""
        masked_length = chunk.n - chunk.noise + chunk.spans + self.paradigm_tokens
        shifts, sizes = segments(chunk, "masked")
        if not self.shuffle:
            return gather_shifted(chunk.source, shifts, sizes, masked_length)
        starts = shifts + sizes.cumsum() - sizes  # the pieces move, so their segments are located by start
        first_piece = sizes[3] > 0  # segment 3 is run_0, the kept run before the first span
        starts, sizes = shuffle_pieces(starts, sizes, first_piece, chunk.uniforms)
        return gather_segments(chunk.source, starts, sizes, masked_length)


@dataclass(frozen=True)
class AutoencodingWithDeshuffling(Autoencoding):
    """:class:`Autoencoding` whose input pieces are also permuted (BART text infilling + permutation).

    The masked chunk is cut before every sentinel; the non-empty pieces are put in a random order that is never the
    original one when there are two or more pieces (the paper's "shuffle the non-masked spans"). The paper groups
    both variants in one curriculum class.
    """

    name: ClassVar[str] = "autoencoding_with_deshuffling"
    shuffle: ClassVar[bool] = True


def shuffle_pieces(starts: np.ndarray, sizes: np.ndarray, first_piece: bool,
                   keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The masked chunk's pieces (``"masked"`` segments from :func:`~birdie.objectives.spans.segments`, as starts
    and sizes: ``k + 3`` pairs, the paradigm slots first and last) in a random order other than the original one,
    the paradigm slots staying at the ends.

    The order is the argsort of ``keys`` (``k + 3`` uniforms, overwritten): a uniform permutation of the pieces, with
    the paradigm slots pinned to the ends by keys below and above every uniform. Only the first piece (``[] run_0``)
    can be empty (``first_piece`` false); it is then pinned to its place too, so it cannot count as a move.
    """
    keys[0], keys[-1] = -2.0, 2.0
    if not first_piece:
        keys[1] = -1.0
    order = keys.argsort(kind="stable")  # stable, like the compiled kernel's, should two keys tie
    pinned = 1 if first_piece else 2
    if int(order[pinned]) == pinned and not (order[1:] < order[:-1]).any():  # the identity: every piece stays
        order[pinned:-1] = np.roll(order[pinned:-1], 1)
    return starts.reshape(-1, 2).take(order, axis=0).ravel(), sizes.reshape(-1, 2).take(order, axis=0).ravel()
