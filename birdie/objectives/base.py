"""The contract every pretraining objective follows.

An objective is a frozen config dataclass whose ``__call__`` is a pure function of its inputs::

    result = objective(ids, rng, budget, tokenizer)   # -> Example | Skip

* ``ids`` -- int32 token ids of (the rest of) one document, 1-D. Objectives work on ids; they never decode and
  re-encode (deshuffling, character-level by definition, is the one exception).
* ``rng`` -- a ``numpy.random.Generator``; all randomness comes from it, so a seed fixes the result.
* ``budget`` -- how many positions the packed segment may take: ``len(prefix) + len(target)`` must not exceed it
  (the packer lays an example out as ``prefix + [begin_generating] + target[:-1]``).
* ``tokenizer`` -- gives the special ids (``tokenizer.specials``) and, for deshuffling, ``decode``/``encode``.

An objective uses a *chunk* from the front of ``ids``: its length is drawn uniformly from the config's ``length``
range (the paper's "sequence length" control), capped by the document and by what fits in ``budget``; ``length =
None`` means "as much as fits". The result is an :class:`Example` (``prefix`` = bidirectional context, ``target`` =
what the model must produce, ``leftover`` = ``ids[chunk:]``, the ids this example did not consume, never
re-tokenized) or a :class:`Skip` when the document is too short for this objective -- never an exception for
ordinary text, never an empty example. Configs validate their fields at construction and raise ``ValueError``
naming the field and the valid range.

Each configuration has an ``objective_class`` (the curriculum groups rewards by it) and a stable, readable ``key``
such as ``infilling_r0.15_s3_l128-256`` (for per-configuration logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Literal

import numpy as np

from birdie.checks import check, check_range
from birdie.tokenizers import SpecialTokens, Tokenizer

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
LengthRange = tuple[int, int]


@dataclass(frozen=True)
class ObjectiveConfig:
    """Fields every objective shares.

    Attributes:
        prob: sampling weight of this configuration in a mixture (normalised over the mixture; > 0).
        paradigm: where the objective's paradigm token goes -- ``"prepend"`` (start of the prefix), ``"append"``
            (end of the prefix), ``"random"`` (append with probability ``paradigm_append_prob``, else prepend, as
            the paper's A.6 describes; the default) or ``"none"``.
        paradigm_append_prob: probability of appending when ``paradigm == "random"``.
        length: ``(min, max)`` source tokens per example, drawn uniformly; ``None`` = as many as fit the budget.
    """

    name: ClassVar[str] = ""
    #: The curriculum class this objective belongs to (rewards are grouped by it).
    objective_class: ClassVar[str] = ""
    #: Fields always shown in :attr:`key`, with their abbreviations (other fields appear only when not default).
    key_fields: ClassVar[dict[str, str]] = {}

    prob: float = 1.0
    paradigm: ParadigmMode = "random"
    paradigm_append_prob: float = 0.5
    length: LengthRange | None = None

    def __post_init__(self) -> None:
        check(self, "prob", isinstance(self.prob, (int, float)) and self.prob > 0 and np.isfinite(self.prob),
              "must be a finite number > 0")
        check(self, "paradigm", self.paradigm in ("prepend", "append", "random", "none"),
              "must be one of 'prepend', 'append', 'random', 'none'")
        check(self, "paradigm_append_prob", 0.0 <= self.paradigm_append_prob <= 1.0, "must be in [0, 1]")
        if self.length is not None:
            check_range(self, "length", minimum=1)

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        raise TypeError(f"{type(self).__name__} does not implement __call__")

    def params(self) -> dict[str, Any]:
        """Field values (without ``prob``), as written in a mixture entry."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "prob"}

    @property
    def key(self) -> str:
        """Stable, human-readable id of this configuration, e.g. ``infilling_r0.15_s3_l128-256``."""
        parts = [self.name]
        parts += [short + _format_value(getattr(self, name)) for name, short in self.key_fields.items()]
        parts += [
            f"{f.name}={_format_value(getattr(self, f.name))}"
            for f in fields(self)
            if f.name != "prob" and f.name not in self.key_fields and getattr(self, f.name) != f.default
        ]
        return "_".join(parts)

    def with_paradigm(self, prefix: np.ndarray, rng: np.random.Generator, tokenizer: Tokenizer) -> np.ndarray:
        """``prefix`` (int32) with this objective's paradigm token placed as ``self.paradigm`` says."""
        if self.paradigm == "none":
            return prefix.astype(np.int32, copy=False)
        append = self.appends_paradigm(rng.random() if self.paradigm == "random" else 0.0)
        # Filling a preallocated array costs a third of np.concatenate on the short prefixes this hot path sees.
        out = np.empty(len(prefix) + 1, dtype=np.int32)
        if append:
            out[:-1], out[-1] = prefix, tokenizer.specials.paradigm(self.name)
        else:
            out[0], out[1:] = tokenizer.specials.paradigm(self.name), prefix
        return out

    def appends_paradigm(self, uniform: float) -> bool:
        """Whether the paradigm token goes at the end of the prefix (else at its start), for a ``uniform`` in [0, 1)
        that decides the ``"random"`` mode. Objectives that place the token themselves call this directly."""
        return self.paradigm == "append" or (self.paradigm == "random" and uniform < self.paradigm_append_prob)

    @property
    def paradigm_tokens(self) -> int:
        """How many positions the paradigm token takes (0 or 1)."""
        return 0 if self.paradigm == "none" else 1

    def chunk_length(self, available: int, cap: int, rng: np.random.Generator) -> int:
        """Source tokens for one example: a draw from ``length`` capped by ``available`` (document) and ``cap``."""
        return self.draw_length(available, cap, rng.random() if self.length is not None else 0.0)

    def draw_length(self, available: int, cap: int, uniform: float) -> int:
        """:meth:`chunk_length` for a given ``uniform`` in [0, 1): ``lo + floor(uniform * (hi - lo + 1))``, uniform
        like ``rng.integers(lo, hi + 1)`` (objectives draw their uniforms in one block, far cheaper per call)."""
        n = min(available, cap)
        if self.length is not None:
            low, high = self.length
            n = min(n, low + int(uniform * (high - low + 1)))
        return max(n, 0)


def as_ids(ids: Any) -> np.ndarray:
    """``ids`` as a 1-D int32 array (no copy when it already is one)."""
    if type(ids) is np.ndarray and ids.dtype == np.int32 and ids.ndim == 1:
        return ids  # the pipeline's case; skips the conversion calls on the per-example hot path
    return np.asarray(ids, dtype=np.int32).reshape(-1)


_RAMP = np.arange(1 << 14)
_RAMP.flags.writeable = False


def ramp(stop: int) -> np.ndarray:
    """``np.arange(stop)`` (int64, read-only view of a shared array: cheaper than a new one per call)."""
    global _RAMP
    if stop > len(_RAMP):
        _RAMP = np.arange(max(stop, 2 * len(_RAMP)))
        _RAMP.flags.writeable = False
    return _RAMP[:stop]


_ROWS: dict[tuple[int, str], tuple[SpecialTokens, np.ndarray]] = {}


def special_row(specials: SpecialTokens, name: str, make: Callable[[SpecialTokens, str], list[int]]) -> np.ndarray:
    """The read-only int32 array ``make(specials, name)``, built once per special-token table and ``name``.

    Objectives append such a row (their paradigm token, sentinels or markers) to the chunk they gather from on every
    call; looking it up by the table's identity costs far less than rebuilding it.
    """
    hit = _ROWS.get((id(specials), name))
    if hit is None or hit[0] is not specials:  # the table holds its specials, so the id is not reused meanwhile
        row = np.array(make(specials, name), dtype=np.int32)
        row.flags.writeable = False
        hit = _ROWS[(id(specials), name)] = (specials, row)
    return hit[1]


def too_short(need: int, got: int, ids: np.ndarray, budget: int) -> Skip:
    """The :class:`Skip` for a chunk of ``got`` tokens (capped by the document ``ids`` and ``budget``) when an
    example needs at least ``need``; the whole document stays as the leftover."""
    return Skip(f"needs >= {need} tokens, got {got} (document {len(ids)}, budget {budget})", ids)


def _format_value(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, tuple):
        return str(value[0]) if value[0] == value[1] else f"{value[0]}-{value[1]}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
