"""Next-token prediction: a true causal LM (the paper's NTP, not upstream HEAD's copy task).

The prefix holds at most the paradigm token; the target is the next chunk of the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.checks import check
from birdie.objectives.base import EMPTY, Example, ObjectiveConfig, Skip, as_ids, too_short
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class NextTokenPrediction(ObjectiveConfig):
    """Causal language modelling on the document's next tokens (as many as fit unless ``length`` is set).

    Attributes:
        min_tokens: documents (or leftovers) shorter than this are skipped.
    """

    name: ClassVar[str] = "next_token_prediction"
    objective_class: ClassVar[str] = "next_token_prediction"
    min_tokens: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "min_tokens", self.min_tokens >= 1, "must be >= 1")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        n = self.chunk_length(len(ids), budget - self.paradigm_tokens, rng)
        if n < self.min_tokens:
            return too_short(self.min_tokens, n, ids, budget)
        prefix = self.with_paradigm(EMPTY, rng, tokenizer)
        return Example(prefix=prefix, target=ids[:n], leftover=ids[n:])
