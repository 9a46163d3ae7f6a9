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
from birdie.objectives.spans import random_composition
from birdie.tokenizers import Tokenizer

Format = Literal["query_context", "context_query", "random"]


@dataclass(frozen=True)
class SelectiveCopying(ObjectiveConfig):
    """Find spans by their delimiters in the context and copy them.

    Attributes:
        num_spans: ``(min, max)`` spans per example (or one int); the paper's grid uses 1, 2, 3 or 4.
        span_length: ``(min, max)`` tokens per span, drawn uniformly (paper: 4-32).
        delimiter_length: ``(min, max)`` tokens per start/end delimiter (paper: 1-8); a delimiter that is not
            unique in the context is lengthened up to the max, and the span is re-placed when none is.
        format: ``"context_query"`` (query after the context), ``"query_context"`` or ``"random"`` (either, 50/50).
        length: context tokens per example (paper: (384, 768) or (768, 1536)).
        max_attempts: span placements tried before the document is skipped as too repetitive.
    """

    name: ClassVar[str] = "selective_copying"
    objective_class: ClassVar[str] = "selective_copying"
    key_fields: ClassVar[dict[str, str]] = {"num_spans": "n", "format": "", "length": "l"}
    num_spans: LengthRange = (1, 4)
    span_length: LengthRange = (4, 32)
    delimiter_length: LengthRange = (1, 8)
    format: Format = "random"
    length: LengthRange | None = (384, 768)
    max_attempts: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "num_spans", minimum=1, maximum=64)
        check_range(self, "span_length", minimum=1)
        check_range(self, "delimiter_length", minimum=1)
        check(self, "format", self.format in ("query_context", "context_query", "random"),
              "must be one of 'query_context', 'context_query', 'random'")
        check(self, "max_attempts", self.max_attempts >= 1, "must be >= 1")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator, budget: int, tokenizer: Tokenizer) -> Example | Skip:
        ids = as_ids(ids)
        spans = int(rng.integers(self.num_spans[0], self.num_spans[1] + 1))
        lengths = rng.integers(self.span_length[0], self.span_length[1] + 1, size=spans)
        min_delim, max_delim = self.delimiter_length
        # [context] ctx [copy] + per span [start] d [end] d; target: spans, (spans - 1) x [sep], [done]
        reserved = 2 + spans * (2 + 2 * max_delim) + int(lengths.sum()) + spans
        n = self.chunk_length(len(ids), budget - self.paradigm_tokens - reserved, rng)
        need = int(lengths.sum()) + (spans + 1) * min_delim
        if n < need:
            return Skip(f"needs a context of >= {need} tokens for {spans} span(s), got {n} "
                        f"(document {len(ids)}, budget {budget})", ids)
        context = ids[:n]
        found = self._place(context, lengths, rng)
        if found is None:
            return Skip(f"no {spans} span(s) with unique delimiters in {self.max_attempts} attempts "
                        "(repetitive text)", ids)
        starts, start_delims, end_delims = found
        specials = tokenizer.specials
        marker = {name: np.array([specials.marker(name)], dtype=np.int32) for name in ("start", "end", "sep")}
        query = [np.array([specials.marker("copy")], dtype=np.int32)]
        target = []
        for start, length, before, after in zip(starts, lengths, start_delims, end_delims):
            end = start + length
            query += [marker["start"], context[start - before:start], marker["end"], context[end:end + after]]
            target += [context[start:end], marker["sep"]]
        target[-1] = np.array([specials.marker("done")], dtype=np.int32)
        context_part = [np.array([specials.marker("context")], dtype=np.int32), context]
        query_first = self.format == "query_context" or (self.format == "random" and rng.random() < 0.5)
        prefix = np.concatenate(query + context_part if query_first else context_part + query)
        return Example(prefix=self.with_paradigm(prefix, rng, tokenizer), target=np.concatenate(target),
                       leftover=ids[n:])

    def _place(self, context: np.ndarray, lengths: np.ndarray, rng: np.random.Generator):
        """Span starts and start/end delimiter lengths with unique delimiters, or None after ``max_attempts``."""
        min_delim, max_delim = self.delimiter_length
        buffer = context.tobytes()
        spans = len(lengths)
        for _ in range(self.max_attempts):
            gaps = random_composition(len(context) - int(lengths.sum()), spans + 1, rng.random(spans), minimum=min_delim)
            starts = np.cumsum(gaps[:-1]) + np.cumsum(lengths) - lengths
            preferred = rng.integers(min_delim, max_delim + 1, size=(2, spans))
            start_delims, end_delims = [], []
            for start, end, want_before, want_after in zip(starts, starts + lengths, *preferred):
                before = _unique_delimiter(buffer, int(start), -1, int(want_before), min(max_delim, int(start)))
                after = _unique_delimiter(buffer, int(end), 1, int(want_after), min(max_delim, len(context) - int(end)))
                if before is None or after is None:
                    break
                start_delims.append(before)
                end_delims.append(after)
            else:
                return starts, start_delims, end_delims
        return None


def _unique_delimiter(buffer: bytes, anchor: int, direction: int, preferred: int, longest: int) -> int | None:
    """Shortest length ``>= preferred`` (up to ``longest``) whose token run next to ``anchor`` occurs only once.

    ``direction`` -1 means the run ends at ``anchor`` (a start delimiter), +1 that it begins there (an end
    delimiter). ``buffer`` holds the context as int32 bytes; matches at unaligned offsets only make the check
    stricter.
    """
    for length in range(min(preferred, longest), longest + 1):
        first = anchor - length if direction < 0 else anchor
        needle = buffer[4 * first:4 * (first + length)]
        if buffer.find(needle) == 4 * first and buffer.find(needle, 4 * first + 1) == -1:
            return length
    return None
