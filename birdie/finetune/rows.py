"""Where fine-tuning rows come from: JSONL files, or HF ``datasets`` (saved, local or from the hub), with renamed
columns mapped onto birdie's fields.

Each entry of ``data.paths`` is one of:

* a ``.jsonl`` file -- read line by line here (errors name the line; a non-UTF-8 line is an error);
* a ``.json`` or ``.parquet`` file -- loaded with ``datasets.load_dataset("json"|"parquet", data_files=...)``;
* a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` -- ``datasets.load_from_disk``;
* any other directory -- a local dataset (its data files, e.g. a clone of a hub dataset repository):
  ``datasets.load_dataset(directory)``, then the split ``data.split``;
* any other name (``org/name``, not a path that exists) -- a hub dataset, ``datasets.load_dataset(name)``, then
  the split. By default from the local HF cache only (offline, so a missing dataset is an immediate error, never a
  network wait); ``data.allow_download`` lets ``datasets`` download it.

``data.columns`` maps birdie's field names (:data:`birdie.finetune.config.ROW_FIELDS`) to the dataset's column
names, e.g. ``{messages: conversations}``; a mapped column missing from a row is an error naming it and the row's
columns. Rows are yielded as ``(where, row)`` for
:func:`birdie.finetune.datasets.load_sft` / :func:`~birdie.finetune.datasets.load_preferences`.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from birdie.finetune.config import ROW_FIELDS
from birdie.finetune.datasets import DataError, read_jsonl

#: File types loaded with a ``datasets`` builder (JSONL is read here, with line numbers).
BUILDERS = {".json": "json", ".parquet": "parquet"}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_FILE_TYPES = (".jsonl", *BUILDERS)


def check_columns(columns: Mapping[str, str]) -> None:
    """A clear error for a mapping key that is not one of :data:`~birdie.finetune.config.ROW_FIELDS`."""
    unknown = sorted(set(columns) - set(ROW_FIELDS))
    if unknown:
        raise DataError(f"data.columns: unknown field(s) {', '.join(unknown)}; map birdie's fields "
                        f"({', '.join(ROW_FIELDS)}) to your dataset's column names, e.g. {{messages: conversations}}")


def rename(row: dict[str, Any], columns: Mapping[str, str], where: str) -> dict[str, Any]:
    """``row`` with each mapped column under birdie's field name (other columns kept as they are)."""
    if not columns:
        return row
    missing = [column for column in columns.values() if column not in row]
    if missing:
        raise DataError(f"{where}: no column {missing[0]!r} (data.columns maps it); the row's columns are "
                        f"{sorted(row)}")
    renamed = {key: value for key, value in row.items() if key not in columns.values()}
    renamed.update({field: row[column] for field, column in columns.items()})
    return renamed


def read_rows(spec: str, columns: Mapping[str, str] | None = None, split: str = "train",
              allow_download: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every row of ``spec`` (see the module docstring for what ``spec`` may be)."""
    columns = dict(columns or {})
    check_columns(columns)
    path = Path(spec)
    if path.is_file() and path.suffix == ".jsonl":
        rows = read_jsonl(path)
    elif path.is_file() and path.suffix in BUILDERS:
        rows = _dataset_rows(spec, _load_file(path))
    elif path.is_file():
        raise DataError(f"{spec}: unsupported file type {path.suffix!r}; give a .jsonl, .json or .parquet file, a "
                        "dataset directory or a hub dataset name")
    elif path.is_dir():
        rows = _dataset_rows(spec, _load_directory(path, split))
    elif _HUB_NAME.match(spec) and path.suffix not in _FILE_TYPES:
        rows = _dataset_rows(spec, _load_hub(spec, split, allow_download))
    else:
        raise DataError(f"{spec}: no such file or directory; give a .jsonl/.json/.parquet file, a dataset directory "
                        "(Dataset.save_to_disk or data files) or a hub dataset name (org/name)")
    return ((where, rename(row, columns, where)) for where, row in rows)


def _datasets() -> Any:
    # local loads never need the network; set before `datasets` is imported (it reads these once)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    return datasets


def _pick_split(loaded: Any, split: str, spec: str) -> Any:
    if hasattr(loaded, "keys"):  # a DatasetDict
        if split not in loaded:
            raise DataError(f"{spec}: no split {split!r}; it has {', '.join(loaded)} (set data.split)")
        return loaded[split]
    return loaded


def _load_file(path: Path) -> Any:
    from birdie.data.sources import first_non_utf8

    problem = first_non_utf8([str(path)]) if path.suffix == ".json" else None
    if problem is not None:
        raise DataError(problem)
    return _datasets().load_dataset(BUILDERS[path.suffix], data_files=str(path), split="train")


def _load_directory(path: Path, split: str) -> Any:
    datasets = _datasets()
    saved = (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()
    if saved:
        return _pick_split(datasets.load_from_disk(str(path)), split, str(path))
    try:
        loaded = datasets.load_dataset(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise DataError(f"{path}: not a dataset directory ({error}); give a directory written by "
                        "Dataset.save_to_disk or one holding .jsonl/.json/.parquet data files") from None
    return _pick_split(loaded, split, str(path))


@contextmanager
def _hub_offline(datasets: Any, offline: bool) -> Iterator[None]:
    """Offline (or not) for this load, whenever `datasets` was imported: both libraries read their module flag at
    call time (the environment variables only at import)."""
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = offline
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _load_hub(name: str, split: str, allow_download: bool) -> Any:
    datasets = _datasets()
    try:
        with _hub_offline(datasets, not allow_download):
            loaded = datasets.load_dataset(name)
    except (ConnectionError, FileNotFoundError, ValueError, OSError) as error:
        how = ("check the name and your network" if allow_download else
               "it is not in the local HF datasets cache (hub datasets load offline by default); download it once "
               "with --data.allow_download true, or save it with Dataset.save_to_disk and pass the directory")
        raise DataError(f"{name}: no such file or directory, nor a loadable hub dataset ({type(error).__name__}); "
                        f"{how}") from None
    return _pick_split(loaded, split, name)


def _dataset_rows(spec: str, dataset: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for index, row in enumerate(dataset):
        yield f"{spec} row {index}", dict(row)
