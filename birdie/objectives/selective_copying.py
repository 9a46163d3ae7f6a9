"""Selective copying (new in Birdie, paper Fig. 2 and A.5): copy the spans a query points at.

The context is a chunk of the document, always whole. For each of 1-4 non-overlapping spans of 4-32 tokens the
query gives the tokens just before the span (start delimiter) and just after it (end delimiter), 1-8 tokens each;
every delimiter occurs exactly once in the context, so the query is unambiguous. The query goes before or after
the context; the target is the spans separated by ``<|sep|>``, then ``<|done|>``::

    prefix: <|context|> ABCDEF <|copy|> <|start|> BC <|end|> F        (context_query)
    target: DE <|done|>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from birdie.objectives.base import Example, LengthRange, ObjectiveConfig, Skip, as_ids, check, check_range
from birdie.objectives.spans import gather_segments
from birdie.tokenizers import SELECTIVE_COPYING_MARKERS as MARKERS, Tokenizer

Format = Literal["query_context", "context_query", "random"]


@dataclass(frozen=True)
class SelectiveCopying(ObjectiveConfig):
    """Find spans by their delimiters in the context and copy them.

    Attributes:
        num_spans: ``(min, max)`` spans per example (or one int); the paper's grid uses 1, 2, 3 or 4.
        span_length: ``(min, max)`` tokens per span, drawn uniformly (paper: 4-32).
        delimiter_length: ``(min, max)`` tokens per start/end delimiter (paper: 1-8). Spans are placed only where
            the ``max`` tokens on either side are unique in the context; a delimiter drawn shorter is lengthened
            until it is unique.
        format: ``"context_query"`` (query after the context), ``"query_context"`` or ``"random"`` (either, 50/50).
        length: context tokens per example (paper: (384, 768) or (768, 1536)).
    """

    name: ClassVar[str] = "selective_copying"
    objective_class: ClassVar[str] = "selective_copying"
    key_fields: ClassVar[dict[str, str]] = {"num_spans": "n", "format": "", "length": "l"}
    num_spans: LengthRange = (1, 4)
    span_length: LengthRange = (4, 32)
    delimiter_length: LengthRange = (1, 8)
    format: Format = "random"
    length: LengthRange | None = (384, 768)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "num_spans", minimum=1, maximum=64)
        check_range(self, "span_length", minimum=1)
        check_range(self, "delimiter_length", minimum=1)
        check(self, "format", self.format in ("query_context", "context_query", "random"),
              "must be one of 'query_context', 'context_query', 'random'")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        # Scalar draws as lo + floor(u * (hi - lo + 1)): uniform, and far cheaper than rng.integers per call.
        spans = uniform_int(self.num_spans, rng.random())
        lengths = [uniform_int(self.span_length, u) for u in rng.random(spans).tolist()]
        max_delim = self.delimiter_length[1]
        # [context] ctx [copy] + per span [start] d [end] d; target: spans, (spans - 1) x [sep], [done]
        reserved = 2 + spans * (2 + 2 * max_delim) + sum(lengths) + spans
        n = self.chunk_length(len(ids), budget - self.paradigm_tokens - reserved, rng)
        placed = self._place(ids[:n], lengths, rng)
        if placed is None:
            return Skip(f"no room for {spans} span(s) with unique delimiters in {n} tokens (short or repetitive "
                        "text)", ids)
        # One gather over segments [start, size, start, size, ...] of source = context + the six markers.
        source = np.empty(n + len(MARKERS), dtype=np.int32)
        source[:n], source[n:] = ids[:n], [tokenizer.specials.marker(m) for m in MARKERS]
        context, copy, start, end, sep, done = range(n, n + len(MARKERS))
        query, target = [copy, 1], []
        for first, length, before, after in placed:
            query += [start, 1, first - before, before, end, 1, first + length, after]
            target += [first, length, sep, 1]
        target[-2] = done
        with_context = [context, 1, 0, n]
        query_first = self.format == "query_context" or (self.format == "random" and rng.random() < 0.5)
        prefix = query + with_context if query_first else with_context + query
        segments = np.array(prefix + target, dtype=np.int64)
        both = gather_segments(source, segments[0::2], segments[1::2])
        prefix_length = sum(prefix[1::2])
        return Example(prefix=self.with_paradigm(both[:prefix_length], rng, tokenizer), target=both[prefix_length:],
                       leftover=ids[n:])

    def _place(self, context: np.ndarray, lengths: list[int], rng: np.random.Generator):
        """``[(start, length, start_delimiter_length, end_delimiter_length)]`` per span, in context order, with
        every delimiter unique in the context; None when some span has no such place left.

        Each span goes to a random start among those whose ``max_delim`` tokens before and after are unique in the
        context (found for all positions at once by hashing the windows) and whose tokens no earlier span took.
        Its delimiters are then the shortest unique runs at least as long as a uniform draw from the range.
        """
        width = self.delimiter_length[1]
        n = len(context)
        if n - 2 * width - max(lengths) + 1 < 1:
            return None
        hashes = _window_hashes(context, width)
        unique = _unique(hashes[-1])
        placed: list[tuple[int, int, int, int]] = []
        for length in lengths:
            first = _random_start(unique, width, length, placed, rng)
            if first is None:
                return None
            preferred_before, preferred_after = (uniform_int(self.delimiter_length, u) for u in rng.random(2).tolist())
            before = _shortest_unique(hashes, first, -1, preferred_before)
            after = _shortest_unique(hashes, first + length, 1, preferred_after)
            placed.append((first, length, before, after))
        return sorted(placed)


def uniform_int(bounds: tuple[int, int], uniform: float) -> int:
    """``lo + floor(uniform * (hi - lo + 1))`` for ``bounds = (lo, hi)`` and ``uniform`` in [0, 1)."""
    return bounds[0] + int(uniform * (bounds[1] - bounds[0] + 1))


def _random_start(unique: np.ndarray, width: int, length: int, placed: list[tuple[int, int, int, int]],
                  rng: np.random.Generator) -> int | None:
    """A uniformly random span start ``s`` whose ``width`` tokens before and after are unique windows
    (``unique[s - width]``, ``unique[s + length]``) and whose span overlaps none in ``placed``; None if there is none.

    A few rejection draws usually find one (in ordinary text most windows are unique and spans are sparse); an exact
    filter over every candidate follows when they do not. Both are uniform over the valid starts.
    """
    def free(first: int) -> bool:
        return all(first + length <= other or first >= other + other_length for other, other_length, _, _ in placed)

    count = len(unique) - width - length  # candidate starts are width, ..., width + count - 1
    if count < 1:
        return None
    flags = unique.tobytes()  # Python-indexable without a numpy scalar per lookup
    for uniform in rng.random(8).tolist():
        first = width + int(uniform * count)
        if flags[first - width] and flags[first + length] and free(first):
            return first
    candidates = np.flatnonzero(unique[:count] & unique[width + length:width + length + count]) + width
    for other, other_length, _, _ in placed:
        candidates = candidates[(candidates + length <= other) | (candidates >= other + other_length)]
    return int(candidates[int(rng.random() * len(candidates))]) if len(candidates) else None


def _window_hashes(context: np.ndarray, width: int) -> list[np.ndarray]:
    """``hashes[w - 1][i]``: a polynomial hash of ``context[i:i + w]`` for every ``w <= width`` (uint64).

    Equal windows hash equally; a collision between different windows only makes a window look repeated.
    """
    tokens = context.astype(np.uint64)
    hashes = [tokens]
    for offset in range(1, width):  # a loop over the window width, not over tokens
        hashes.append(hashes[-1][:-1] * np.uint64(0x9E3779B97F4A7C15) + tokens[offset:])
    return hashes


def _unique(hashes: np.ndarray) -> np.ndarray:
    """Boolean mask of the entries of ``hashes`` that occur exactly once."""
    order = np.argsort(hashes)
    same = hashes[order[1:]] == hashes[order[:-1]]
    repeated = np.zeros(len(hashes), dtype=bool)
    repeated[order[1:][same]] = True
    repeated[order[:-1][same]] = True
    return ~repeated


def _shortest_unique(hashes: list[np.ndarray], anchor: int, direction: int, preferred: int) -> int:
    """Shortest length in ``[preferred, len(hashes)]`` whose token run next to ``anchor`` occurs once (the longest
    does). ``direction`` -1: the run ends at ``anchor`` (a start delimiter); +1: it begins there (an end delimiter).
    Uniqueness only improves as a run grows (every occurrence of the longer run contains one of the shorter), so
    bisection finds it. The preferred length is tried first, as it is often unique already.
    """
    def unique(length: int) -> bool:
        windows = hashes[length - 1]
        return np.count_nonzero(windows == windows[anchor - length if direction < 0 else anchor]) == 1

    if unique(preferred):
        return preferred
    low, high = preferred + 1, len(hashes)
    while low < high:
        middle = (low + high) // 2
        if unique(middle):
            high = middle
        else:
            low = middle + 1
    return high
