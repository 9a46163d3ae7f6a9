"""``as_source``: whatever a user passes as ``source=`` (nothing, a callable, paths, a shard directory, a HF
dataset) -> a :class:`~birdie.data.sources.Source`.

It sits above every kind of source (the base classes in :mod:`birdie.data.sources`, the shards, the synthetic
stories), so none of them imports another's module to be picked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from birdie.data.shards import MANIFEST, ShardSource
from birdie.data.sources import CallableSource, DatasetSource, Source, TextGrabber, files_source
from birdie.data.stories import synthetic_stories


def as_source(obj: Any = None, text_grabber_fn: TextGrabber | None = None) -> Source:
    """Turn what a user passes into a :class:`Source`.

    ``None`` -> the embedded synthetic stories; a :class:`Source` -> itself; a directory with a shard
    ``manifest.jsonl`` (alone or as a one-element list, as a CLI passes it) -> :class:`ShardSource`; other
    paths/globs -> :func:`files_source`; a HF ``Dataset``/``IterableDataset`` -> :class:`DatasetSource`; a
    callable -> :class:`CallableSource`.
    """
    if obj is None:
        return CallableSource(synthetic_stories)
    if isinstance(obj, Source):
        return obj
    if isinstance(obj, (str, os.PathLike)) or (isinstance(obj, (list, tuple)) and obj and all(
            isinstance(p, (str, os.PathLike)) for p in obj)):
        single = obj[0] if isinstance(obj, (list, tuple)) and len(obj) == 1 else obj
        if isinstance(single, (str, os.PathLike)) and (Path(single) / MANIFEST).is_file():
            return ShardSource(single)
        for path in obj if isinstance(obj, (list, tuple)) else [obj]:
            if Path(path).is_dir() and any(Path(path).glob("*.tokens.npy")):
                raise FileNotFoundError(f"{path} holds shards (*.tokens.npy) but no {MANIFEST}, which lists them; "
                                        "restore it or re-run `birdie data tokenize` into a new directory")
        return files_source(obj, text_grabber_fn)
    if type(obj).__module__.startswith("datasets"):
        return DatasetSource(obj, text_grabber_fn)
    if callable(obj):
        return CallableSource(obj, text_grabber_fn)
    raise TypeError(
        f"cannot use {type(obj).__name__} as a data source: pass a callable ds(split, worker_id, num_workers, "
        "rng_seed), file paths or globs, a shard directory, or a HF Dataset/IterableDataset"
    )
