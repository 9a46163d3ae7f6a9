"""Infilling: T5/UL2 span corruption with dedicated sentinel tokens.

Example (spans "songs fill" and "air" masked)::

    prefix: Bird <|mask_0|> the early morning <|mask_1|>
    target: <|mask_0|> songs fill <|mask_1|> air
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.objectives.base import Example, LengthRange, Skip, as_ids
from birdie.objectives.spans import SpanCorruptionConfig, compiled_kernels, gather_shifted, layout, segments
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class Infilling(SpanCorruptionConfig):
    """Mask ``corruption_rate`` of a chunk in spans of mean length ``mean_span_length``; predict the spans.

    Each span becomes one sentinel (``<|mask_0|>``, ``<|mask_1|>``, ... in order) in the prefix; the target lists
    every sentinel followed by the tokens it replaced. A chunk of ``n`` tokens with ``k`` spans takes ``n + 2 k``
    positions. The chunk is shortened when the tokenizer has too few sentinels for its spans.

    Attributes:
        corruption_rate: fraction of the chunk's tokens that are masked, in (0, 1) (paper: 0.05, 0.15, 0.5).
        mean_span_length: mean tokens per masked span, >= 1 (paper: 3, 8, 32).
        length: source tokens per example (paper: (128, 256), (256, 512), (512, 1024) or (1024, 2048)).
    """

    name: ClassVar[str] = "infilling"
    objective_class: ClassVar[str] = "infilling"
    length: LengthRange | None = (128, 256)

    def example_cost(self, n: int, noise: int, spans: int) -> int:
        return n + 2 * spans

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        draw = self.sample_spans(ids, rng, budget, tokenizer)
        if isinstance(draw, Skip):
            return draw
        kernels = compiled_kernels()
        if kernels is not None:
            both, masked_length = kernels.span_example(ids, *draw, kernels.INFILLING)
        else:
            n, noise, spans = draw[:3]
            masked_length = n - noise + spans + self.paradigm_tokens
            chunk = layout(ids, draw)
            both = gather_shifted(chunk.source, *segments(chunk, "infilling"), n + 2 * spans + self.paradigm_tokens)
        return Example(both[:masked_length], both[masked_length:], ids[draw.n:])
