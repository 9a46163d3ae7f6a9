"""A run directory (``train.out``): who may write into it, and its logs kept consistent with its checkpoints.

A directory already holding a run (a config, logs, checkpoints or an export) is only continued (``--resume``) or
replaced on request (``--overwrite``, which removes that run's files first, and nothing else); a run never writes
over another one by accident. :class:`LogPositions` is a checkpoint owner: it records how long each log was when
the checkpoint was saved and cuts the logs back to that on resume, so that a run resumed after a crash does not
keep the lines the crashed run wrote after its last checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from birdie.train.config import ConfigError

#: what a run writes directly under its directory (and what ``--overwrite`` removes)
RUN_FILES = ("config.yaml", "metrics.jsonl", "decisions.jsonl", "checkpoints", "export", "plots", "tensorboard",
             "wandb")
#: the logs that :class:`LogPositions` keeps consistent with the checkpoints
LOGS = ("metrics.jsonl", "decisions.jsonl")


def prepare_run_dir(out: str | Path, resume: bool, overwrite: bool, delete: bool = True) -> list[str]:
    """Check that a new run may write into ``out`` (every rank calls it before anything is written).

    A fresh run (``resume`` False) into a directory holding another run raises :class:`ConfigError` unless
    ``overwrite``; then the process with ``delete`` (rank 0) removes that run's files (:data:`RUN_FILES`, nothing
    else). Returns the names found.
    """
    out = Path(out)
    if resume and overwrite:
        raise ConfigError("checkpoint.resume and train.overwrite exclude each other: --resume continues the run in "
                          f"{out}, --overwrite deletes it; pass one")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume or not existing:
        return []
    if not overwrite:
        raise ConfigError(f"train.out={str(out)!r} holds another run ({', '.join(existing)}); pass --resume latest "
                          "to continue it, --overwrite to delete it and start again, or another --out")
    for name in existing if delete else ():
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return existing


class LogPositions:
    """Checkpoint owner (shared, rank 0's files): the byte length of each log in :data:`LOGS` at the save."""

    def __init__(self, out: str | Path, is_main: bool) -> None:
        self.out, self.is_main = Path(out), is_main

    def state_dict(self) -> dict[str, Any]:
        return {name: (self.out / name).stat().st_size if (self.out / name).is_file() else 0 for name in LOGS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Cut every log back to its length at the save (on rank 0, which writes them)."""
        if not self.is_main:
            return
        for name, size in state.items():
            path = self.out / name
            if not path.is_file():
                if size:
                    print(f"warning: {path} is gone; it restarts empty (the checkpoint saw {size} bytes)")
                continue
            current = path.stat().st_size
            if current < size:
                raise ConfigError(f"{path} is shorter ({current} bytes) than when the checkpoint was saved ({size}); "
                                  "it was edited or replaced: restore it, or delete it to restart the log")
            with path.open("r+b") as handle:
                handle.truncate(size)
