"""Small sources, objectives and batch checks shared by the data tests (imported by name, like
``objective_checks``: a module called ``conftest`` is ambiguous when several test directories run together)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.objectives.base import ObjectiveConfig, Skip

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


def assert_valid_batch(batch, specials):
    """Every row is a run of well-formed segments followed by padding (the contract in docs/data.md)."""
    ids, labels, mask, seg, pos = (batch[k].numpy() for k in
                                   ("input_ids", "label_ids", "attention_mask", "segment_ids", "position_ids"))
    for r in range(ids.shape[0]):
        filled = int((seg[r] > 0).sum())
        assert (seg[r, :filled] > 0).all() and (seg[r, filled:] == 0).all(), "padding only at the end"
        assert (ids[r, filled:] == specials.pad).all() and (labels[r, filled:] == -100).all()
        assert (mask[r, filled:] == 0).all() and (pos[r, filled:] == 0).all()
        assert (np.diff(seg[r, :filled]) >= 0).all() and (np.diff(seg[r, :filled]) <= 1).all()
        for k in range(1, int(seg[r].max(initial=0)) + 1):
            where = np.flatnonzero(seg[r] == k)
            n = int(mask[r, where].sum())
            assert (mask[r, where[:n]] == 1).all() and len(where) > n, "a bidirectional prefix, then a target"
            assert (pos[r, where] == np.arange(len(where))).all(), "positions restart in every segment"
            assert ids[r, where[n]] == specials.begin_generating
            assert (labels[r, where[:n]] == -100).all() and (labels[r, where[n:]] != -100).all()
            assert (labels[r, where[n:-1]] == ids[r, where[n + 1:]]).all(), "teacher forcing within the segment"
