"""Full training-state checkpoints gathered from the state owners (:mod:`birdie.train.stateful`), saved atomically.

Layout under ``OUT/checkpoints/``::

    step_000100/            one checkpoint: DCP files (.metadata, __RANK_0.distcp) of the sharded owners (model,
                            optimizer); shared.pt (the shared owners: progress, schedule, curriculum agent, log
                            positions; written once by rank 0); rank_RANK.pt (each rank's own: data position,
                            RNGs); config.json / tokenizer.json / training.json (so the directory loads as a model);
                            meta.json; manifest.json (size and checksum of every file, written last)
    latest                  text file naming the newest complete checkpoint directory

Sharded runs save and load without gathering: every rank writes its own shards and DCP reshards on load, so a
checkpoint written by N processes loads into M; the per-rank owners then keep their fresh state (the data stream
restarts) while everything else continues. A save goes to a ``.tmp-step_N`` directory that is renamed into place
only when complete, and ``latest`` is replaced with an atomic rename afterwards: a crash or ``kill -9`` at any point
leaves the previous checkpoint and pointer intact, a failed save removes its partial directory, and
:func:`remove_partial_saves` clears those a killed process left. Regular checkpoints are rotated (only the newest
is kept); milestones (every ``milestone_every`` steps) stay. The directory must be on a filesystem all ranks share.

Loading verifies the manifest first (naming a missing, truncated or corrupt file), compares the model's tensor
shapes with the checkpoint's, rejects non-finite weights, and reads the side files with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from birdie.train.distributed import Runtime
from birdie.train.integrity import (IntegrityError, check_finite, has_manifest, load_side_file, require_trust,
                                    verify_manifest, write_manifest)
from birdie.train.stateful import TrainingState, decode_state, encode_state

META = "meta.json"
LATEST = "latest"
SHARED = "shared.pt"
_STEP_DIR = re.compile(r"step_\d{6,}")


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved, or does not fit this run."""


@dataclass
class Restored:
    """What :func:`load_checkpoint` restored: the step, the writer's process count, and whether the per-rank
    owners (data position, RNGs) continue (False when the process count differs: they keep their fresh state)."""

    path: Path
    step: int
    world_size: int
    per_rank: bool


@contextlib.contextmanager
def _single_process_quiet(runtime: Runtime) -> Iterator[None]:
    """Silence DCP's warning that it runs without a process group (intended in a single process)."""
    with warnings.catch_warnings():
        if runtime.world_size == 1:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def save_checkpoint(root: str | Path, step: int, states: TrainingState, runtime: Runtime, milestone_every: int = 0,
                    files: Mapping[str, bytes] | None = None) -> Path:
    """Save every owner in ``states`` at ``step`` under ``root`` and point ``root/latest`` at it.

    Every rank calls it. ``files`` (name -> content) are written by rank 0 into the checkpoint as they are (the
    model config and tokenizer). Checkpoints older than this one are deleted unless their step is a multiple of
    ``milestone_every``. Returns the checkpoint directory; raises :class:`CheckpointError` when a write fails (the
    partial save is removed, the previous checkpoint stays).
    """
    root = Path(root)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{final.name}"
    try:
        if runtime.is_main:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        runtime.barrier()
        with _single_process_quiet(runtime):
            dcp.save(states.sharded, checkpoint_id=str(tmp), no_dist=runtime.world_size == 1)
        own = {name: encode_state(owner.state_dict()) for name, owner in states.per_rank.items()}
        torch.save(own, tmp / f"rank_{runtime.rank}.pt")
        if runtime.is_main:
            torch.save({name: encode_state(owner.state_dict()) for name, owner in states.shared.items()},
                       tmp / SHARED)
            for name, content in (files or {}).items():
                (tmp / name).write_bytes(content)
        runtime.barrier()
        if runtime.is_main:
            (tmp / META).write_text(json.dumps({"step": step, "world_size": runtime.world_size}))
            write_manifest(tmp)
            _fsync_files(tmp)
            _replace(tmp, final)
            _write_latest(root, final.name)
            _rotate(root, keep=final.name, milestone_every=milestone_every)
    except BaseException as error:
        if runtime.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, (Exception, CheckpointException)):  # DCP's exception is a BaseException
            raise CheckpointError(_save_failure(error, step, final)) from None
        raise
    runtime.barrier()
    return final


def _root_cause(error: BaseException) -> BaseException:
    """The first rank's own exception inside DCP's :class:`CheckpointException` (else ``error``)."""
    if isinstance(error, CheckpointException) and error.failures:
        return next(iter(error.failures.values()))[0]
    return error


def _one_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _save_failure(error: BaseException, step: int, final: Path) -> str:
    chain, cause = [], _root_cause(error)
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    # torch.save reports a full disk as "unexpected pos" from its zip writer, without an errno
    disk_full = any(getattr(e, "errno", None) == errno.ENOSPC or "No space left" in str(e)
                    or "unexpected pos" in str(e) for e in chain)
    reason = _one_line(chain[0])
    fix = ("the disk is full: free space (or use an --out on a larger disk) and continue with --resume latest"
           if disk_full else "fix the cause and continue with --resume latest")
    return (f"saving the checkpoint of step {step} to {final} failed ({reason}); the partial save was removed and "
            f"the previous checkpoint is intact; {fix}")


def _fsync_files(path: Path) -> None:
    for item in path.rglob("*"):
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())


