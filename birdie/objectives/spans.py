"""Random span corruption shared by infilling and autoencoding (T5's ``random_spans_noise_mask``, vectorized).

A chunk of ``n`` tokens gets exactly ``round(n * rate)`` noise tokens in ``round(noise / mean_span_length)``
non-overlapping spans, so the corruption fraction and the mean span length match the config by construction;
span lengths and the kept runs between them are random compositions (gaps between sorted uniform cut points).
Spans may start at the first token or end at the last one; two spans are always separated by a kept token.

An example costs a fixed ~20 small numpy calls whatever its length and span count (a numpy call costs about a
microsecond, so their number, not the tokens, bounds the throughput of short chunks):

1. the two compositions' cut points, sorted in place between their bounds, with a few constants: the vector ``X``
   of :class:`SpanLayout`;
2. every output *segment* -- a ``(start, size)`` run of ``source = chunk + [paradigm, sentinel_0, sentinel_1, ...]``
   -- has a shift (start minus output offset) and a size that are ``X[a] - X[b] - X[c]`` for indices that depend
   only on the span count, so one cached index table turns ``X`` into all segments with one gather;
3. one ``repeat`` expands the segments into positions of ``source`` and one gather builds the example.

With numba installed, :mod:`birdie.objectives.span_kernels` builds the same example from the same uniforms in one
compiled call (:func:`compiled_kernels`); the steps above are the fallback and the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import ClassVar, Literal, NamedTuple

import numpy as np

from birdie.checks import check
from birdie.lazy import numba_disabled
from birdie.objectives.base import ObjectiveConfig, Skip, ramp, special_row, too_short
from birdie.tokenizers import SpecialTokens, Tokenizer

Output = Literal["infilling", "masked"]


@lru_cache(maxsize=1 << 16)
def span_counts(n: int, rate: float, mean_span_length: float, max_spans: int) -> tuple[int, int]:
    """``(noise_tokens, spans)`` for a chunk of ``n >= 2`` tokens; at least one token is kept and one masked."""
    noise = min(max(round(n * rate), 1), n - 1)
    spans = max(round(noise / mean_span_length), 1)
    return noise, min(spans, noise, n - noise + 1, max_spans)


class SpanLayout(NamedTuple):
    """A chunk's random spans, as the vector ``X`` that :func:`segments` reads (see the module docstring).

    ``X`` is ``[0, 1, ..., k | A_0..A_k, A_k | B_0..B_{k+1} | constants]`` for ``k`` spans, where ``A`` and ``B`` are
    the sorted cut points of the two compositions with their bounds (``A_k`` twice, so both sort as rows of one
    array): span ``i`` holds ``A_{i+1} - A_i + 1`` tokens
    (``A_0 = 0``, ``A_k = noise - k``) and the kept run before span ``i`` holds ``B_{i+1} - B_i + 1`` tokens, one less
    for the first and the last run (``B_0 = 0``, ``B_{k+1} = n - noise - k + 1``). The constants
    (:data:`CONSTANTS`) depend on ``n`` and on the paradigm slots ``P``/``Q`` (1 when the paradigm token goes
    before/after the masked chunk, whose length with it is ``PL``).

    Attributes:
        n: chunk length. noise: masked tokens. spans: span count ``k``.
        x: the vector above (int64). source: ``chunk + [paradigm, sentinel_0, ...]`` (int32).
        uniforms: the block's uniforms the layout did not use (for the objective's own draws).
    """

    n: int
    noise: int
    spans: int
    x: np.ndarray
    source: np.ndarray
    uniforms: np.ndarray


#: Names of the constants at the end of ``X``.
CONSTANTS = ("0", "-1", "n", "P", "Q", "n+1-P", "n+1-PL", "PL+1")


def random_layout(n: int, noise: int, spans: int, uniforms: np.ndarray, paradigm: tuple[int, int]) -> np.ndarray:
    """The vector ``X`` of :class:`SpanLayout` from ``2 spans`` uniforms (``uniforms[spans - 1]`` is not used) and
    the paradigm slots ``(P, Q)``. Span lengths and inner kept runs are >= 1, the two outer kept runs
    >= 0; the compositions are the gaps between sorted uniform cuts."""
    k = spans
    span_spare, kept_spare = noise - k, n - noise - k + 1
    before, after = paradigm
    masked = n - noise + k + before + after
    x = _template(k).copy()
    # rows x[k+1:3k+5] as (2, k + 2): A = 0, span cuts, span_spare, span_spare; B = 0, kept cuts, kept_spare. Row 0 of
    # the uniforms holds the k - 1 span cuts (and the unused slot), row 1 the k kept cuts; the int cast floors.
    np.multiply(uniforms[:2 * k].reshape(2, k), ((span_spare + 1,), (kept_spare + 1,)),
                out=x[k + 2:3 * k + 6].reshape(2, k + 2)[:, :k], casting="unsafe")
    x[2 * k + 1:2 * k + 3] = span_spare
    x[3 * k + 4:] = (kept_spare, 0, -1, n, before, after, n + 1 - before, n + 1 - masked, masked + 1)
    x[k + 1:3 * k + 5].reshape(2, k + 2).sort()
    return x


@lru_cache(maxsize=None)
def _template(spans: int) -> np.ndarray:
    x = np.zeros(3 * spans + 5 + len(CONSTANTS), dtype=np.int64)
    x[:spans + 1] = np.arange(spans + 1)
    x.flags.writeable = False
    return x


@lru_cache(maxsize=None)
def segment_table(output: Output, spans: int) -> np.ndarray:
    """Indices ``(a, b, c)`` into ``X`` (shape ``(3, 2 m)``) such that ``X[a] - X[b] - X[c]`` lists the *shifts*
    (``start - offset in the output``, what :func:`gather_shifted` takes) of the ``m`` segments of ``source`` that
    build the example, then their ``m`` sizes.

    Segments: ``"masked"``: the masked chunk ``[paradigm?] run_0 S_0 run_1 S_1 ... run_k [paradigm?]`` (``S_i`` is
    sentinel ``i``) as ``k + 3`` pairs, its *pieces* for :func:`~birdie.objectives.autoencoding.shuffle_pieces`:
    ``[paradigm?] []``, ``[] run_0``, ``S_0 run_1``, ..., ``S_{k-1} run_k``, ``[paradigm?] []`` (``[]`` is empty);
    ``"infilling"``: the same, then the target ``S_0 span_0 S_1 span_1 ...``.
    With ``L_i = A_i + i`` span tokens and ``K_i = B_i + i - 1`` kept tokens before span ``i`` (``K_0 = 0``), run
    ``i`` starts at ``K_i + L_i`` and sits at ``P + K_i + i`` in the output (shift ``A_i - P``), sentinel ``i`` sits
    at ``P + K_{i+1} + i`` in the prefix and at ``PL + L_i + i`` in the target, and span ``i`` starts at
    ``K_{i+1} + L_i`` and sits at ``PL + L_i + i + 1`` (shift ``B_{i+1} - PL - 1``); sentinel ``i`` is
    ``source[n + 1 + i]``.
    """
    k = spans
    a, b, base = k + 1, 2 * k + 3, 3 * k + 5
    const = {name: base + i for i, name in enumerate(CONSTANTS)}

    def term(*names: str | int) -> tuple[int, int, int]:
        ids = [const[name] if isinstance(name, str) else name for name in names]
        return tuple(ids + [const["0"]] * (3 - len(ids)))  # type: ignore[return-value]

    empty = term("0")
    # the masked chunk as pieces: [paradigm?] [], [] run_0, S_0 run_1, ..., S_{k-1} run_k, [paradigm?] []
    shifts, sizes = [term("n"), empty, empty], [term("P"), empty, empty]
    for i in range(k + 1):
        if i > 0:
            shifts.append(term("n+1-P", b + i, i - 1))
            sizes.append(term("0", "-1"))
        shifts.append(term(a + i, "P"))
        sizes.append(term(b + i + 1, b + i, "0" if i in (0, k) else "-1"))
    shifts += [term("n+1-PL"), empty]
    sizes += [term("Q"), empty]
    if output == "infilling":
        for i in range(k):
            shifts += [term("n+1-PL", a + i, i), term(b + i + 1, "PL+1")]
            sizes += [term("0", "-1"), term(a + i + 1, a + i, "-1")]
    table = np.array(shifts + sizes, dtype=np.intp).T.copy()
    table.flags.writeable = False
    return table


def segments(layout: SpanLayout, output: Output) -> np.ndarray:
    """Shape ``(2, m)``: the shifts and sizes of the segments of ``layout.source`` that build ``output`` (see
    :func:`segment_table`)."""
    return np.subtract.reduce(layout.x[segment_table(output, layout.spans)]).reshape(2, -1)


def gather_shifted(source: np.ndarray, shifts: np.ndarray, sizes: np.ndarray, total: int) -> np.ndarray:
    """Concatenation of ``source[o + s:o + s + z]`` over segments with shift ``s`` (start minus output offset ``o``)
    and size ``z`` (int arrays; ``total = sum(sizes)``)."""
    index = shifts.repeat(sizes)
    index += ramp(total)
    return source[index]


def gather_segments(source: np.ndarray, starts: np.ndarray, sizes: np.ndarray, total: int) -> np.ndarray:
    """Concatenation of ``source[s:s + z]`` over the segments ``(s, z)`` (int arrays; ``total = sum(sizes)``)."""
    shifts = starts - sizes.cumsum()
    shifts += sizes
    return gather_shifted(source, shifts, sizes, total)


@dataclass(frozen=True)
class SpanCorruptionConfig(ObjectiveConfig):
    """Fields and chunk sizing shared by the span-corrupting objectives (infilling, autoencoding).

    Attributes:
        corruption_rate: fraction of the chunk's tokens that are masked, in (0, 1).
        mean_span_length: mean tokens per masked span (>= 1).
    """

    key_fields: ClassVar[dict[str, str]] = {"corruption_rate": "r", "mean_span_length": "s", "length": "l"}
    corruption_rate: float = 0.15
    mean_span_length: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "corruption_rate", 0.0 < self.corruption_rate < 1.0, "must be in (0, 1)")
        check(self, "mean_span_length", self.mean_span_length >= 1.0, "must be >= 1")

    def example_cost(self, n: int, noise: int, spans: int) -> int:
        """Positions (prefix + target, without the paradigm token) an example from an ``n``-token chunk takes."""
        raise TypeError(f"{type(self).__name__} does not define example_cost")

    def extra_uniforms(self, spans: int) -> int:
        """Uniforms the objective draws for itself after the layout's (left in :attr:`SpanLayout.uniforms`)."""
        return 0

    def sample_spans(self, ids: np.ndarray, rng: np.random.Generator, budget: int,
                     tokenizer: Tokenizer) -> SpanDraw | Skip:
        """The chunk length, span counts and uniforms of the next example, or a Skip when ``ids`` cannot serve one.

        The chunk is drawn from ``length``, then shortened until the example fits ``budget`` and its spans fit
        the tokenizer's sentinels (so the mean span length is kept rather than stretched).
        """
        specials = tokenizer.specials
        max_spans = len(specials.sentinels)
        paradigm_tokens = self.paradigm_tokens
        room = budget - paradigm_tokens
        most = int(max_spans * self.mean_span_length / self.corruption_rate)
        n = self.draw_length(len(ids), min(room, most), rng.random())
        noise, spans = span_counts(n, self.corruption_rate, self.mean_span_length, max_spans)
        # Shorten by the excess until it fits: the cost grows by >= 1 per token, so this takes a few steps.
        while n >= 2 and (excess := self.example_cost(n, noise, spans) - room) > 0:
            n -= excess
            noise, spans = span_counts(n, self.corruption_rate, self.mean_span_length, max_spans)
        if n < 2:
            return too_short(2, n, ids, budget)
        uniforms = rng.random(2 * spans + self.extra_uniforms(spans))
        before = after = 0  # the layout's unused uniform decides the paradigm token's side
        if paradigm_tokens:
            before, after = (0, 1) if self.appends_paradigm(float(uniforms[spans - 1])) else (1, 0)
        return SpanDraw(n, noise, spans, uniforms, before, after, special_row(specials, self.name, _sentinel_row))


