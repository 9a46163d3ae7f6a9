"""Prefix language modelling (UL2's S-denoiser): bidirectional prefix, loss on the suffix only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.checks import check
from birdie.objectives.base import Example, ObjectiveConfig, Skip, as_ids, too_short
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class PrefixLanguageModeling(ObjectiveConfig):
    """Split a chunk at a random point around ``prefix_fraction``; the prefix is context, the suffix the target.

    The split is uniform in ``n * [f - d, f + d]`` with ``d = min(f, 1 - f)`` (the paper's v1 rule: for the
    default ``f = 0.75`` that is ``[0.5 n, n]``), clamped so the prefix and suffix keep their minimum lengths.

    Attributes:
        prefix_fraction: mean fraction of the chunk that becomes the prefix, in (0, 1).
        min_prefix_length: smallest prefix (tokens, >= 1).
        min_suffix_length: smallest target (tokens, >= 1).
    """

    name: ClassVar[str] = "prefix_language_modeling"
    objective_class: ClassVar[str] = "prefix_language_modeling"
    key_fields: ClassVar[dict[str, str]] = {"prefix_fraction": "f"}
    prefix_fraction: float = 0.75
    min_prefix_length: int = 4
    min_suffix_length: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "prefix_fraction", 0.0 < self.prefix_fraction < 1.0, "must be in (0, 1)")
        check(self, "min_prefix_length", self.min_prefix_length >= 1, "must be >= 1")
        check(self, "min_suffix_length", self.min_suffix_length >= 1, "must be >= 1")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        n = self.chunk_length(len(ids), budget - self.paradigm_tokens, rng)
        need = self.min_prefix_length + self.min_suffix_length
        if n < need:
            return too_short(need, n, ids, budget)
        spread = min(self.prefix_fraction, 1.0 - self.prefix_fraction)
        split = int(n * rng.uniform(self.prefix_fraction - spread, self.prefix_fraction + spread))
        split = min(max(split, self.min_prefix_length), n - self.min_suffix_length)
        prefix = self.with_paradigm(ids[:split], rng, tokenizer)
        return Example(prefix=prefix, target=ids[split:n], leftover=ids[n:])
