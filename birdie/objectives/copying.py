"""Copying: the prefix is a chunk of text and the target repeats it verbatim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.checks import check
from birdie.objectives.base import Example, LengthRange, ObjectiveConfig, Skip, as_ids, too_short
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class Copying(ObjectiveConfig):
    """Reproduce the prefix. Both copies count against the budget (paper A.11), so a chunk takes ``2 n`` positions.

    Attributes:
        length: source tokens per example (the paper's grid: (128, 256) or (512, 1024)).
        min_tokens: shorter chunks are skipped.
    """

    name: ClassVar[str] = "copying"
    objective_class: ClassVar[str] = "copying"
    key_fields: ClassVar[dict[str, str]] = {"length": "l"}
    length: LengthRange | None = (128, 256)
    min_tokens: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "min_tokens", self.min_tokens >= 1, "must be >= 1")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        n = self.chunk_length(len(ids), (budget - self.paradigm_tokens) // 2, rng)
        if n < self.min_tokens:
            return too_short(self.min_tokens, n, ids, budget)
        chunk = ids[:n]
        return Example(prefix=self.with_paradigm(chunk, rng, tokenizer), target=chunk, leftover=ids[n:])