class SpanDraw(NamedTuple):
    """What one example's spans are made from (the arguments of
    :func:`~birdie.objectives.span_kernels.span_example` after ``ids``).

    Attributes:
        n: chunk length. noise: masked tokens. spans: span count ``k``.
        uniforms: ``2 k`` for the layout (see :func:`random_layout`), then the objective's own.
        before, after: 1 when the paradigm token goes before / after the masked chunk.
        row: int32 ``[paradigm, sentinel_0, sentinel_1, ...]``.
    """

    n: int
    noise: int
    spans: int
    uniforms: np.ndarray
    before: int
    after: int
    row: np.ndarray


def layout(ids: np.ndarray, draw: SpanDraw) -> SpanLayout:
    """The numpy path's :class:`SpanLayout` of ``draw`` over ``ids``."""
    n, noise, spans, uniforms, before, after, row = draw
    x = random_layout(n, noise, spans, uniforms, (before, after))
    return SpanLayout(n, noise, spans, x, np.concatenate((ids[:n], row)), uniforms[2 * spans:])


#: Whether span corruption and selective copying run the compiled kernels when numba is importable (environment
#: ``BIRDIE_NO_NUMBA=1`` turns them off; tests set it to False to run the numpy path, which gives identical examples).
use_kernels = not numba_disabled()
_kernels: ModuleType | None | bool = None  # None: not imported yet; False: numba is missing


def compiled_kernels() -> ModuleType | None:
    """:mod:`birdie.objectives.span_kernels` when :data:`use_kernels` is set and numba is installed, else None."""
    global _kernels
    if not use_kernels:
        return None
    if _kernels is None:
        try:
            from birdie.objectives import span_kernels
        except ImportError:  # numba is an optional extra: the numpy path serves
            _kernels = False
        else:
            _kernels = span_kernels
    return _kernels or None


def _sentinel_row(specials: SpecialTokens, name: str) -> list[int]:
    return [specials.paradigm(name), *specials.sentinels.tolist()]
