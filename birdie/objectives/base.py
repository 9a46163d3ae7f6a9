"""The contract every pretraining objective follows.

An objective is a frozen config dataclass whose ``__call__`` is a pure function of its inputs::

    result = objective(ids, rng, budget, tokenizer)   # -> Example | Skip

* ``ids`` -- int32 token ids of (the rest of) one document, 1-D. Objectives work on ids; they never decode and
  re-encode (deshuffling, character-level by definition, is the one exception).
* ``rng`` -- a ``numpy.random.Generator``; all randomness comes from it, so a seed fixes the result.
* ``budget`` -- how many positions the packed segment may take: ``len(prefix) + len(target)`` must not exceed it
  (the packer lays an example out as ``prefix + [begin_generating] + target[:-1]``).
* ``tokenizer`` -- gives the special ids (``tokenizer.specials``) and, for deshuffling, ``decode``/``encode``.

The result is an :class:`Example` (``prefix`` = bidirectional context, ``target`` = what the model must produce,
``leftover`` = the ids of the document this example did not consume, for the next segment) or a :class:`Skip`
when the document is too short for this objective -- never an exception for ordinary text, never an empty example.
Configs validate their fields at construction and raise ``ValueError`` naming the field and the valid range.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import numpy as np

from birdie.tokenizers import Tokenizer

EMPTY = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class Example:
    """One training example made from (part of) a document.

    Attributes:
        prefix: int32 ids of the bidirectional context; may be empty (pure causal LM).
        target: int32 ids the model learns to generate; never empty.
        leftover: int32 ids of the document that this example did not use; empty when it used all of it.
    """

    prefix: np.ndarray
    target: np.ndarray
    leftover: np.ndarray = field(default_factory=lambda: EMPTY)

    def __post_init__(self) -> None:
        if len(self.target) == 0:
            raise ValueError("Example.target must not be empty")

    @property
    def length(self) -> int:
        """Positions the packed segment takes: ``len(prefix) + len(target)``."""
        return len(self.prefix) + len(self.target)


@dataclass(frozen=True)
class Skip:
    """An objective could not use this document (e.g. too short); the pipeline counts it and moves on.

    Attributes:
        reason: short human-readable cause, e.g. ``"needs >= 8 tokens, got 3"``.
        leftover: ids the pipeline may still use for another segment (usually the whole input).
    """

    reason: str
    leftover: np.ndarray = field(default_factory=lambda: EMPTY)


ParadigmMode = Literal["prepend", "append", "random", "none"]


@dataclass(frozen=True)
class ObjectiveConfig:
    """Fields every objective shares.

    Attributes:
        prob: sampling weight of this configuration in a mixture (normalised over the mixture; > 0).
        paradigm: where the objective's paradigm token goes -- ``"prepend"`` (start of the prefix), ``"append"``
            (end of the prefix), ``"random"`` (append with probability ``paradigm_append_prob``, else prepend, as
            the paper describes) or ``"none"``.
        paradigm_append_prob: probability of appending when ``paradigm == "random"``.
    """

    name: ClassVar[str] = ""
    prob: float = 1.0
    paradigm: ParadigmMode = "prepend"
    paradigm_append_prob: float = 0.5

    def __post_init__(self) -> None:
        check(self, "prob", self.prob > 0 and np.isfinite(self.prob), "must be a finite number > 0")
        check(self, "paradigm", self.paradigm in ("prepend", "append", "random", "none"),
              "must be one of 'prepend', 'append', 'random', 'none'")
        check(self, "paradigm_append_prob", 0.0 <= self.paradigm_append_prob <= 1.0, "must be in [0, 1]")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        raise TypeError(f"{type(self).__name__} does not implement __call__")

    def params(self) -> dict[str, Any]:
        """Field values (without ``prob``), as written in a mixture entry."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "prob"}

    def with_paradigm(self, prefix: np.ndarray, rng: np.random.Generator, tokenizer: Tokenizer) -> np.ndarray:
        """``prefix`` with this objective's paradigm token placed as ``self.paradigm`` says."""
        if self.paradigm == "none":
            return prefix.astype(np.int32, copy=False)
        token = np.array([tokenizer.specials.paradigm(self.name)], dtype=np.int32)
        append = self.paradigm == "append" or (
            self.paradigm == "random" and rng.random() < self.paradigm_append_prob
        )
        return np.concatenate([prefix, token] if append else [token, prefix]).astype(np.int32, copy=False)

    @property
    def paradigm_tokens(self) -> int:
        """How many positions the paradigm token takes (0 or 1)."""
        return 0 if self.paradigm == "none" else 1


def check(config: object, field_name: str, ok: bool, requirement: str) -> None:
    """Raise a ValueError naming the config class, the field, its value and the requirement when ``ok`` is false."""
    if not ok:
        value = getattr(config, field_name, None)
        raise ValueError(f"{type(config).__name__}.{field_name}={value!r} {requirement}")
