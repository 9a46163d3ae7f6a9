"""Selective copying (new in Birdie, paper Fig. 2 and A.5): copy the spans a query points at.

The context is a chunk of the document, always whole. For each of 1-4 non-overlapping spans of 4-32 tokens the
query gives the tokens just before the span (start delimiter) and just after it (end delimiter), 1-8 tokens each;
every delimiter occurs exactly once in the context, so the query is unambiguous. The query goes before or after
the context; the target is the spans separated by ``<|sep|>``, then ``<|done|>``::

    prefix: <|context|> ABCDEF <|copy|> <|start|> BC <|end|> F        (context_query)
    target: DE <|done|>

With numba installed, :func:`birdie.objectives.span_kernels.selective_copy_example` places the spans and builds the
example in one compiled call from the same uniforms; the code here is the fallback and the reference it is tested
against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from birdie.checks import check, check_range
from birdie.objectives.base import Example, LengthRange, ObjectiveConfig, Skip, as_ids, special_row
from birdie.objectives.spans import compiled_kernels, gather_segments
from birdie.tokenizers import SELECTIVE_COPYING_MARKERS as MARKERS, SpecialTokens, Tokenizer

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
        # One draw serves the whole example: the span count, the chunk length, the format, the paradigm side, then
        # per possible span its length and 10 more (8 placement tries, 2 delimiter lengths).
        block = rng.random(4 + 11 * self.num_spans[1])
        uniforms = block.tolist()
        spans = uniform_int(self.num_spans, uniforms[0])
        low, high = self.span_length
        lengths = [low + int(u * (high - low + 1)) for u in uniforms[4:4 + spans]]
        max_delim = self.delimiter_length[1]
        # [context] ctx [copy] + per span [start] d [end] d; target: spans, (spans - 1) x [sep], [done]
        reserved = 2 + spans * (2 + 2 * max_delim) + sum(lengths) + spans
        n = self.draw_length(len(ids), budget - self.paradigm_tokens - reserved, uniforms[1])
        query_first = self.format == "query_context" or (self.format == "random" and uniforms[2] < 0.5)
        append = int(self.paradigm_tokens and self.appends_paradigm(uniforms[3]))
        kernels = compiled_kernels()
        if kernels is not None:
            both, prefix_length, status = kernels.selective_copy_example(
                ids, n, spans, low, high, block, 4 + self.num_spans[1], self.delimiter_length[0], max_delim,
                special_row(tokenizer.specials, self.name, _markers_row), int(query_first),
                self.paradigm_tokens - append, append)
            if status == kernels.PLACED:
                return Example(prefix=both[:prefix_length], target=both[prefix_length:], leftover=ids[n:])
            if status == kernels.NO_ROOM:
                return self._no_room(spans, n, ids)
        # The numpy path (also when the kernel's rejection draws all failed: the exact filter draws from rng).
        placed = self._place(ids[:n], lengths, uniforms[4 + self.num_spans[1]:], rng)
        if placed is None:
            return self._no_room(spans, n, ids)
        # One gather over segments of source = context + [paradigm, markers...] builds prefix and target.
        source = np.concatenate((ids[:n], special_row(tokenizer.specials, self.name, _markers_row)))
        paradigm, context, copy, start, end, sep, done = range(n, n + 1 + len(MARKERS))
        query, target = [copy, 1], []
        for first, length, before, after in placed:
            query += [start, 1, first - before, before, end, 1, first + length, after]
            target += [first, length, sep, 1]
        target[-2] = done
        with_context = [context, 1, 0, n]
        prefix = query + with_context if query_first else with_context + query
        if self.paradigm_tokens:
            prefix = prefix + [paradigm, 1] if append else [paradigm, 1] + prefix
        segments = np.array(prefix + target)
        prefix_length = sum(prefix[1::2])
        both = gather_segments(source, segments[0::2], segments[1::2], prefix_length + sum(target[1::2]))
        return Example(prefix=both[:prefix_length], target=both[prefix_length:], leftover=ids[n:])

    @staticmethod
    def _no_room(spans: int, n: int, ids: np.ndarray) -> Skip:
        return Skip(f"no room for {spans} span(s) with unique delimiters in {n} tokens (short or repetitive text)", ids)

    def _place(self, context: np.ndarray, lengths: list[int], uniforms: list[float], rng: np.random.Generator):
        """``[(start, length, start_delimiter_length, end_delimiter_length)]`` per span, in context order, with
        every delimiter unique in the context; None when some span has no such place left.

        Each span goes to a random start among those whose ``max_delim`` tokens before and after are unique in the
        context and whose tokens no earlier span took (``uniforms`` holds 10 per span: 8 placement tries, then the
        two delimiter draws). Its delimiters are then the shortest unique runs at least as long as a uniform draw
        from the range.
        """
        width = self.delimiter_length[1]
        if len(context) - 2 * width - max(lengths) + 1 < 1:
            return None
        windows = _Windows(context, width)
        low, spread = self.delimiter_length[0], width - self.delimiter_length[0] + 1
        placed: list[tuple[int, int, int, int]] = []
        for i, length in enumerate(lengths):
            first = windows.random_start(length, placed, uniforms[10 * i:10 * i + 8], rng)
            if first is None:
                return None
            before = windows.shortest_unique(first, -1, low + int(uniforms[10 * i + 8] * spread))
            after = windows.shortest_unique(first + length, 1, low + int(uniforms[10 * i + 9] * spread))
            placed.append((first, length, before, after))
        return sorted(placed)


def _markers_row(specials: SpecialTokens, name: str) -> list[int]:
    return [specials.paradigm(name)] + [specials.marker(m) for m in MARKERS]


def uniform_int(bounds: tuple[int, int], uniform: float) -> int:
    """``lo + floor(uniform * (hi - lo + 1))`` for ``bounds = (lo, hi)`` and ``uniform`` in [0, 1)."""
    return bounds[0] + int(uniform * (bounds[1] - bounds[0] + 1))


class _Windows:
    """Uniqueness of token runs in a context, by exact byte search (no per-token Python).

    The context is written as bytes with the narrowest unsigned type that holds its ids, so ``bytes.find`` scans it
    in C; a match counts only at a token boundary.
    """

    __slots__ = ("context", "width", "size", "text", "windows")

    def __init__(self, context: np.ndarray, width: int) -> None:
        top = int(context.max())
        dtype, self.size = (np.uint8, 1) if top < 1 << 8 else (np.uint16, 2) if top < 1 << 16 else (np.uint32, 4)
        self.context, self.width = context, width
        self.text = context.astype(dtype).tobytes()
        self.windows = len(context) - width + 1

    def occurs_once(self, start: int, stop: int) -> bool:
        """Whether ``context[start:stop]`` occurs nowhere else in the context."""
        size, text = self.size, self.text
        needle = text[start * size:stop * size]
        hit = text.find(needle)
        while hit != -1:  # one pass per byte-level match: itself, then misaligned ones (rare) or a repeat
            if hit % size == 0 and hit != start * size:
                return False
            hit = text.find(needle, hit + 1)
        return True

    def random_start(self, length: int, placed: list[tuple[int, int, int, int]], uniforms: list[float],
                     rng: np.random.Generator) -> int | None:
        """A uniformly random start ``s`` for a span of ``length`` tokens whose ``width`` tokens before and after
        are unique windows and which overlaps no span in ``placed``; None if there is none.

        Rejection draws from ``uniforms`` usually find one (in ordinary text most windows are unique and spans are
        sparse); an exact filter over every candidate, with :meth:`unique_all`, follows when they do not. Both are
        uniform over the valid starts.
        """
        width, once = self.width, self.occurs_once
        count = self.windows - width - length  # candidate starts are width, ..., width + count - 1
        if count < 1:
            return None
        for uniform in uniforms:
            first = width + int(uniform * count)
            for other, other_length, _, _ in placed:
                if first + length > other and first < other + other_length:
                    break
            else:
                if once(first - width, first) and once(first + length, first + length + width):
                    return first
        unique = self.unique_all()
        candidates = np.flatnonzero(unique[:count] & unique[width + length:width + length + count]) + width
        for other, other_length, _, _ in placed:
            candidates = candidates[(candidates + length <= other) | (candidates >= other + other_length)]
        return int(candidates[int(rng.random() * len(candidates))]) if len(candidates) else None

    def unique_all(self) -> np.ndarray:
        """Boolean flags: which ``width``-token windows are unique (all at once, for the exact fallback)."""
        return _unique(_window_hashes(self.context, self.width))

    def shortest_unique(self, anchor: int, direction: int, preferred: int) -> int:
        """Shortest length in ``[preferred, width]`` whose token run next to ``anchor`` occurs once, given that the
        ``width``-token run does. ``direction`` -1: the run ends at ``anchor`` (a start delimiter); +1: it begins
        there (an end delimiter). Uniqueness only improves as a run grows (every occurrence of the longer run contains
        one of the shorter), and the answer is usually the preferred length or close above it, so lengths are tried
        upwards from there (at most ``width`` tries, a loop over the delimiter range, not over tokens).
        """
        for length in range(preferred, self.width):
            first = anchor - length if direction < 0 else anchor
            if self.occurs_once(first, first + length):
                return length
        return max(preferred, self.width)


def _window_hashes(context: np.ndarray, width: int) -> np.ndarray:
    """A polynomial hash of ``context[i:i + width]`` for every ``i`` (uint64). Equal windows hash equally; a
    collision between different windows only makes a window look repeated."""
    tokens = context.astype(np.uint64)
    hashes = tokens
    for offset in range(1, width):  # a loop over the window width, not over tokens
        hashes = hashes[:-1] * np.uint64(0x9E3779B97F4A7C15) + tokens[offset:]
    return hashes


def _unique(hashes: np.ndarray) -> np.ndarray:
    """Boolean mask of the entries of ``hashes`` that occur exactly once."""
    order = np.argsort(hashes)
    same = hashes[order[1:]] == hashes[order[:-1]]
    repeated = np.zeros(len(hashes), dtype=bool)
    repeated[order[1:][same]] = True
    repeated[order[:-1][same]] = True
    return ~repeated
