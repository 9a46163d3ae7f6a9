"""Document sources: where the pipeline's text (or token ids) comes from.

A :class:`Source` yields the documents of one *stream*: ``documents(split, stream, num_streams, epoch, seed,
start)``. The pipeline gives every (rank, stream) pair its own stream index, so ranks and streams never read the
same document, and a stream's documents do not depend on how many worker processes run.

Ready-made sources (:func:`birdie.data.source_dispatch.as_source` picks one for whatever a user passes):

* :class:`CallableSource` -- the seeds' contract, a callable ``ds(split, worker_id, num_workers, rng_seed)``
  returning an iterable, with ``text_grabber_fn(item) -> str`` (default ``item["text"]``, or the item itself
  when it is a string). The callable decides the split itself.
* :class:`DatasetSource` -- a HF ``datasets.Dataset`` (random access, reshuffled each epoch) or
  ``IterableDataset`` (streamed in order, split with ``split_dataset_by_node``).
* :func:`files_source` -- local ``.txt``/``.jsonl``/``.json``/``.parquet`` files or globs, loaded offline with HF
  ``datasets``.
* :class:`birdie.data.shards.ShardSource` -- pre-tokenized shards written by ``birdie data tokenize``.

Train/validation split for the sources birdie splits itself: document ``i`` (its index in the dataset, or in
its stream for iterable datasets) is a validation document exactly when ``split_hash(i) < validation_fraction``
(a fixed 64-bit mix of ``i``), so the two splits never share a document and the split never changes between
runs, ranks or worker counts.
"""

from __future__ import annotations

import abc
import glob
import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

SPLITS = ("train", "validation")
TextGrabber = Callable[[Any], Any]


def default_text_grabber(item: Any) -> Any:
    """``item["text"]`` for mappings; the item itself otherwise (a string, or an array of token ids)."""
    if isinstance(item, Mapping):
        return item.get("text")
    return item


def split_hash(indices: np.ndarray) -> np.ndarray:
    """A uniform value in [0, 1) per document index (splitmix64 finaliser): fixed, seed-free, vectorised."""
    x = np.asarray(indices, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def in_split(indices: np.ndarray, split: str, validation_fraction: float) -> np.ndarray:
    """Boolean mask of the ``indices`` that belong to ``split``."""
    check_split(split)
    is_validation = split_hash(indices) < validation_fraction
    return is_validation if split == "validation" else ~is_validation


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def check_validation_fraction(owner: str, validation_fraction: float) -> None:
    """Raise a ValueError naming ``owner`` unless ``validation_fraction`` is in [0, 1)."""
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"{owner}.validation_fraction={validation_fraction!r} must be in [0, 1) (the share of "
                         "documents held out for validation)")


