"""The special-token table every birdie tokenizer carries (:class:`SpecialTokens`) and the names behind it.

Special tokens are single ids that encoding text never produces: padding, end and beginning of text, the
begin-generating token that separates an example's prefix from its target, one paradigm token per objective class,
the selective-copying markers and the sentinels for masked spans. :mod:`birdie.tokenizers` builds the table for
each kind of tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: Objective names (the paradigms), in the order their paradigm tokens are allocated.
OBJECTIVE_NAMES: tuple[str, ...] = (
    "next_token_prediction",
    "prefix_language_modeling",
    "copying",
    "deshuffling",
    "infilling",
    "autoencoding",
    "autoencoding_with_deshuffling",
    "selective_copying",
)

#: Selective-copying markers (paper Fig. 2): ``[CONTEXT] text [COPY] [START] a [END] b ... -> span [SEP] ... [DONE]``.
SELECTIVE_COPYING_MARKERS: tuple[str, ...] = ("context", "copy", "start", "end", "sep", "done")

NUM_SENTINELS = 128


def special_token_names(num_sentinels: int) -> list[str]:
    """Every special token's name, in id order: control tokens, paradigm tokens, markers, then sentinels."""
    names = ["<|pad|>", "<|eos|>", "<|bos|>", "<|begin_generating|>"]
    names += [f"<|{name}|>" for name in OBJECTIVE_NAMES]
    names += [f"<|{name}|>" for name in SELECTIVE_COPYING_MARKERS]
    names += [f"<|mask_{i}|>" for i in range(num_sentinels)]
    return names


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special tokens. Each is a single id that no text encodes to.

    Attributes:
        names: special-token strings in id order; ``ids[i]`` is the id of ``names[i]``.
        ids: the matching ids.
    """

    names: tuple[str, ...]
    ids: tuple[int, ...]
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)
    _sentinels: np.ndarray = field(init=False, repr=False, compare=False)
    _is_special_table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.ids):
            raise ValueError(f"SpecialTokens: {len(self.names)} names but {len(self.ids)} ids")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("SpecialTokens: ids must be distinct")
        object.__setattr__(self, "_by_name", dict(zip(self.names, self.ids)))
        sentinels = np.array([i for n, i in zip(self.names, self.ids) if n.startswith("<|mask_")], dtype=np.int64)
        sentinels.flags.writeable = False  # shared by every call; objectives read it on their hot path
        object.__setattr__(self, "_sentinels", sentinels)
        # Indexed by id up to the largest special id: one gather instead of np.isin's sort on the hot path.
        table = np.zeros(max(self.ids, default=0) + 1, dtype=bool)
        table[list(self.ids)] = True
        table.flags.writeable = False
        object.__setattr__(self, "_is_special_table", table)

    @classmethod
    def contiguous(cls, first_id: int, num_sentinels: int = NUM_SENTINELS,
                   names: Sequence[str] | None = None) -> "SpecialTokens":
        """The table with ids ``first_id, first_id + 1, ...``: of ``names`` (a saved tokenizer's own table, so
        its ids stay when the objective registry grows), else of the current :func:`special_token_names`."""
        names = list(names) if names is not None else special_token_names(num_sentinels)
        return cls(tuple(names), tuple(range(first_id, first_id + len(names))))

    def id(self, name: str) -> int:
        """Id of a special token given as ``"<|eos|>"`` or ``"eos"``."""
        key = name if name.startswith("<|") else f"<|{name}|>"
        try:
            return self._by_name[key]
        except KeyError:
            raise KeyError(f"unknown special token {name!r}; known: {', '.join(self.names[:20])}, ...") from None

    @property
    def pad(self) -> int:
        return self._by_name["<|pad|>"]

    @property
    def eos(self) -> int:
        return self._by_name["<|eos|>"]

    @property
    def bos(self) -> int:
        return self._by_name["<|bos|>"]

    @property
    def begin_generating(self) -> int:
        return self._by_name["<|begin_generating|>"]

    @property
    def sentinels(self) -> np.ndarray:
        """Sentinel ids for masked spans, in order (int64; ``num_sentinels`` of them, 128 by default)."""
        return self._sentinels

    def paradigm(self, objective_class: str) -> int:
        """Paradigm token of an objective class (one of :data:`OBJECTIVE_NAMES`)."""
        if objective_class not in OBJECTIVE_NAMES:
            raise KeyError(f"unknown objective class {objective_class!r}; valid: {', '.join(OBJECTIVE_NAMES)}")
        return self._by_name[f"<|{objective_class}|>"]

    def marker(self, name: str) -> int:
        """Selective-copying marker id (one of :data:`SELECTIVE_COPYING_MARKERS`)."""
        if name not in SELECTIVE_COPYING_MARKERS:
            raise KeyError(f"unknown marker {name!r}; valid: {', '.join(SELECTIVE_COPYING_MARKERS)}")
        return self._by_name[f"<|{name}|>"]

    @property
    def min_id(self) -> int:
        return min(self.ids)

    def is_special(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask of the special ids in ``ids``."""
        ids = np.asarray(ids)
        table = self._is_special_table
        inside = (ids >= 0) & (ids < len(table))
        return table[np.where(inside, ids, 0)] & inside

    def name_of(self, token_id: int) -> str | None:
        """The special-token string of ``token_id``, or None when it is not special."""
        for n, i in zip(self.names, self.ids):
            if i == token_id:
                return n
        return None