def _replace(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` to ``final``, replacing an existing checkpoint of the same step."""
    if final.exists():
        stale = final.parent / f".old-{final.name}"
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(final, stale)
        shutil.rmtree(stale)
    os.replace(tmp, final)


def _write_latest(root: Path, name: str) -> None:
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(name + "\n")
    with open(pointer, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, root / LATEST)


def _rotate(root: Path, keep: str, milestone_every: int) -> None:
    for path in root.glob("step_*"):
        step = int(path.name.split("_")[1])
        is_milestone = milestone_every > 0 and step % milestone_every == 0
        if path.name != keep and not is_milestone:
            shutil.rmtree(path)


def remove_partial_saves(root: str | Path) -> list[Path]:
    """Delete the ``.tmp-*`` / ``.old-*`` directories a killed save left under ``root``; returns them."""
    root = Path(root)
    partial = [p for pattern in (".tmp-step_*", ".old-step_*", f".{LATEST}.tmp") for p in root.glob(pattern)]
    for path in partial:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return partial


def _follow_latest(root: Path) -> Path:
    """The checkpoint ``root/latest`` names; a name that is not a ``step_N`` directory inside ``root`` is refused."""
    pointer = root / LATEST
    name = pointer.read_text().strip()
    if not _STEP_DIR.fullmatch(name):
        raise IntegrityError(f"{pointer} names {name!r}, which is not a checkpoint directory inside {root}; the "
                             "pointer was edited or damaged: write a step_NNNNNN name into it or pass that "
                             "checkpoint directory instead")
    return root / name


def resolve_checkpoint(spec: str, out_dir: str | Path) -> Path:
    """``'latest'`` -> the checkpoint ``OUT/checkpoints/latest`` names; otherwise ``spec`` as a checkpoint,
    checkpoints or run directory.

    Raises FileNotFoundError (naming what was looked for) when there is no complete checkpoint.
    """
    if spec == LATEST:
        root = Path(out_dir) / "checkpoints"
        if not (root / LATEST).is_file():
            raise FileNotFoundError(f"--resume latest: no checkpoint under {root} (no {root / LATEST}); train "
                                    "without --resume first or pass a checkpoint directory")
        path = _follow_latest(root)
    else:
        path = Path(spec)
        if (path / LATEST).is_file():
            path = _follow_latest(path)
        elif (path / "checkpoints" / LATEST).is_file():
            path = _follow_latest(path / "checkpoints")
    if not (path / META).is_file() or not has_manifest(path):
        raise FileNotFoundError(f"{path} is not a complete birdie checkpoint (no {META} or manifest.json)")
    return path


def load_checkpoint(path: str | Path, states: TrainingState, runtime: Runtime, trusted: bool = False) -> Restored:
    """Load every owner in ``states`` in place from the checkpoint at ``path``, resharding to this run's layout.

    ``trusted``: the checkpoint is this run's own, or the user passed ``trust_checkpoint`` (DCP's ``.metadata``
    is unpickled). The files are verified against the manifest first. Shared owners are always restored; per-rank
    owners only when the checkpoint was written by the same number of processes (see :class:`Restored`).
    """
    path = Path(path)
    require_trust(path, trusted)
    verify_manifest(path, "checkpoint")
    meta = json.loads((path / META).read_text())
    if "model" in states.sharded:
        _check_model_shapes(path, states.sharded["model"].state_dict())
    with _single_process_quiet(runtime):
        try:
            dcp.load(states.sharded, checkpoint_id=str(path), no_dist=runtime.world_size == 1)
        except (Exception, CheckpointException) as error:
            raise CheckpointError(f"{path}: the DCP files cannot be read ({_one_line(_root_cause(error))}); the "
                                  "checkpoint is damaged, use another one") from None
    if "model" in states.sharded:
        check_finite(states.sharded["model"].state_dict().items(), path)
    _load_owners(path / SHARED, states.shared)
    same_layout = meta["world_size"] == runtime.world_size
    if same_layout:
        _load_owners(path / f"rank_{runtime.rank}.pt", states.per_rank)
    return Restored(path, int(meta["step"]), int(meta["world_size"]), same_layout)


def _load_owners(file: Path, owners: Mapping[str, object]) -> None:
    saved = load_side_file(file)
    for name, owner in owners.items():
        if not isinstance(saved, dict) or name not in saved:
            raise IntegrityError(f"{file} holds no state for {name!r}; the checkpoint was written by another "
                                 "version of birdie or damaged")
        owner.load_state_dict(decode_state(saved[name]))


def _check_model_shapes(path: Path, target: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` naming the first model tensors whose shape (or presence) differs."""
    entries = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
    saved = {key[len("model."):]: tuple(meta.size) for key, meta in entries.items()
             if key.startswith("model.") and isinstance(meta, TensorStorageMetadata)}
    problems = [f"{name!r} is {saved[name]} there but {tuple(value.shape)} here" for name, value in target.items()
                if name in saved and saved[name] != tuple(value.shape)]
    problems += [f"{name!r} is missing there" for name in target if name not in saved]
    problems += [f"{name!r} is not in this model" for name in saved if name not in target]
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise CheckpointError(f"{path} was written for another model: {'; '.join(problems[:2])}{more}; resume with "
                              "the model settings the run started with (its config.yaml), or start a new run "
                              "(another --out, or --overwrite)")


def read_model_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The model's full state dict (CPU tensors) from the checkpoint ``directory``, read (not gathered) on one
    process; optimizer state is not read. The caller has checked trust and the manifest."""
    reader = dcp.FileSystemReader(str(directory))
    entries = reader.read_metadata().state_dict_metadata
    model = {key[len("model."):]: torch.empty(meta.size, dtype=meta.properties.dtype)
             for key, meta in entries.items() if key.startswith("model.") and isinstance(meta, TensorStorageMetadata)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load({"model": model}, storage_reader=reader, no_dist=True)
    check_finite(model.items(), directory)
    return model