def stream_seed(seed: int, epoch: int, stream: int) -> int:
    """A 32-bit seed for one (seed, epoch, stream), e.g. the ``rng_seed`` passed to a user's callable."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class Source(abc.ABC):
    """Documents for the pipeline. Subclasses implement :meth:`documents`; :meth:`extract` turns an item into a
    document (a ``str`` or a 1-D integer array of token ids), or anything else for an unusable item, which the
    pipeline counts and skips."""

    text_grabber_fn: TextGrabber = staticmethod(default_text_grabber)

    @abc.abstractmethod
    def documents(self, split: str, stream: int, num_streams: int, epoch: int, seed: int, start: int = 0) -> Iterator[Any]:
        """Items of one stream of ``split`` for one epoch, from the ``start``-th on (for resuming).

        Streams ``0..num_streams-1`` partition the split. ``epoch`` and ``seed`` fix the order.
        """

    def extract(self, item: Any) -> Any:
        return self.text_grabber_fn(item)


class CallableSource(Source):
    """The seeds' contract: ``fn(split, worker_id, num_workers, rng_seed) -> iterable``.

    ``worker_id``/``num_workers`` are the pipeline's stream index and stream count (``rank * num_streams +
    stream`` of ``world_size * num_streams``); ``rng_seed`` is the same for every stream and changes with the
    epoch, so the streams can partition one corpus. The callable owns the split: it must return disjoint
    documents for ``"train"`` and ``"validation"``.
    """

    def __init__(self, fn: Callable[..., Iterable[Any]], text_grabber_fn: TextGrabber | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"CallableSource needs a callable ds(split, worker_id, num_workers, rng_seed), got {fn!r}")
        self.fn = fn
        if text_grabber_fn is not None:
            self.text_grabber_fn = text_grabber_fn

    def documents(self, split, stream, num_streams, epoch, seed, start=0):
        check_split(split)
        items = self.fn(split, stream, num_streams, stream_seed(seed, epoch, 0))
        return itertools.islice(iter(items), start, None)


class IndexedSource(Source):
    """A source with random access to ``num_documents`` documents; splits by :func:`split_hash` of the index,
    deals a split's documents round-robin to the streams and reshuffles each stream's train documents per epoch
    (validation keeps a fixed order)."""

    validation_fraction: float = 0.01

    @property
    @abc.abstractmethod
    def num_documents(self) -> int:
        """How many documents the source holds."""

    @abc.abstractmethod
    def item(self, index: int) -> Any:
        """The ``index``-th document's item."""

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the documents of ``split``, ascending (computed once per process)."""
        cache = self.__dict__.setdefault("_split_indices", {})
        if split not in cache:
            indices = np.arange(self.num_documents, dtype=np.int64)
            cache[split] = indices[in_split(indices, split, self.validation_fraction)]
        return cache[split]

    def order(self, split: str, stream: int, num_streams: int, epoch: int, seed: int) -> np.ndarray:
        """Document indices of one stream in reading order."""
        indices = self.split_indices(split)[stream::num_streams]
        if split == "train":
            indices = np.random.default_rng(stream_seed(seed, epoch, stream)).permutation(indices)
        return indices

    def documents(self, split, stream, num_streams, epoch, seed, start=0):
        for index in self.order(split, stream, num_streams, epoch, seed)[start:]:
            yield self.item(int(index))


class DatasetSource(IndexedSource):
    """A HF ``datasets.Dataset`` (random access) or ``datasets.IterableDataset`` (streamed).

    Args:
        dataset: the dataset; items go through ``text_grabber_fn`` (default ``item["text"]``).
        validation_fraction: share of documents held out for validation (see the module docstring).
    """

    def __init__(self, dataset: Any, text_grabber_fn: TextGrabber | None = None, validation_fraction: float = 0.01) -> None:
        check_validation_fraction("DatasetSource", validation_fraction)
        self.dataset = dataset
        self.validation_fraction = validation_fraction
        self.streaming = not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__")
        if text_grabber_fn is not None:
            self.text_grabber_fn = text_grabber_fn

    @property
    def num_documents(self) -> int:
        if self.streaming:
            raise TypeError("a streamed IterableDataset has no document count")
        return len(self.dataset)

    def item(self, index: int) -> Any:
        return self.dataset[index]

    def documents(self, split, stream, num_streams, epoch, seed, start=0):
        if not self.streaming:
            return super().documents(split, stream, num_streams, epoch, seed, start)
        return itertools.islice(self._streamed(split, stream, num_streams), start, None)

    def _streamed(self, split: str, stream: int, num_streams: int) -> Iterator[Any]:
        from datasets.distributed import split_dataset_by_node

        check_split(split)
        part = split_dataset_by_node(self.dataset, rank=stream, world_size=num_streams)
        for index, item in enumerate(part):
            if in_split(np.array([index]), split, self.validation_fraction)[0]:
                yield item


class CachedSource(Source):
    """Remembers what ``inner`` yields, transformed by ``transform`` (e.g. read and tokenized; it receives the raw
    item), so that later passes over the same (split, stream, epoch) replay it instead of reading and tokenizing
    again. For small, repeatedly read sets such as the validation documents."""

    def __init__(self, inner: Source, transform: Callable[[Any], Any]) -> None:
        self.inner = inner
        self.transform = transform
        self._cache: dict[tuple, tuple[list[Any], Iterator[Any]]] = {}

    def documents(self, split, stream, num_streams, epoch, seed, start=0):
        key = (split, stream, num_streams, epoch, seed)
        if key not in self._cache:
            self._cache[key] = ([], iter(self.inner.documents(split, stream, num_streams, epoch, seed)))
        seen, items = self._cache[key]
        index = start
        while True:
            if index == len(seen):
                try:
                    seen.append(self.transform(next(items)))
                except StopIteration:
                    return
            yield seen[index]
            index += 1

    def extract(self, item: Any) -> Any:
        return item


FILE_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def expand_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Files named by ``paths`` (files, directories or glob patterns), sorted; a clear error when none exist."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[str] = []
    for item in items:
        text = str(item)
        if Path(text).is_dir():
            files += sorted(str(p) for p in Path(text).rglob("*") if p.suffix in FILE_BUILDERS)
        elif any(ch in text for ch in "*?["):
            files += sorted(glob.glob(text, recursive=True))
        elif Path(text).is_file():
            files.append(text)
        else:
            raise FileNotFoundError(f"no such file, directory or glob match: {text}")
    if not files:
        raise FileNotFoundError(f"no input files found in {items}; supported: {', '.join(FILE_BUILDERS)}")
    return files


def files_source(
    paths: str | os.PathLike | Sequence[str | os.PathLike], text_grabber_fn: TextGrabber | None = None,
    validation_fraction: float = 0.01, txt_sample_by: str = "paragraph",
) -> DatasetSource:
    """Local ``.txt``/``.jsonl``/``.json``/``.parquet`` files (or globs/directories of them), loaded with HF
    ``datasets`` offline. A ``.txt`` document is a paragraph by default (``txt_sample_by``: ``"line"``,
    ``"paragraph"`` or ``"document"`` = whole file); JSON and parquet rows go through ``text_grabber_fn``."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    files = expand_paths(paths)
    suffixes = {Path(f).suffix for f in files}
    unknown = suffixes - set(FILE_BUILDERS)
    if unknown:
        raise ValueError(f"unsupported file type(s) {sorted(unknown)}; supported: {', '.join(FILE_BUILDERS)}")
    builders = {FILE_BUILDERS[s] for s in suffixes}
    if len(builders) > 1:
        raise ValueError(f"mixed file types {sorted(suffixes)}: pass text, JSON and parquet files separately")
    builder = builders.pop()
    for file in files:
        if os.path.getsize(file) == 0:
            raise ValueError(f"{file} is empty; give it some text or leave it out of the data paths")
    # checked before loading: `datasets` accepts some non-UTF-8 JSON and fails only when a row is read
    problem = first_non_utf8(files) if builder in ("text", "json") else None
    if problem is not None:
        raise ValueError(problem)
    kwargs = {"sample_by": txt_sample_by} if builder == "text" else {}
    dataset = datasets.load_dataset(builder, data_files=files, split="train", **kwargs)
    return DatasetSource(dataset, text_grabber_fn, validation_fraction)


def first_non_utf8(files: Sequence[str], chunk_bytes: int = 1 << 20) -> str | None:
    """Why the first of ``files`` that is not valid UTF-8 is not (naming the file and the byte), or None."""
    import codecs

    for file in files:
        decoder = codecs.getincrementaldecoder("utf-8")()
        position = 0
        with open(file, "rb") as handle:
            while True:
                chunk = handle.read(chunk_bytes)
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    return (f"{file} is not UTF-8 text (byte {position + error.start}: {error.reason}); convert it "
                            "(e.g. `iconv -f latin1 -t utf-8`) or leave it out of the data paths")
                if not chunk:
                    break
                position += len(chunk)
    return None
