"""Small sources and objectives shared by the data tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from birdie.objectives import NextTokenPrediction
from birdie.objectives.base import ObjectiveConfig, Skip
from birdie.tokenizers import ByteTokenizer

WORDS = "the quick brown fox jumps over a lazy dog while seven bright owls watch from an old oak tree".split()


def word_docs(split: str, worker_id: int, num_workers: int, rng_seed: int, count: int = 400):
    """A finite seeds'-contract source: documents of 5..120 words, disjoint between splits and workers."""
    offset = 0 if split == "train" else 10_000
    for index in range(worker_id, count, num_workers):
        rng = np.random.default_rng([rng_seed, offset + index])
        words = rng.choice(WORDS, size=int(rng.integers(5, 120)))
        yield {"text": f"{split} doc {index}: " + " ".join(words)}


@dataclass(frozen=True)
class AlwaysSkips(ObjectiveConfig):
    """An objective that can never use a document."""

    name: ClassVar[str] = "prefix_language_modeling"

    def __call__(self, ids, rng, budget, tokenizer):
        return Skip("never usable", ids)


@dataclass(frozen=True)
class Oversize(ObjectiveConfig):
    """An objective that breaks the budget contract."""

    name: ClassVar[str] = "copying"

    def __call__(self, ids, rng, budget, tokenizer):
        from birdie.objectives.base import Example

        return Example(prefix=np.ones(budget, dtype=np.int32), target=np.ones(3, dtype=np.int32))


@dataclass(frozen=True)
class LongPiecesOnly(ObjectiveConfig):
    """Causal LM on pieces of at least ``min_tokens`` ids (no paradigm token); shorter pieces are skipped."""

    name: ClassVar[str] = "next_token_prediction"
    min_tokens: int = 40

    def __call__(self, ids, rng, budget, tokenizer):
        from birdie.objectives.base import EMPTY, Example

        if len(ids) < self.min_tokens or budget < self.min_tokens:
            return Skip(f"needs {self.min_tokens} ids and budget", ids)
        n = min(len(ids), budget)
        return Example(prefix=EMPTY, target=ids[:n], leftover=ids[n:])


@pytest.fixture
def tokenizer():
    return ByteTokenizer()


@pytest.fixture
def two_ntp():
    """Two NTP configurations told apart by the first input of their segments (paradigm token or not)."""
    return [NextTokenPrediction(prob=0.7), NextTokenPrediction(prob=0.3, paradigm="none")]
