"""One stream of packed batches: documents -> objectives -> best-fit packing.

A :class:`BatchStream` owns one document stream (its own shard of the source) and turns it into batches. Batch
``b`` is a pure function of the stream's state before it, the pipeline seed and ``b`` (its RNG is seeded by
``(seed, split, rank, [objective], b)``) and the mixture probabilities in force at ``b``; the state after it
(epoch, documents read, the unconsumed rest of the current document, skip counters) is small and plain, so the
pipeline can ship it between processes, checkpoint it and resume from it exactly.

Per batch, until no row has ``min_segment_tokens`` free positions: take the rest of the current document (or
read and tokenize the next one), draw an objective from the mixture, call it with ``budget`` = the largest free
space of any row (less the positions a multi-token separator adds), and put the example in the row it fits most tightly (best fit). The document's leftover ids
continue in the next segment, with a freshly drawn objective, and never get re-tokenized.

Failures: an objective returning :class:`~birdie.objectives.base.Skip` is counted; after ``max_draws_per_piece``
draws fail on one piece of a document, the piece is dropped (counted in ``dropped_tokens``) when it had room
(it is no longer than the budget, or the budget was a whole row); otherwise the row with the most room is closed
and the piece waits for the next batch.
An objective that skips ``max_consecutive_skips`` times in a row, a source that yields
``max_consecutive_skips`` unusable items in a row, or a source with no documents at all raises an error.

Prompt/completion items (:mod:`birdie.data.pairs`) are served only by the mixture's ``supervised`` configurations
and text only by the others: the objective is drawn from the mixture restricted to the document's kind. A pair
is placed whole: when no row has room for it, the row with the most room is closed and the pair waits (for the
next batch if need be); a pair longer than a whole row is a counted skip of its objective (its ids are counted in
``dropped_tokens``), never truncated. A document whose kind has no configuration with weight > 0 is dropped
(``dropped_tokens``); ``max_consecutive_skips`` such documents in a row raise an error.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from birdie.data.config import PipelineConfig
from birdie.data.packing import BatchBuilder
from birdie.data.pairs import PromptCompletion, pair_keys, read_item
from birdie.data.sources import Source
from birdie.objectives.base import EMPTY, Example, ObjectiveConfig, Skip
from birdie.objectives.supervised import Supervised
from birdie.tokenizers import Tokenizer

#: Columns of the per-objective counters in :class:`BatchStats`.
OBJECTIVE_COUNTERS: tuple[str, ...] = ("draws", "samples", "tokens", "skips")


class PipelineDataError(RuntimeError):
    """The data cannot feed the pipeline: an objective that keeps skipping, a source with no usable documents."""


@dataclass
class StreamState:
    """Where a stream stands between two batches. Its arrays cross process boundaries as numpy buffers;
    :meth:`to_plain`/:meth:`from_plain` convert it to and from plain Python values for checkpoints.

    Attributes:
        epoch: passes completed over the stream's documents.
        position: items read in the current epoch.
        carry: int32 ids of the current document not consumed yet (of a pair: the completion).
        prompt: int32 prompt ids when the current document is a prompt/completion pair, else None.
        consecutive_skips: int64, per objective, skips since its last example (empty before the first batch).
        consecutive_invalid: unusable items read since the last usable one.
    """

    epoch: int = 0
    position: int = 0
    carry: np.ndarray = field(default_factory=lambda: EMPTY)
    consecutive_skips: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    consecutive_invalid: int = 0
    prompt: np.ndarray | None = None

    def to_plain(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "carry": self.carry.tolist(),
                "consecutive_skips": self.consecutive_skips.tolist(), "consecutive_invalid": self.consecutive_invalid,
                "prompt": None if self.prompt is None else self.prompt.tolist()}

    @classmethod
    def from_plain(cls, values: dict[str, Any]) -> "StreamState":
        prompt = values.get("prompt")
        return cls(int(values["epoch"]), int(values["position"]), np.asarray(values["carry"], dtype=np.int32),
                   np.asarray(values["consecutive_skips"], dtype=np.int64), int(values["consecutive_invalid"]),
                   None if prompt is None else np.asarray(prompt, dtype=np.int32))


@dataclass
class BatchStats:
    """Counters for one or more batches.

    Attributes:
        objectives: int64 (num_objectives, 4) -- draws, samples, tokens (segment positions), skips.
        documents: usable documents read.
        document_tokens: ids of those documents (with eos), as read from the source.
        invalid_documents: items skipped as empty or not text.
        dropped_tokens: ids of pieces that no drawn objective could use.
        filled: non-padding positions.
        positions: all positions.
    """

    objectives: np.ndarray
    documents: int = 0
    document_tokens: int = 0
    invalid_documents: int = 0
    dropped_tokens: int = 0
    filled: int = 0
    positions: int = 0

    @classmethod
    def zeros(cls, num_objectives: int) -> "BatchStats":
        return cls(np.zeros((num_objectives, len(OBJECTIVE_COUNTERS)), dtype=np.int64))

    def add(self, other: "BatchStats") -> None:
        self.objectives += other.objectives
        self.documents += other.documents
        self.document_tokens += other.document_tokens
        self.invalid_documents += other.invalid_documents
        self.dropped_tokens += other.dropped_tokens
        self.filled += other.filled
        self.positions += other.positions


class BatchStream:
    """Produces the batches of one document stream.

    Args:
        source: where the documents come from.
        tokenizer: encodes text documents; gives the pad, begin-generating and eos ids.
        objectives: the mixture's objective configurations (their order fixes the probability vector's order).
        config: the pipeline's config (``batch_size``, ``sequence_length``, ``seed``, the skip bounds, ...).
        split: ``"train"`` or ``"validation"``.
        stream: this stream's index among ``num_streams`` (already including the rank).
        num_streams: how many streams partition the split (``world_size * PipelineConfig.num_streams`` for
            training, 1 for validation).
        rng_key: leading entries of every batch RNG seed (distinguishes splits, ranks, validation objectives).
        state: where to start (default: the beginning).
    """

    def __init__(self, source: Source, tokenizer: Tokenizer, objectives: Sequence[ObjectiveConfig],
                 config: PipelineConfig, split: str, stream: int, num_streams: int, rng_key: Sequence[int],
                 state: StreamState | None = None) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.objectives = list(objectives)
        self.config = config
        self.split = split
        self.stream = stream
        self.num_streams = num_streams
        self.rng_key = list(rng_key)
        self.state = state or StreamState()
        if len(self.state.consecutive_skips) == 0:
            self.state.consecutive_skips = np.zeros(len(self.objectives), dtype=np.int64)
        self._items: Any = None
        self._eos = tokenizer.specials.eos
        self._serves_pairs = np.array([isinstance(o, Supervised) for o in self.objectives])
        self._pair_keys = pair_keys(self.objectives, config)

    def next_batch(self, batch_index: int, probs: np.ndarray) -> tuple[np.ndarray, BatchStats]:
        """Batch ``batch_index`` under mixture ``probs``: a (5, batch_size, sequence_length) int64 buffer."""
        config = self.config
        rng = np.random.default_rng([*self.rng_key, batch_index])
        text_cdf, pair_cdf = (_cdf(np.where(self._serves_pairs == pairs, probs, 0.0)) for pairs in (False, True))
        separator = config.start_generating_ids or self.tokenizer.specials.begin_generating
        builder = BatchBuilder(config.batch_size, config.sequence_length, self.tokenizer.specials.pad, separator)
        row_budget = config.sequence_length - builder.extra  # an example's positions in an empty row
        stats = BatchStats.zeros(len(self.objectives))
        counts = stats.objectives
        state = self.state
        skips = state.consecutive_skips
        failed_draws = unserved = 0
        while (budget := builder.max_remaining - builder.extra) >= config.min_segment_tokens:
            if not len(state.carry):
                self._next_document(stats)
            ids = state.carry
            cdf = text_cdf if state.prompt is None else pair_cdf
            if cdf is None:
                unserved += 1
                self._drop_unserved(stats, unserved, probs)
                continue
            k = min(bisect_right(cdf, rng.random()), len(cdf) - 1)
            objective = self.objectives[k]
            if state.prompt is None:
                result = objective(ids, rng, budget, self.tokenizer)
            else:
                result = objective.pair_example(state.prompt, ids, budget, self.tokenizer)
                if isinstance(result, Skip) and objective.positions(state.prompt, ids) <= row_budget:
                    builder.close_row(builder.roomiest_row())  # no row has room: the pair waits, whole
                    continue
            counts[k, 0] += 1
            if isinstance(result, Example):
                length = len(result.prefix) + len(result.target)
                if length > budget:
                    raise PipelineDataError(
                        f"objective {objective.key} returned an example of {length} positions for a budget of "
                        f"{budget}; objectives must keep len(prefix) + len(target) <= budget"
                    )
                builder.add(result.prefix, result.target)
                counts[k, 1] += 1
                counts[k, 2] += length
                skips[k] = 0
                state.carry, state.prompt = np.asarray(result.leftover, dtype=np.int32), None
                failed_draws = unserved = 0
                continue
            counts[k, 3] += 1
            skips[k] += 1
            if skips[k] >= config.max_consecutive_skips:
                raise PipelineDataError(
                    f"objective {objective.key} skipped {skips[k]} samples in a row (last: {result.reason}); the "
                    "documents are too short for it or sequence_length is too small. Remove it from the mixture, "
                    "change its parameters, or raise max_consecutive_skips"
                )
            if state.prompt is not None:  # longer than a whole row: skipped whole, never truncated
                self._drop_current(stats)
                continue
            state.carry = np.asarray(result.leftover, dtype=np.int32)
            failed_draws += 1
            if failed_draws >= config.max_draws_per_piece:
                failed_draws = 0
                if len(state.carry) <= budget or budget == row_budget:
                    stats.dropped_tokens += len(state.carry)  # it had room: the piece itself is unusable
                    state.carry = EMPTY
                else:
                    builder.close_row(builder.roomiest_row())  # no room left for it in this batch
        stats.filled = int((builder.buffer[3] > 0).sum())
        stats.positions = builder.buffer[3].size
        return builder.buffer, stats

    def _drop_current(self, stats: BatchStats) -> None:
        """Give up on the current document (counted in ``dropped_tokens``)."""
        state = self.state
        stats.dropped_tokens += len(state.carry) + (0 if state.prompt is None else len(state.prompt))
        state.carry, state.prompt = EMPTY, None

    def _drop_unserved(self, stats: BatchStats, unserved: int, probs: np.ndarray) -> None:
        """Drop a document that no configuration with weight > 0 can serve; error after too many in a row."""
        kind = "text" if self.state.prompt is None else "prompt/completion"
        self._drop_current(stats)
        if unserved >= self.config.max_consecutive_skips:
            weights = {o.key: float(p) for o, p in zip(self.objectives, probs)}
            raise PipelineDataError(
                f"{unserved} {kind} documents in a row had no objective to serve them (mixture: {weights}); "
                "prompt/completion items need a 'supervised' objective with weight > 0 and text items another "
                "objective with weight > 0: change the mixture or the source"
            )

    def _next_document(self, stats: BatchStats) -> None:
        """Read items until one is a usable document and make it the current one (``state.carry``, and
        ``state.prompt`` for a pair); text gets eos appended when configured."""
        state, config = self.state, self.config
        read_in_epoch = state.position
        while True:
            if self._items is None:
                self._items = iter(self.source.documents(self.split, self.stream, self.num_streams, state.epoch,
                                                         config.seed, start=state.position))
            try:
                item = next(self._items)
            except StopIteration:
                if read_in_epoch == 0:
                    raise PipelineDataError(
                        f"the {self.split} data of stream {self.stream}/{self.num_streams} is empty; give the source "
                        "more documents, use fewer streams/ranks, or raise validation_fraction for validation"
                    ) from None
                self._items, state.epoch, state.position, read_in_epoch = None, state.epoch + 1, 0, 0
                continue
            state.position += 1
            read_in_epoch += 1
            document = read_item(item, self.source, self.tokenizer, self._pair_keys)
            if document is not None:
                state.consecutive_invalid = 0
                stats.documents += 1
                if isinstance(document, PromptCompletion):
                    state.prompt, state.carry = document.prompt, document.completion
                    stats.document_tokens += len(document.prompt) + len(document.completion)
                else:
                    state.carry = document
                    if config.append_eos:  # one copy with the eos written in place (np.concatenate costs twice this)
                        state.carry = np.empty(len(document) + 1, dtype=np.int32)
                        state.carry[:-1], state.carry[-1] = document, self._eos
                    stats.document_tokens += len(state.carry)
                return
            stats.invalid_documents += 1
            state.consecutive_invalid += 1
            if state.consecutive_invalid >= config.max_consecutive_skips:
                raise PipelineDataError(
                    f"{state.consecutive_invalid} items in a row were empty or not text (last: {item!r:.200}); "
                    "check the source and its text_grabber_fn"
                )


def _cdf(weights: np.ndarray) -> list[float] | None:
    """Cumulative distribution of ``weights`` (a list: ``bisect`` on it costs a third of ``np.searchsorted``);
    None when they are all 0."""
    total = weights.sum()
    return np.cumsum(weights / total).tolist() if total > 0 else None
