"""open_lm's data format: webdataset tars of fixed-length token sequences plus a ``manifest.jsonl``.

Layout (open_lm's ``datapreprocess/ray/tokenize_shuffle.py``)::

    manifest.jsonl     one line per shard: {"shard": "00000001", "num_sequences": N}
    00000001.tar       N samples; sample KEY is the member KEY.json.gz = gzip(json.dumps([id, ...]))

Every sequence holds ``seq_len + 1`` ids (open_lm trains on inputs ``[:seq_len]`` and targets ``[1:]``); documents
are concatenated with an end-of-text id between them. Reading also accepts ``KEY.json`` (plain JSON) and
``KEY.txt`` (``str(list)``, ``make_2048.py``'s layout).

:class:`OpenLMSource` reads such shards for birdie's pipeline, each sequence one document:

* without replacement (``resampled=False``, open_lm's ``--dataset-manifest``): each epoch permutes the shards
  with the seed and deals them round-robin to the streams, which read their shards' samples in order (with
  fewer shards than streams, every stream reads all shards and keeps every num_streams-th sample);
* with replacement (``resampled=True``, open_lm's ``--dataset-resampled``): each stream draws shards i.i.d.
  and uniformly (``rng.choice``, open_lm's ``ResampledShards2``) from a generator seeded by (seed, epoch, stream)
  and reads each drawn shard's samples in order, without end.

Both orders are fixed by (seed, epoch, stream), so ``documents(..., start=k)`` resumes exactly at the k-th
sequence. The validation split holds the sequences whose (shard, position) hash falls below
``validation_fraction``, as :mod:`birdie.data.sources` splits documents.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from birdie.data.shards import MANIFEST, new_shard_directory
from birdie.data.sources import Source, check_split, check_validation_fraction, split_hash, stream_seed

_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """``shard_{00000..00002}.tar`` -> three names (zero padding kept); ``{a,b}`` -> alternatives."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        low, high = numeric.groups()
        options = [str(i).zfill(len(low)) for i in range(int(low), int(high) + 1)]
    else:
        options = body.split(",")
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [name for option in options for name in expand_braces(head + option + tail)]


def _is_remote(path: str) -> bool:
    return "://" in path


def _open(path: str):
    if _is_remote(path):
        try:
            import fsspec
        except ImportError:
            raise ImportError(f"{path} is remote: install fsspec (and its protocol's package) to read it") from None
        return fsspec.open(path, "rb").open()
    return open(path, "rb")


def resolve_shards(paths: Sequence[str]) -> tuple[list[str], list[int] | None]:
    """Shard URLs/paths from brace globs or ``manifest.jsonl`` files, and their sample counts (None unless every
    path was a manifest)."""
    shards: list[str] = []
    counts: list[int] | None = []
    for path in paths:
        text = str(path)
        if text.endswith(MANIFEST) or (not _is_remote(text) and Path(text).is_dir()):
            manifest = text if text.endswith(MANIFEST) else str(Path(text) / MANIFEST)
            with _open(manifest) as handle:
                entries = [json.loads(line) for line in handle.read().decode().splitlines() if line.strip()]
            root = manifest.rsplit("/", 1)[0] if "/" in manifest else "."
            for entry in entries:
                shards.append(f"{root}/{entry['shard']}.tar")
                counts = None if counts is None else counts + [int(entry.get("num_sequences",
                                                                            entry.get("num_chunks", 0)))]
        else:
            expanded = expand_braces(text)
            missing = [p for p in expanded if not _is_remote(p) and not Path(p).is_file()]
            if missing:
                raise FileNotFoundError(f"data.paths: {len(missing)} shard(s) of {text} do not exist, e.g. "
                                        f"{missing[0]}")
            shards += expanded
            counts = None
    if not shards:
        raise FileNotFoundError(f"data.paths={list(paths)} names no open_lm shards")
    return shards, counts


def _decode(name: str, data: bytes, shard: str) -> np.ndarray | None:
    """One member's token ids, or None for a member that is not a sequence (webdataset metadata)."""
    if name.endswith(".json.gz"):
        ids = json.loads(gzip.decompress(data))
    elif name.endswith(".json"):
        ids = json.loads(data)
    elif name.endswith(".txt"):
        ids = ast.literal_eval(data.decode())
    else:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ValueError(f"{shard}: member {name} is not a list of non-negative token ids")
    return np.asarray(ids, dtype=np.int32)


def read_shard(path: str) -> Iterator[np.ndarray]:
    """The sequences of one tar shard, in the order they are stored."""
    with _open(path) as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                ids = _decode(member.name, tar.extractfile(member).read(), path)
                if ids is not None:
                    yield ids


