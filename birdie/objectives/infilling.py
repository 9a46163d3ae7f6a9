"""Infilling: T5/UL2 span corruption with dedicated sentinel tokens.

Example (spans "songs fill" and "air" masked)::

    prefix: Bird <|mask_0|> the early morning <|mask_1|>
    target: <|mask_0|> songs fill <|mask_1|> air
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.objectives.base import Example, LengthRange, ObjectiveConfig, Skip, as_ids, check
from birdie.objectives.spans import largest_fitting_chunk, mask_spans, random_spans, sentinel_target, span_counts
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class Infilling(ObjectiveConfig):
    """Mask ``corruption_rate`` of a chunk in spans of mean length ``mean_span_length``; predict the spans.

    Each span becomes one sentinel (``<|mask_0|>``, ``<|mask_1|>``, ... in order) in the prefix; the target lists
    every sentinel followed by the tokens it replaced. A chunk of ``n`` tokens with ``k`` spans takes ``n + 2 k``
    positions. The chunk is shortened when the tokenizer has too few sentinels for its spans.

    Attributes:
        corruption_rate: fraction of the chunk's tokens that are masked, in (0, 1).
        mean_span_length: mean tokens per masked span (>= 1).
        length: source tokens per example (paper: (128, 256), (256, 512), (512, 1024) or (1024, 2048)).
    """

    name: ClassVar[str] = "infilling"
    objective_class: ClassVar[str] = "infilling"
    key_fields: ClassVar[dict[str, str]] = {"corruption_rate": "r", "mean_span_length": "s", "length": "l"}
    corruption_rate: float = 0.15
    mean_span_length: float = 3.0
    length: LengthRange | None = (128, 256)

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
        n = largest_fitting_chunk(n, lambda m: m + 2 * span_counts(m, self.corruption_rate, self.mean_span_length,
                                                                   len(sentinels))[1], room)
        if n < 2:
            return Skip(f"needs >= 2 tokens, got {n} (document {len(ids)}, budget {budget})", ids)
        noise, spans = span_counts(n, self.corruption_rate, self.mean_span_length, len(sentinels))
        starts, lengths = random_spans(n, noise, spans, rng)
        chunk = ids[:n]
        masked, noise_positions = mask_spans(chunk, starts, lengths, sentinels[:spans])
        target = sentinel_target(chunk[noise_positions], lengths, sentinels[:spans])
        return Example(prefix=self.with_paradigm(masked, rng, tokenizer), target=target, leftover=ids[n:])
