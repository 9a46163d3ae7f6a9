"""The data pipeline: a deterministic, resumable stream of packed batches under a live objective mixture.

::

    with Pipeline(tokenizer, objectives, source, batch_size=8, sequence_length=2048, num_workers=2) as pipeline:
        for step, batch in zip(range(num_steps), pipeline):
            loss = model(**batch)[1]
            ...
            pipeline.set_mixture(new_probs)          # takes effect at the returned batch index

Determinism. The pipeline splits its rank's share of the source into ``num_streams`` document streams; batch
``b`` comes from stream ``b % num_streams`` and is a pure function of that stream's state, ``(seed, rank, b)``
and the mixture in force at ``b``. Workers own whole streams, so the batch stream is identical for every
``num_workers`` (0 = in-process) as long as ``num_streams`` and ``prefetch`` stay the same.

Mixture changes. Batches are committed ``prefetch`` ahead of the consumer: when batch ``b`` is requested, all
batches before ``b + prefetch`` are committed (sent to workers). :meth:`Pipeline.set_mixture` applies from the first
uncommitted index -- ``prefetch - 1`` batches after the next one to be returned, or batch 0 before the first --
and returns that index. The rule depends only on how many batches were consumed, never on timing.

Resume. :meth:`Pipeline.state_dict` holds the next batch index, the mixture schedule, every stream's state as
of the last batch returned, and the statistics; :meth:`Pipeline.load_state_dict` continues with exactly the
batches an uninterrupted pipeline would have returned.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import fields, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from birdie.data.packing import batch_to_torch
from birdie.data.shards import ShardSource
from birdie.data.source_dispatch import as_source
from birdie.data.sources import CachedSource, Source
from birdie.data.config import PipelineConfig
from birdie.data.pairs import pair_keys, read_item
from birdie.data.streams import OBJECTIVE_COUNTERS, BatchStats, BatchStream, StreamState
from birdie.data.workers import PipelineWorkerError, StreamFactory, WorkerPool
from birdie.objectives.mixtures import resolve_mixture
from birdie.tokenizers import as_tokenizer

Batch = dict[str, torch.Tensor]
STATE_VERSION = 1


class Pipeline:
    """Packed training batches for one rank, plus fixed validation batches per objective configuration.

    Args:
        tokenizer: a birdie tokenizer (or anything :func:`birdie.tokenizers.as_tokenizer` accepts).
        mixture: the objective configurations (``ObjectiveConfig`` objects or mixture entries); their ``prob``
            fields are the starting mixture.
        source: the training documents (anything :func:`birdie.data.source_dispatch.as_source` accepts; default: the
            embedded synthetic stories).
        validation_source: documents for :meth:`validation_batches` (default: ``source``'s validation split).
        text_grabber_fn: ``item -> str`` for the sources built here (default ``item["text"]`` or the item).
        config: a :class:`PipelineConfig`; keyword ``options`` override its fields.
    """

    def __init__(self, tokenizer: Any, mixture: Sequence[Any], source: Any = None, *,
                 validation_source: Any = None, text_grabber_fn: Callable[[Any], Any] | None = None,
                 config: PipelineConfig | None = None, **options: Any) -> None:
        known = {f.name for f in fields(PipelineConfig)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown Pipeline option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        self.config = replace(config or PipelineConfig(), **options)
        self.tokenizer = as_tokenizer(tokenizer)
        self.objectives = resolve_mixture(mixture)
        self.keys = [o.key for o in self.objectives]
        self.source: Source = as_source(source, text_grabber_fn)
        self.validation_source: Source = (self.source if validation_source is None
                                          else as_source(validation_source, text_grabber_fn))
        for source in (self.source, self.validation_source):
            if isinstance(source, ShardSource):
                source.check_tokenizer(self.tokenizer)
        self._factory = StreamFactory(self.source, self.tokenizer, tuple(self.objectives), self.config)
        initial = np.array([o.prob for o in self.objectives], dtype=np.float64)
        self._schedule: list[tuple[int, np.ndarray]] = [(0, initial / initial.sum())]
        self._next_index = 0
        self._horizon = 0
        self._states = [StreamState() for _ in range(self.config.num_streams)]
        self._streams: dict[int, BatchStream] = {}
        self._pool: WorkerPool | None = None
        self._stats = BatchStats.zeros(len(self.objectives))
        self._window = BatchStats.zeros(len(self.objectives))
        self._validation: dict[str, list[Batch]] | None = None
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_pool, self.__dict__)

    # -- the batch stream --------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        self._check_open()
        index = self._next_index
        self._horizon = max(self._horizon, index + self.config.prefetch)
        try:
            if self.config.num_workers == 0:
                stream = self._stream(index % self.config.num_streams)
                buffer, stats = stream.next_batch(index, self.probs_at(index))
                state = stream.state
            else:
                buffer, state, stats = self._from_workers(index)
        except BaseException:
            self.close()
            raise
        self._states[index % self.config.num_streams] = state
        if any(start == index for start, _ in self._schedule):
            self._window = BatchStats.zeros(len(self.objectives))
        self._stats.add(stats)
        self._window.add(stats)
        self._next_index = index + 1
        return batch_to_torch(buffer)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the pipeline is closed; create a new one (or load_state_dict into a new one)")

    def _stream(self, stream: int) -> BatchStream:
        if stream not in self._streams:
            self._streams[stream] = self._factory.make(stream, self._states[stream])
        return self._streams[stream]

    def start_workers(self) -> None:
        """Start the worker processes now (idempotent; nothing to start with ``num_workers=0``). Otherwise the
        first batch request starts them. Start them before this process runs threads of its own: ``fork`` copies
        only the calling thread, and a lock another thread holds stays locked in the workers."""
        self._check_open()
        if self.config.num_workers and self._pool is None:
            self._pool = WorkerPool(self._factory, copy.deepcopy(self._states), self.config.num_workers,
                                    self.config.start_method, self.config.batch_timeout_s)
            self._submitted = self._next_index

    def _from_workers(self, index: int) -> tuple[np.ndarray, StreamState, BatchStats]:
        self.start_workers()
        while self._submitted < self._horizon:
            self._pool.submit(self._submitted, self.probs_at(self._submitted))
            self._submitted += 1
        return self._pool.result(index)

    @property
    def batch_index(self) -> int:
        """Index of the next batch :meth:`__next__` returns."""
        return self._next_index

    # -- the mixture -------------------------------------------------------------------------------------------

    def probs_at(self, batch_index: int) -> np.ndarray:
        """The (normalised) mixture probabilities that batch ``batch_index`` is drawn under."""
        probs = self._schedule[0][1]
        for start, entry in self._schedule:
            if start <= batch_index:
                probs = entry
        return probs

    @property
    def first_uncommitted(self) -> int:
        """The first batch whose mixture can still change (:meth:`set_mixture`'s default ``start``)."""
        return self._horizon

    def will_commit(self, batch_index: int) -> bool:
        """True when batch ``batch_index`` is committed by the next batch request (or already is), so its mixture
        can no longer change after that request."""
        return batch_index < max(self._horizon, self._next_index + self.config.prefetch)

    @property
    def mixture(self) -> dict[str, float]:
        """The latest commanded mixture, ``{key: probability}``."""
        return dict(zip(self.keys, self._schedule[-1][1].tolist()))

    def set_mixture(self, probs: Sequence[float] | np.ndarray | Mapping[str, float], start: int | None = None) -> int:
        """Command new probabilities (one per configuration, in ``keys`` order, or a ``{key: weight}`` dict
        naming every key); they are normalised. They apply from batch ``start`` (default: the first uncommitted
        batch, see the module docstring), which must not be committed yet; returns it."""
        if isinstance(probs, Mapping):
            missing = sorted(set(self.keys) - set(probs))
            extra = sorted(set(probs) - set(self.keys))
            if missing or extra:
                raise ValueError(f"set_mixture: missing keys {missing}, unknown keys {extra}; keys are {self.keys}")
            probs = [probs[key] for key in self.keys]
        weights = np.asarray(probs, dtype=np.float64).reshape(-1)
        if len(weights) != len(self.keys):
            raise ValueError(f"set_mixture: got {len(weights)} probabilities for {len(self.keys)} configurations")
        if not np.all(np.isfinite(weights)) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"set_mixture: probabilities must be finite, >= 0 and not all 0, got {weights.tolist()}")
        if start is None:
            start = self._horizon
        elif start < self._horizon:
            raise ValueError(f"set_mixture: batch {start} is already committed (batches before {self._horizon} "
                             "are); pass start >= that, or None for the first uncommitted batch")
        schedule = [(s, p) for s, p in self._schedule if s < start] + [(start, weights / weights.sum())]
        # Entries superseded before the next batch to return are never read again (not even after a resume).
        while len(schedule) > 1 and schedule[1][0] <= self._next_index:
            schedule.pop(0)
        self._schedule = schedule
        return start

    # -- statistics and validation -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters over the batches returned so far.

        ``objectives[key]`` holds ``draws``, ``samples``, ``tokens`` (segment positions) and ``skips`` since the
        start, ``commanded`` (the probability in force for the last batch returned), ``observed`` (share of
        samples since that mixture took effect) and ``observed_tokens`` (share of tokens, same window). Also
        ``documents``/``document_tokens`` read, ``invalid_documents`` (empty or not text, skipped),
        ``dropped_tokens`` (pieces no drawn objective could use) and the ``fill_rate`` of all batches.
        """
        total, window = self._stats, self._window
        samples = max(int(window.objectives[:, 1].sum()), 1)
        tokens = max(int(window.objectives[:, 2].sum()), 1)
        current = self.probs_at(max(self._next_index - 1, 0))
        per_objective = {}
        for k, key in enumerate(self.keys):
            entry = dict(zip(OBJECTIVE_COUNTERS, total.objectives[k].tolist()))
            entry.update(commanded=float(current[k]), observed=float(window.objectives[k, 1] / samples),
                         observed_tokens=float(window.objectives[k, 2] / tokens))
            per_objective[key] = entry
        return {
            "batches": self._next_index, "documents": total.documents, "document_tokens": total.document_tokens,
            "invalid_documents": total.invalid_documents,
            "dropped_tokens": total.dropped_tokens, "fill_rate": total.filled / max(total.positions, 1),
            "objectives": per_objective,
        }

    def validation_batches(self) -> dict[str, list[Batch]]:
        """``num_validation_batches`` held-out batches per configuration key, same format as training batches.

        Built once (in this process) from the validation split, with a fixed seed: every configuration sees
        the same documents in the same order (read and tokenized once), and the batches never change during a
        run, between runs, or between ranks -- every rank holds the same set, so agents running on each rank see
        the same losses.
        """
        if self._validation is None:
            config = self.config
            validation_config = replace(config, batch_size=config.validation_batch_size or config.batch_size)
            self._validation = {}
            keys = pair_keys(self.objectives, config)
            documents = CachedSource(self.validation_source,
                                     lambda item: read_item(item, self.validation_source, self.tokenizer, keys))
            for k, key in enumerate(self.keys):
                stream = BatchStream(documents, self.tokenizer, self.objectives, validation_config, "validation",
                                     stream=0, num_streams=1, rng_key=(config.seed, 1, k))
                one_hot = np.eye(len(self.keys))[k]
                self._validation[key] = [batch_to_torch(stream.next_batch(i, one_hot)[0])
                                         for i in range(config.num_validation_batches)]
        return self._validation

    # -- checkpointing -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly here: plain Python values (``torch.save``/JSON friendly)."""
        return {
            "version": STATE_VERSION, "keys": list(self.keys), "seed": self.config.seed, "rank": self.config.rank,
            "num_streams": self.config.num_streams, "next_index": self._next_index, "horizon": self._horizon,
            "schedule": [[start, probs.tolist()] for start, probs in self._schedule],
            "streams": [state.to_plain() for state in self._states],
            "stats": _stats_to_plain(self._stats),
            "window": _stats_to_plain(self._window),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of a pipeline with the same mixture, seed, rank and
        ``num_streams``); running workers are restarted from it."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"pipeline state version {state.get('version')!r}; this birdie reads {STATE_VERSION}")
        mine = {"keys": list(self.keys), "seed": self.config.seed, "rank": self.config.rank,
                "num_streams": self.config.num_streams}
        for name, value in mine.items():
            if state[name] != value:
                raise ValueError(f"pipeline state has {name}={state[name]!r} but this pipeline has {value!r}")
        self._close_workers()
        self._streams.clear()
        self._next_index, self._horizon = int(state["next_index"]), int(state["horizon"])
        self._schedule = [(int(s), np.asarray(p, dtype=np.float64)) for s, p in state["schedule"]]
        self._states = [StreamState.from_plain(s) for s in state["streams"]]
        self._stats = _stats_from(state["stats"])
        self._window = _stats_from(state["window"])

    # -- shutdown ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the workers (idempotent); the pipeline returns no more batches."""
        self._closed = True
        self._close_workers()

    def _close_workers(self) -> None:
        _close_pool(self.__dict__)

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _close_pool(attributes: dict[str, Any]) -> None:
    pool = attributes.get("_pool")
    attributes["_pool"] = None
    if pool is not None:
        pool.close()


def _stats_to_plain(stats: BatchStats) -> dict[str, Any]:
    return {f.name: getattr(stats, f.name) for f in fields(stats)} | {"objectives": stats.objectives.tolist()}


def _stats_from(entries: Mapping[str, Any]) -> BatchStats:
    values = dict(entries)
    values["objectives"] = np.asarray(values["objectives"], dtype=np.int64)
    return BatchStats(**values)


__all__ = ["Batch", "Pipeline", "PipelineConfig", "PipelineWorkerError"]
