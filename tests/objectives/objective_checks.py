"""Shared helpers for the objective tests: a tiny tokenizer, paradigm stripping and structural parsers."""

from __future__ import annotations

import re

import numpy as np

from birdie.objectives import Example, ObjectiveConfig
from birdie.tokenizers import ExtendedTokenizer, Tokenizer


class Letters:
    """A 27-symbol base tokenizer: 'a'..'z' are 0..25, space is 26."""

    vocab_size = 27

    def encode(self, text: str) -> list[int]:
        return [26 if c == " " else ord(c) - ord("a") for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(" " if i == 26 else chr(ord("a") + i) for i in ids)


def tiny_tokenizer() -> Tokenizer:
    return ExtendedTokenizer(Letters())


def strip_paradigm(config: ObjectiveConfig, example: Example, tokenizer: Tokenizer) -> np.ndarray:
    """The prefix without its paradigm token, asserting the token is where ``config.paradigm`` allows."""
    prefix = example.prefix
    if config.paradigm == "none":
        assert not np.isin(prefix, [tokenizer.specials.paradigm(config.name)]).any()
        return prefix
    token = tokenizer.specials.paradigm(config.name)
    assert (prefix == token).sum() == 1, "exactly one paradigm token"
    if prefix[0] == token and config.paradigm in ("prepend", "random"):
        return prefix[1:]
    assert prefix[-1] == token and config.paradigm in ("append", "random"), "paradigm token misplaced"
    return prefix[:-1]


def split_at_sentinels(tokens: np.ndarray, sentinels: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """``(head, pieces)``: the tokens before the first sentinel and, per sentinel index, the run that follows it."""
    index_of = {int(s): i for i, s in enumerate(sentinels)}
    positions = [p for p, t in enumerate(tokens.tolist()) if t in index_of]
    head = tokens[:positions[0]] if positions else tokens
    pieces = {}
    for j, p in enumerate(positions):
        end = positions[j + 1] if j + 1 < len(positions) else len(tokens)
        sentinel = index_of[int(tokens[p])]
        assert sentinel not in pieces, "each sentinel occurs once"
        pieces[sentinel] = tokens[p + 1:end]
    return head, pieces


def fits_with_masked_spans(chunk: np.ndarray, kept_runs: list[np.ndarray]) -> bool:
    """Whether ``chunk`` equals ``run_0 X_0 run_1 X_1 ... run_k`` for some non-empty ``X_i`` (byte-sized ids)."""
    pattern = b"(?:.+?)".join(re.escape(bytes(run.astype(np.uint8))) for run in kept_runs)
    return re.fullmatch(pattern, bytes(chunk.astype(np.uint8)), flags=re.DOTALL) is not None


def occurrences(haystack: np.ndarray, needle: np.ndarray) -> list[int]:
    """Every start position of ``needle`` in ``haystack`` (naive reference search)."""
    m = len(needle)
    return [i for i in range(len(haystack) - m + 1) if np.array_equal(haystack[i:i + m], needle)]


def consumed(ids: np.ndarray, example: Example) -> int:
    """How many leading ids the example used; asserts ``leftover`` is exactly the rest."""
    used = len(ids) - len(example.leftover)
    assert np.array_equal(example.leftover, ids[used:]), "leftover must be the unconsumed tail"
    return used
