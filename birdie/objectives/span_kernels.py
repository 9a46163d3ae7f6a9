"""Compiled (numba) example builders: one call per example for span corruption and for selective copying.

The numpy path of span corruption (:func:`~birdie.objectives.spans.random_layout`,
:func:`~birdie.objectives.spans.segments` and the gathers) costs ~20 small numpy calls an example whatever its length,
which bounds short chunks; selective copying's placement is a Python loop over spans, tries and delimiter lengths.
Here each is one loop. The kernels read the SAME uniforms as the numpy path, in the same way (cut points scaled and
floored, then sorted; the shuffle's order is the stable argsort of its keys; the same placement tries in the same
order), so for a seed both paths give identical examples -- ``tests/objectives/test_span_kernels.py`` checks exactly
that.

Imported only when numba is installed (``pip install birdie-lm[fast]``); compiled on first use and cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)
_ids = numba.types.Array(numba.int32, 1, "A", readonly=True)  # writable and contiguous arrays convert to this
#: The one signature :func:`span_example` is compiled for, so that read-only ids (memory-mapped shards) or views do
#: not each cost a compilation.
SIGNATURE = (_ids, numba.int64, numba.int64, numba.int64, numba.types.Array(numba.float64, 1, "A", readonly=True),
             numba.int64, numba.int64, _ids, numba.int64)

#: Outputs of :func:`span_example`: the masked chunk then the infilling target, the masked chunk, or the masked
#: chunk with its pieces shuffled.
INFILLING, MASKED, SHUFFLED = 0, 1, 2


@_jit
def _sorted_cuts(uniforms, first, count, spare):
    """``[0, c_1..c_count sorted, spare]`` with ``c_i = floor(uniforms[first + i - 1] * (spare + 1))``: the bounds of a
    random composition (as the rows of :func:`~birdie.objectives.spans.random_layout`)."""
    cuts = np.empty(count + 2, np.int64)
    cuts[0], cuts[count + 1] = 0, spare
    for i in range(count):
        cuts[i + 1] = np.int64(uniforms[first + i] * (spare + 1))
    cuts[1:count + 1] = np.sort(cuts[1:count + 1])
    return cuts


@_jit
def _copy(out, at, source, start, size):
    for j in range(size):
        out[at + j] = source[start + j]
    return at + size


@_jit
def _shuffled(plain, piece_sizes, keys):
    """``plain`` (the masked chunk) with its pieces (sizes ``piece_sizes``: paradigm slot, run_0, ``S_i run_{i+1}``
    per span, paradigm slot) permuted as :func:`~birdie.objectives.autoencoding.shuffle_pieces` does: the stable
    argsort of ``keys`` with the ends pinned (and an empty first piece), the identity turned into a rotation."""
    pieces = len(piece_sizes)
    keys = keys.copy()
    keys[0], keys[pieces - 1] = -2.0, 2.0
    first_piece = piece_sizes[1] > 0
    if not first_piece:
        keys[1] = -1.0
    order = np.argsort(keys, kind="mergesort")
    identity = True
    for i in range(pieces):
        if order[i] != i:
            identity = False
            break
    if identity:
        pinned = 1 if first_piece else 2
        last = order[pieces - 2]
        for i in range(pieces - 2, pinned, -1):
            order[i] = order[i - 1]
        order[pinned] = last
    starts = np.empty(pieces, np.int64)
    at = 0
    for i in range(pieces):
        starts[i] = at
        at += piece_sizes[i]
    out = np.empty_like(plain)
    at = 0
    for i in range(pieces):
        at = _copy(out, at, plain, starts[order[i]], piece_sizes[order[i]])
    return out


@numba.njit(numba.types.Tuple((numba.int32[::1], numba.int64))(*SIGNATURE), cache=True, nogil=True)
def span_example(ids, n, noise, spans, uniforms, before, after, row, output):
    """One span-corrupted example from ``ids[:n]``: ``(out, prefix_length)`` (int32 ``out``).

    Args:
        ids: int32 token ids (the chunk is ``ids[:n]``). n, noise, spans: chunk length, masked tokens, span count.
        uniforms: the example's uniforms: ``2 spans`` for the layout (``uniforms[spans - 1]`` unused), then for
            ``SHUFFLED`` the ``spans + 3`` shuffle keys.
        before, after: 1 when the paradigm token goes before / after the masked chunk (at most one of them).
        row: int32 ``[paradigm, sentinel_0, sentinel_1, ...]``.
        output: ``INFILLING`` (``out`` = masked chunk + ``S_0 span_0 S_1 span_1 ...``), ``MASKED`` or ``SHUFFLED``
            (``out`` = the masked chunk, in order or with its pieces permuted); ``prefix_length`` = the masked chunk's.
    """
    k = spans
    span_cuts = _sorted_cuts(uniforms, 0, k - 1, noise - k)
    kept_cuts = _sorted_cuts(uniforms, k, k, n - noise - k + 1)
    masked_length = n - noise + k + before + after
    out = np.empty(masked_length + (noise + k if output == INFILLING else 0), np.int32)
    piece_sizes = np.empty(k + 3, np.int64)
    piece_sizes[0], piece_sizes[k + 2] = before, after
    at, target, position = 0, masked_length, 0
    if before:
        out[0] = row[0]
        at = 1
    for i in range(k + 1):
        run = kept_cuts[i + 1] - kept_cuts[i] + 1 - (i == 0) - (i == k)
        at = _copy(out, at, ids, position, run)
        position += run
        piece_sizes[i + 1] = run + (i > 0)
        if i < k:
            out[at] = row[1 + i]
            at += 1
            length = span_cuts[i + 1] - span_cuts[i] + 1
            if output == INFILLING:
                out[target] = row[1 + i]
                target = _copy(out, target + 1, ids, position, length)
            position += length
    if after:
        out[at] = row[0]
    if output == SHUFFLED:
        out = _shuffled(out, piece_sizes, uniforms[2 * k:3 * k + 3])
    return out, masked_length


#: Statuses of :func:`selective_copy_example`: built; no room (the numpy path would Skip); the rejection draws all
#: failed, so the numpy path must run (its exact filter draws from the generator, which the kernel does not hold).
PLACED, NO_ROOM, NEEDS_EXACT_FILTER = 0, 1, 2


@_jit
def _occurs_once(context, start, stop):
    """Whether ``context[start:stop]`` occurs nowhere else in ``context`` (as ``_Windows.occurs_once``)."""
    size = stop - start
    for j in range(len(context) - size + 1):
        if j != start and context[j] == context[start]:
            same = True
            for t in range(1, size):
                if context[j + t] != context[start + t]:
                    same = False
                    break
            if same:
                return False
    return True


@_jit
def _shortest_unique(context, anchor, direction, preferred, width):
    """As ``_Windows.shortest_unique``: the shortest unique run next to ``anchor`` from ``preferred`` tokens up."""
    for length in range(preferred, width):
        first = anchor - length if direction < 0 else anchor
        if _occurs_once(context, first, first + length):
            return length
    return max(preferred, width)


_selective_signature = numba.types.Tuple((numba.int32[::1], numba.int64, numba.int64))(
    _ids, numba.int64, numba.int64, numba.int64, numba.int64, numba.types.Array(numba.float64, 1, "A", readonly=True),
    numba.int64, numba.int64, numba.int64, _ids, numba.int64, numba.int64, numba.int64)


@numba.njit(_selective_signature, cache=True, nogil=True)
def selective_copy_example(ids, n, spans, span_low, span_high, uniforms, tries_at, delimiter_low, width, row,
                           query_first, before, after):
    """One selective-copying example from the context ``ids[:n]``: ``(out, prefix_length, status)``.

    Mirrors ``SelectiveCopying.__call__`` with the same ``uniforms`` (span ``i``'s length from ``uniforms[4 + i]``, its
    8 placement tries and 2 delimiter draws from ``uniforms[tries_at + 10 i:]``). ``row`` is ``[paradigm, context, copy,
    start, end, sep, done]``; ``query_first``, ``before``, ``after`` are 0/1. ``out`` is prefix + target when
    ``status`` is :data:`PLACED`, empty otherwise.
    """
    context = ids[:n]
    lengths = np.empty(spans, np.int64)
    for i in range(spans):
        lengths[i] = span_low + np.int64(uniforms[4 + i] * (span_high - span_low + 1))
    empty = np.empty(0, np.int32)
    if n - 2 * width - lengths.max() + 1 < 1:
        return empty, 0, NO_ROOM
    placed = np.empty((spans, 4), np.int64)  # first, length, start delimiter, end delimiter
    spread = width - delimiter_low + 1
    for i in range(spans):
        length, tries = lengths[i], tries_at + 10 * i
        count = n - 2 * width - length + 1
        if count < 1:
            return empty, 0, NO_ROOM
        first = -1
        for r in range(8):
            candidate = width + np.int64(uniforms[tries + r] * count)
            free = True
            for p in range(i):
                if candidate + length > placed[p, 0] and candidate < placed[p, 0] + placed[p, 1]:
                    free = False
                    break
            if free and _occurs_once(context, candidate - width, candidate) and _occurs_once(
                    context, candidate + length, candidate + length + width):
                first = candidate
                break
        if first < 0:
            return empty, 0, NEEDS_EXACT_FILTER
        placed[i, 0], placed[i, 1] = first, length
        placed[i, 2] = _shortest_unique(context, first, -1, delimiter_low + np.int64(uniforms[tries + 8] * spread),
                                        width)
        placed[i, 3] = _shortest_unique(context, first + length, 1,
                                        delimiter_low + np.int64(uniforms[tries + 9] * spread), width)
    placed = placed[np.argsort(placed[:, 0])]
    query_length = 1 + 2 * spans + placed[:, 2].sum() + placed[:, 3].sum()
    prefix_length = before + after + 1 + n + query_length
    out = np.empty(prefix_length + lengths.sum() + spans, np.int32)
    at = 0
    if before:
        out[0] = row[0]
        at = 1
    if not query_first:
        out[at] = row[1]
        at = _copy(out, at + 1, context, 0, n)
    out[at] = row[2]
    at += 1
    for i in range(spans):
        first, length, start_delimiter, end_delimiter = placed[i, 0], placed[i, 1], placed[i, 2], placed[i, 3]
        out[at] = row[3]
        at = _copy(out, at + 1, context, first - start_delimiter, start_delimiter)
        out[at] = row[4]
        at = _copy(out, at + 1, context, first + length, end_delimiter)
    if query_first:
        out[at] = row[1]
        at = _copy(out, at + 1, context, 0, n)
    if after:
        out[at] = row[0]
        at += 1
    for i in range(spans):
        at = _copy(out, at, context, placed[i, 0], placed[i, 1])
        out[at] = row[5] if i < spans - 1 else row[6]
        at += 1
    return out, prefix_length, PLACED
