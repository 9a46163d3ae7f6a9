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
    for document in documents:
        if np.asarray(document).dtype.kind not in "iu":
            raise TypeError(f"shard {name}: token ids must be integers, got a {np.asarray(document).dtype} document")
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
        self.manifest = read_manifest(self.directory)
        self.meta = json.loads((self.directory / META).read_text()) if (self.directory / META).is_file() else {}
        if self.meta and self.meta.get("format") != FORMAT:
            raise ValueError(f"{self.directory / META} describes format {self.meta.get('format')!r}, not {FORMAT!r}")
        self.validation_fraction = validation_fraction
        self.vocab_size: int | None = self.meta.get("vocab_size")
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
        self.vocab_size = tokenizer.vocab_size

    @cached_property
    def _arrays(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every shard's (tokens, offsets), opened and checked (see :func:`open_shard`) once per process."""
        return [open_shard(self.directory, entry) for entry in self.manifest]

    def item(self, index: int) -> np.ndarray:
        shard = bisect_right(self._first, index) - 1
        tokens, offsets = self._arrays[shard]
        local = index - self._first[shard]
        document = tokens[offsets[local]:offsets[local + 1]]
        vocab = self.vocab_size
        if vocab is not None and len(document) and (document.max() >= vocab or document.min() < 0):
            bad = int(document[(document >= vocab) | (document < 0)][0])
            name = self.directory / f"{self.manifest[shard]['shard']}.tokens.npy"
            raise ValueError(f"{name}: document {local} holds token id {bad}, outside the vocabulary [0, {vocab}); "
                             "the file is corrupt or was written with another tokenizer: re-tokenize")
        return document

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_arrays", None)  # memory maps are reopened by each process
        state.pop("_split_indices", None)  # and the split recomputed, rather than pickled
        return state


def new_shard_directory(out: str | os.PathLike) -> Path:
    """``out``, created if missing; a :class:`FileExistsError` when it already holds a ``manifest.jsonl`` (shards
    are written into a new directory, never over another set's)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out / MANIFEST} exists; write the shards into a new directory")
    return out


def read_manifest(directory: Path) -> list[dict]:
    """The entries of ``directory/manifest.jsonl``, each checked: a shard name that stays inside ``directory``
    and non-negative integer counts (a ValueError names the line otherwise)."""
    entries = []
    for number, line in enumerate((directory / MANIFEST).read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{directory / MANIFEST} line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where} is not JSON ({error}); rewrite the shards") from None
        name = entry.get("shard") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
            raise ValueError(f"{where}: shard {name!r} must be a file name inside {directory}, not a path")
        for key in ("num_tokens", "num_sequences"):
            value = entry.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{where}: {key}={value!r} must be an integer >= 0")
        entries.append(entry)
    return entries


def open_shard(directory: Path, entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """A shard's tokens (memory-mapped) and offsets, checked against each other and the manifest ``entry``:
    integer ids, int offsets starting at 0, never decreasing, ending at the token count. A ValueError names the
    file otherwise (a flipped byte in an offsets file would read the wrong documents)."""
    arrays = []
    for kind in ("tokens", "offsets"):
        path = directory / f"{entry['shard']}.{kind}.npy"
        try:
            # A plain ndarray view of the memory map: slicing it skips np.memmap's per-slice bookkeeping.
            array = np.asarray(np.load(path, mmap_mode="r" if kind == "tokens" else None, allow_pickle=False))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} cannot be read ({error}); the shard is missing or corrupt: rewrite it") from None
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ValueError(f"{path} holds a {array.dtype} array of shape {array.shape}, not 1-D integer "
                             f"{kind}; the shard is corrupt: rewrite it")
        arrays.append((path, array))
    (tokens_path, tokens), (offsets_path, offsets) = arrays
    problem = None
    steps = np.diff(offsets.astype(np.int64))
    if len(offsets) != entry["num_sequences"] + 1:
        problem = f"has {len(offsets)} entries, but {MANIFEST} lists {entry['num_sequences']} documents (+1)"
    elif offsets[0] != 0:
        problem = f"starts at {offsets[0]}, not 0"
    elif (steps < 0).any():
        at = int(np.argmax(steps < 0))
        problem = f"decreases at entry {at + 1} ({offsets[at]} -> {offsets[at + 1]})"
    elif offsets[-1] != len(tokens) or len(tokens) != entry["num_tokens"]:
        problem = (f"ends at {offsets[-1]}, but {tokens_path.name} holds {len(tokens)} tokens and {MANIFEST} "
                   f"lists {entry['num_tokens']}")
    if problem is not None:
        raise ValueError(f"{offsets_path} {problem}; the shard is corrupt: rewrite it")
    return tokens, offsets


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
    out = new_shard_directory(out)
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
