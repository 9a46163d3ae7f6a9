"""Next-token prediction: a true causal LM (the paper's NTP, not upstream HEAD's copy task).

The prefix holds at most the paradigm token; the target is the next chunk of the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.objectives.base import EMPTY, Example, ObjectiveConfig, Skip, check
from birdie.tokenizers import Tokenizer


@dataclass(frozen=True)
class NextTokenPrediction(ObjectiveConfig):
    """Causal language modelling on the document's next ``budget`` tokens.

    Attributes:
        min_tokens: documents (or leftovers) shorter than this are skipped.
    """

    name: ClassVar[str] = "next_token_prediction"
    min_tokens: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "min_tokens", self.min_tokens >= 1, "must be >= 1")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        room = budget - self.paradigm_tokens
        if len(ids) < self.min_tokens or room < 1:
            return Skip(f"needs >= {self.min_tokens} tokens and room for 1, got {len(ids)} in budget {budget}", ids)
        target = ids[:room].astype(np.int32, copy=False)
        prefix = self.with_paradigm(EMPTY, rng, tokenizer)
        return Example(prefix=prefix, target=target, leftover=ids[room:])
