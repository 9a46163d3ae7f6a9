"""Deshuffling: restore text whose characters were partly (or wholly) permuted.

Character-level by definition, so this is the one objective that decodes and re-encodes: the chunk's ids are
decoded, a random ``shuffle_fraction`` of its characters permute among their own positions, and the shuffled text
is encoded as the prefix (special ids in the chunk, such as an appended ``<|eos|>``, keep their place). The
target is the original ids.

Shuffled text usually takes more tokens than the original (2-4x with a BPE), and the prefix and the target must fit
the budget together. A chunk that may not fit is sized from the ratio measured on a shuffled probe of its first ids;
one that still does not fit shrinks by its own measured ratio and is shuffled afresh. Every attempt costs a decode,
a shuffle and an encode with the user's tokenizer, the expensive part of this objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from birdie.checks import check
from birdie.objectives.base import Example, LengthRange, ObjectiveConfig, Skip, as_ids
from birdie.tokenizers import Tokenizer

# Shuffled text usually encodes into more tokens than the original; shrink the chunk this many times at most.
MAX_FIT_ATTEMPTS = 4
# A shrunk chunk aims this much below the length that the measured shuffled/original token ratio allows: the
# ratio varies along a document, and aiming exactly at it failed (one more decode, shuffle and encode with the
# user's tokenizer, the expensive part) about half the time.
FIT_MARGIN = 0.9
# A BPE makes ~3-4x more tokens of shuffled English than of the original (the byte tokenizer: 1x). A chunk longer
# than room / (1 + PESSIMISTIC_RATIO) may not fit, so the ratio is first measured on its first PROBE_TOKENS ids:
# a full attempt that fails wastes far more (on 512-1024-token chunks at budget 2048 every first attempt did).
PESSIMISTIC_RATIO = 4
PROBE_TOKENS = 48


@dataclass(frozen=True)
class Deshuffling(ObjectiveConfig):
    """Shuffle ``shuffle_fraction`` of a chunk's characters; predict the original tokens.

    Attributes:
        shuffle_fraction: fraction of characters that are permuted among themselves, in (0, 1]; 1.0 shuffles the
            whole sequence (the paper's grid: 0.5 or 1.0).
        length: source tokens per example (paper: (128, 256) or (512, 1024)).
        min_tokens: shorter chunks are skipped.
    """

    name: ClassVar[str] = "deshuffling"
    objective_class: ClassVar[str] = "deshuffling"
    key_fields: ClassVar[dict[str, str]] = {"shuffle_fraction": "p", "length": "l"}
    shuffle_fraction: float = 0.5
    length: LengthRange | None = (128, 256)
    min_tokens: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "shuffle_fraction", 0.0 < self.shuffle_fraction <= 1.0, "must be in (0, 1]")
        check(self, "min_tokens", self.min_tokens >= 1, "must be >= 1")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        room = budget - self.paradigm_tokens
        n = self.chunk_length(len(ids), room // 2, rng)
        if n > max(room // (1 + PESSIMISTIC_RATIO), 2 * PROBE_TOKENS):
            probe = len(shuffle_text(ids[:PROBE_TOKENS], self.shuffle_fraction, rng, tokenizer)) / PROBE_TOKENS
            if n * (1 + probe) > room:  # predicted not to fit
                n = int(FIT_MARGIN * room / (1 + probe))
        for _ in range(MAX_FIT_ATTEMPTS):
            if n < self.min_tokens:
                break
            shuffled = shuffle_text(ids[:n], self.shuffle_fraction, rng, tokenizer)
            if len(shuffled) + n <= room:
                prefix = self.with_paradigm(shuffled, rng, tokenizer)
                return Example(prefix=prefix, target=ids[:n], leftover=ids[n:])
            n = min(n - 1, int(FIT_MARGIN * room * n / (n + len(shuffled))))
        return Skip(f"needs >= {self.min_tokens} tokens whose shuffled text fits budget {budget} "
                    f"(document {len(ids)} tokens)", ids)


def shuffle_text(ids: np.ndarray, fraction: float, rng: np.random.Generator, tokenizer: Tokenizer) -> np.ndarray:
    """Re-encoded ``ids`` with their characters partly shuffled; special ids (e.g. an appended ``<|eos|>``) stay
    in place as ids and split the text into runs that are shuffled separately.

    Shuffled words are one-offs: a tokenizer's ``encode_once`` (:class:`~birdie.tokenizers.HFTokenizer` has one)
    encodes them, when it has one, without evicting ordinary words from its cache.
    """
    encode = getattr(tokenizer, "encode_once", tokenizer.encode)
    special = np.flatnonzero(tokenizer.specials.is_special(ids))
    if len(special) == 0:
        return as_ids(encode(shuffle_characters(tokenizer.decode(ids), fraction, rng)))
    pieces, start = [], 0
    for position in [*special.tolist(), len(ids)]:
        if position > start:
            text = shuffle_characters(tokenizer.decode(ids[start:position]), fraction, rng)
            pieces.append(as_ids(encode(text)))
        pieces.append(ids[position:position + 1])
        start = position + 1
    return np.concatenate(pieces)


def shuffle_characters(text: str, fraction: float, rng: np.random.Generator) -> str:
    """``text`` with ``round(fraction * len(text))`` random characters permuted among their positions."""
    chars = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).copy()
    count = int(round(fraction * len(chars)))
    if count < 2:
        return text
    positions = rng.permutation(len(chars))[:count] if count < len(chars) else np.arange(len(chars))
    chars[positions] = chars[rng.permutation(positions)]
    return chars.tobytes().decode("utf-32-le")