class OpenLMSource(Source):
    """open_lm tar shards as a birdie :class:`~birdie.data.sources.Source` (see the module docstring).

    Args:
        paths: brace globs of ``.tar`` files, ``manifest.jsonl`` files or directories holding one; local or
            remote (``s3://``, ``https://``: through ``fsspec``).
        resampled: draw shards with replacement (open_lm's ``--dataset-resampled``).
        validation_fraction: share of sequences held out for validation.
    """

    def __init__(self, paths: Sequence[str], resampled: bool = False, validation_fraction: float = 0.01) -> None:
        check_validation_fraction("OpenLMSource", validation_fraction)
        self.shards, self.counts = resolve_shards(list(paths))
        self.resampled = resampled
        self.validation_fraction = validation_fraction

    def shard_order(self, stream: int, num_streams: int, epoch: int, seed: int) -> Iterator[int]:
        """Indices of the shards one stream reads, in order (endless when resampled). With fewer shards than
        streams every stream reads every shard (and keeps its share of the samples, see :meth:`documents`)."""
        if self.resampled:
            rng = np.random.default_rng(stream_seed(seed, epoch, stream))
            while True:
                yield int(rng.choice(len(self.shards)))
        # One permutation per epoch shared by every stream, which then take every num_streams-th shard.
        order = np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(len(self.shards))
        yield from (int(i) for i in (order if self._shared(num_streams) else order[stream::num_streams]))

    def _shared(self, num_streams: int) -> bool:
        """Whether the streams share the shards (fewer shards than streams, without replacement)."""
        return not self.resampled and num_streams > len(self.shards)

    def _kept(self, shard: int, count: int, split: str) -> np.ndarray:
        """Which of a shard's ``count`` positions belong to ``split``."""
        keys = (np.uint64(shard) << np.uint64(32)) + np.arange(count, dtype=np.uint64)
        validation = split_hash(keys) < self.validation_fraction
        return validation if split == "validation" else ~validation

    def documents(self, split, stream, num_streams, epoch, seed, start=0):
        check_split(split)
        shared = self._shared(num_streams)
        skip, position = start, 0
        for shard in self.shard_order(stream, num_streams, epoch, seed):
            if self.counts is not None and skip and not shared:
                # Skip a whole shard without reading it when its kept samples are all before ``start``.
                kept = int(self._kept(shard, self.counts[shard], split).sum())
                if kept <= skip:
                    skip -= kept
                    continue
            sequences = list(read_shard(self.shards[shard]))
            for ids, keep in zip(sequences, self._kept(shard, len(sequences), split)):
                if not keep:
                    continue
                position += 1
                if shared and (position - 1) % num_streams != stream:
                    continue  # another stream's sample
                if skip:
                    skip -= 1
                    continue
                yield ids


def write_open_lm_shards(documents: Any, out: str | os.PathLike, eos: int, seq_len: int = 2048,
                         sequences_per_shard: int = 8192) -> dict[str, int]:
    """Concatenate token-id ``documents`` (each followed by ``eos``), cut them into ``seq_len + 1``-id sequences
    and write open_lm tars with ``manifest.jsonl`` into ``out``. The ids after the last full sequence are not
    written; the returned summary counts them (``leftover_tokens``)."""
    if seq_len < 1 or sequences_per_shard < 1:
        raise ValueError(f"seq_len ({seq_len}) and sequences_per_shard ({sequences_per_shard}) must be >= 1")
    out = new_shard_directory(out)
    width = seq_len + 1
    buffer: list[int] = []
    pending: list[list[int]] = []
    manifest: list[dict] = []
    total = 0

    def flush() -> None:
        name = f"{len(manifest) + 1:08d}"
        first = total - len(pending)  # global index of the shard's first sequence: the sample keys
        with tarfile.open(out / f"{name}.tar", "w") as tar:
            for offset, sequence in enumerate(pending):
                data = gzip.compress(json.dumps(sequence).encode(), mtime=0)
                info = tarfile.TarInfo(f"{first + offset:012d}.json.gz")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        manifest.append({"shard": name, "num_sequences": len(pending)})
        pending.clear()

    for document in documents:
        buffer.extend(int(i) for i in document)
        buffer.append(int(eos))
        while len(buffer) >= width:
            pending.append(buffer[:width])
            del buffer[:width]
            total += 1
            if len(pending) == sequences_per_shard:
                flush()
    if pending:
        flush()
    (out / MANIFEST).write_text("".join(json.dumps(entry) + "\n" for entry in manifest))
    return {"shards": len(manifest), "sequences": total, "leftover_tokens": len(buffer)}
