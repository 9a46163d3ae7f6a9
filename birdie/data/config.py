"""The pipeline's settings, validated at construction (shared by the pipeline, its streams and its workers)."""

from __future__ import annotations

from dataclasses import dataclass

from birdie.checks import check


@dataclass(frozen=True)
class PipelineConfig:
    """Pipeline settings.

    Attributes:
        batch_size: rows per batch.
        sequence_length: positions per row.
        num_workers: worker processes; 0 produces batches in the training process (for debugging).
        seed: fixes the batch stream.
        rank, world_size: this process's place among data-parallel ranks; each rank reads its own documents.
        num_streams: document streams per rank; the batch stream does not depend on ``num_workers`` for a fixed
            value. Must be >= ``num_workers``; a multiple of it balances the load.
        prefetch: batches committed ahead of the consumer (>= 1); also fixes when a mixture change applies. Keep
            it >= ``num_workers`` so that every worker has work.
        min_segment_tokens: a batch is done when no row has this many free positions.
        max_consecutive_skips: an objective that skips this many samples in a row, or a source that yields this
            many unusable items in a row, stops the pipeline with an error.
        max_draws_per_piece: objective draws tried on one piece of a document before giving up on it.
        append_eos: end every document with ``specials.eos``.
        num_validation_batches: held-out batches per objective configuration.
        validation_batch_size: rows of a validation batch (default ``batch_size``).
        start_method: multiprocessing start method for the workers (default ``fork`` where available).
        batch_timeout_s: with workers, raise when the worker owing the next batch has delivered nothing for this
            long (a stuck source); None waits forever.
        prompt_key, completion_key: with a ``supervised`` objective in the mixture, a mapping item holding both
            keys is a prompt/completion pair (:mod:`birdie.data.pairs`).
        start_generating_ids: the separator between an example's prefix and target (the seeds'
            ``start_generating_paradigm``, encoded); None: the tokenizer's ``<|begin_generating|>`` id. A separator
            of ``s`` tokens makes every segment ``s - 1`` positions longer (:mod:`birdie.data.packing`).
    """

    batch_size: int = 8
    sequence_length: int = 2048
    num_workers: int = 0
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    num_streams: int = 8
    prefetch: int = 8
    min_segment_tokens: int = 8
    max_consecutive_skips: int = 1000
    max_draws_per_piece: int = 4
    append_eos: bool = True
    num_validation_batches: int = 2
    validation_batch_size: int | None = None
    start_method: str | None = None
    batch_timeout_s: float | None = 300.0
    prompt_key: str = "prefix"
    completion_key: str = "target"
    start_generating_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_streams", "prefetch", "min_segment_tokens", "max_consecutive_skips",
                     "max_draws_per_piece", "world_size"):
            check(self, name, getattr(self, name) >= 1, "must be >= 1")
        check(self, "sequence_length", self.sequence_length >= 2, "must be >= 2")
        check(self, "min_segment_tokens", self.min_segment_tokens <= self.sequence_length,
              "must be <= sequence_length")
        check(self, "num_workers", 0 <= self.num_workers <= self.num_streams,
              f"must be in [0, num_streams={self.num_streams}]; raise num_streams for more workers")
        check(self, "rank", 0 <= self.rank < self.world_size, f"must be in [0, world_size={self.world_size})")
        check(self, "num_validation_batches", self.num_validation_batches >= 0, "must be >= 0")
        check(self, "validation_batch_size", self.validation_batch_size is None or self.validation_batch_size >= 1,
              "must be >= 1 (or None for batch_size)")
        check(self, "batch_timeout_s", self.batch_timeout_s is None or self.batch_timeout_s > 0,
              "must be > 0 (or None)")
        for name in ("prompt_key", "completion_key"):
            value = getattr(self, name)
            check(self, name, isinstance(value, str) and value != "", "must be a non-empty string")
        check(self, "completion_key", self.prompt_key != self.completion_key, "must differ from prompt_key")
        if self.start_generating_ids is not None:
            object.__setattr__(self, "start_generating_ids", tuple(int(i) for i in self.start_generating_ids))
        check(self, "start_generating_ids", self.start_generating_ids is None
              or 1 <= len(self.start_generating_ids) < self.sequence_length - self.min_segment_tokens,
              "must be None or a non-empty tuple of token ids leaving room for examples in a row")
