"""Pre-tokenized shards: write them once (``birdie data tokenize``), read them with no re-tokenization.

Layout of a shard directory::

    manifest.jsonl            one line per shard: {"shard": "shard_00000", "num_tokens": N, "num_sequences": M}
    meta.json                 {"format": "birdie-shards", "version": 1, "dtype": "uint16", "vocab_size": V, ...}
    shard_00000.tokens.npy    every document's ids, concatenated (uint16 when the vocabulary fits, else uint32)
    shard_00000.offsets.npy   int64, num_sequences + 1 entries: document i is tokens[offsets[i]:offsets[i+1]]

Why this format: ``.npy`` is numpy's own self-describing format, so a shard opens with ``np.load(mmap_mode="r")``
-- memory-mapped, zero-copy, shared between worker processes through the page cache -- and a document is a
slice. Any tool that reads ``.npy`` (numpy, torch, JAX) reads the shards; the manifest follows open_lm's
(``shard``, ``num_tokens``, ``num_sequences``). Documents are stored without eos; the pipeline appends it.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
from bisect import bisect_right
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from birdie.data.sources import IndexedSource, check_validation_fraction, default_text_grabber
from birdie.tokenizers import Tokenizer

MANIFEST = "manifest.jsonl"
META = "meta.json"
FORMAT = "birdie-shards"
VERSION = 1


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id below ``vocab_size``."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def write_shard(directory: str | os.PathLike, name: str, documents: Sequence[np.ndarray], dtype: np.dtype) -> dict:
    """Write one shard of token-id ``documents``; return its manifest entry."""
    lengths = np.array([len(d) for d in documents], dtype=np.int64)
    offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(documents).astype(dtype) if documents else np.zeros(0, dtype=dtype)
    np.save(Path(directory) / f"{name}.tokens.npy", tokens)
    np.save(Path(directory) / f"{name}.offsets.npy", offsets)
    return {"shard": name, "num_tokens": int(offsets[-1]), "num_sequences": len(documents)}


class ShardSource(IndexedSource):
    """Documents of a shard directory, as int32-compatible id arrays (memory-mapped; opened lazily per process).

    Args:
        directory: the directory ``birdie data tokenize`` wrote.
        validation_fraction: share of documents held out (split by :func:`~birdie.data.sources.split_hash` of
            the document's index across all shards).
    """

    def __init__(self, directory: str | os.PathLike, validation_fraction: float = 0.01) -> None:
        check_validation_fraction("ShardSource", validation_fraction)
        self.directory = Path(directory)
        if not (self.directory / MANIFEST).is_file():
            raise FileNotFoundError(f"{self.directory} has no {MANIFEST}; write shards with `birdie data tokenize`")
        self.manifest = [json.loads(line) for line in (self.directory / MANIFEST).read_text().splitlines() if line]
        self.meta = json.loads((self.directory / META).read_text()) if (self.directory / META).is_file() else {}
        if self.meta and self.meta.get("format") != FORMAT:
            raise ValueError(f"{self.directory / META} describes format {self.meta.get('format')!r}, not {FORMAT!r}")
        self.validation_fraction = validation_fraction
        counts = np.array([entry["num_sequences"] for entry in self.manifest], dtype=np.int64)
        # Python ints: item() runs per document, where bisect on a list costs a fraction of np.searchsorted.
        self._first = [0, *np.cumsum(counts).tolist()]

    @property
    def num_documents(self) -> int:
        return self._first[-1]

    def check_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Raise ValueError when the shards were written with a tokenizer of another vocabulary size."""
        written = self.meta.get("vocab_size")
        if written is not None and written != tokenizer.vocab_size:
            raise ValueError(
                f"the shards in {self.directory} were tokenized with a vocabulary of {written} ids, but the "
                f"pipeline's tokenizer has {tokenizer.vocab_size}; pass the tokenizer they were written with "
                "(meta.json records its spec) or re-tokenize"
            )

    @cached_property
    def _arrays(self) -> list[tuple[np.ndarray, np.ndarray]]:
        arrays = []
        for entry in self.manifest:
            # A plain ndarray view of the memory map: slicing it skips np.memmap's per-slice bookkeeping.
            tokens = np.asarray(np.load(self.directory / f"{entry['shard']}.tokens.npy", mmap_mode="r"))
            offsets = np.load(self.directory / f"{entry['shard']}.offsets.npy")
            if len(offsets) != entry["num_sequences"] + 1 or offsets[-1] != entry["num_tokens"]:
                raise ValueError(f"shard {entry['shard']} in {self.directory} does not match {MANIFEST}; rewrite it")
            arrays.append((tokens, offsets))
        return arrays

    def item(self, index: int) -> np.ndarray:
        shard = bisect_right(self._first, index) - 1
        tokens, offsets = self._arrays[shard]
        local = index - self._first[shard]
        return tokens[offsets[local]:offsets[local + 1]]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_arrays", None)  # memory maps are reopened by each process
        state.pop("_split_indices", None)  # and the split recomputed, rather than pickled
        return state


def _tokenize_range(task: tuple[int, int, int]) -> tuple[dict, int]:
    """Worker: tokenize documents ``[start, stop)`` of the job's corpus into shard ``index``."""
    index, start, stop = task
    job = _JOB
    texts, invalid = [], 0
    for item in _rows(job["corpus"], start, stop):
        text = job["grab"](item)
        if isinstance(text, str) and text.strip():
            texts.append(text)
        else:
            invalid += 1
    tokenizer = job["tokenizer"]
    encode_batch = getattr(tokenizer, "encode_batch", None)
    documents = encode_batch(texts) if encode_batch else [tokenizer.encode(t) for t in texts]
    documents = [d for d in documents if len(d)]
    return write_shard(job["out"], f"shard_{index:05d}", documents, job["dtype"]), invalid


def _rows(corpus: Any, start: int, stop: int) -> Any:
    if hasattr(corpus, "select"):  # a HF Dataset: slicing it would return columns, not rows
        return corpus.select(range(start, stop))
    return corpus[start:stop]


#: The corpus and settings of the running tokenize job; forked pool workers inherit it instead of pickling it.
_JOB: dict[str, Any] = {}


def tokenize_to_shards(
    corpus: Any, out: str | os.PathLike, tokenizer: Tokenizer, documents_per_shard: int = 10_000,
    num_workers: int = 1, text_grabber_fn: Callable[[Any], Any] | None = None, progress: bool = True,
) -> list[dict]:
    """Tokenize ``corpus`` (a list of texts/items or a HF ``Dataset``) into a shard directory, in parallel.

    Empty and non-text items are counted and left out. Returns the manifest entries.
    """
    from tqdm import tqdm

    if documents_per_shard < 1 or num_workers < 1:
        raise ValueError(f"documents_per_shard ({documents_per_shard}) and num_workers ({num_workers}) must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out / MANIFEST} exists; write the shards into a new directory")
    total = len(corpus)
    _JOB.update(corpus=corpus, grab=text_grabber_fn or default_text_grabber, tokenizer=tokenizer, out=out,
                dtype=token_dtype(tokenizer.vocab_size))
    tasks = [(i, start, min(start + documents_per_shard, total))
             for i, start in enumerate(range(0, total, documents_per_shard))]
    results: list[tuple[dict, int]] = []
    bar = tqdm(total=total, unit="doc", desc="tokenizing", disable=not progress)
    try:
        with mp.get_context("fork").Pool(num_workers) if num_workers > 1 else contextlib.nullcontext() as pool:
            mapped = map(_tokenize_range, tasks) if pool is None else pool.imap(_tokenize_range, tasks)
            for task, result in zip(tasks, mapped):
                results.append(result)
                bar.update(task[2] - task[1])
    finally:
        bar.close()
        _JOB.clear()
    manifest = [entry for entry, _ in results]
    invalid = sum(count for _, count in results)
    meta = {"format": FORMAT, "version": VERSION, "dtype": token_dtype(tokenizer.vocab_size).name,
            "vocab_size": tokenizer.vocab_size, "invalid_documents": invalid, "append_eos": False}
    spec = getattr(tokenizer, "spec", None)
    try:
        meta["tokenizer"] = spec() if spec else None
    except ValueError:
        meta["tokenizer"] = None
    (out / META).write_text(json.dumps(meta, indent=1))
    (out / MANIFEST).write_text("".join(json.dumps(entry) + "\n" for entry in manifest))
    return manifest
