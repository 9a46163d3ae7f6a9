"""Phone-book fine-tuning sources sized for each scale, in the seeds' contract ``ds(split, worker_id, num_workers,
rng_seed)`` that ``data.source=callable`` imports by name (so the sizes live here, not in arguments).

They are :func:`birdie.eval.phonebook.phonebook_examples` with the scale's entries per book and queries per
book; their books never coincide with an evaluation set's (separate seed namespaces).
"""

from __future__ import annotations

from typing import Any, Iterator

from birdie.eval.phonebook import phonebook_examples
from birdie.experiment.plan import SCALES


def _books(scale: str, split: str, worker_id: int, num_workers: int, rng_seed: int) -> Iterator[dict[str, Any]]:
    low, high = SCALES[scale].book_entries
    return phonebook_examples(split, worker_id, num_workers, rng_seed, min_entries=low, max_entries=high,
                              max_queries=SCALES[scale].max_queries, number_digits=SCALES[scale].number_digits)


def cpu_books(split: str, worker_id: int, num_workers: int, rng_seed: int) -> Iterator[dict[str, Any]]:
    """Books of the ``cpu`` scale: 4-8 entries, 1-2 queries, all three layouts."""
    return _books("cpu", split, worker_id, num_workers, rng_seed)


def gpu_books(split: str, worker_id: int, num_workers: int, rng_seed: int) -> Iterator[dict[str, Any]]:
    """Books of the GPU ladder: 100-250 entries, 1-16 queries, all three layouts."""
    return _books("gpu", split, worker_id, num_workers, rng_seed)
