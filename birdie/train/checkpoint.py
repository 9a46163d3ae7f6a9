"""Full training-state checkpoints with ``torch.distributed.checkpoint`` (DCP), saved atomically.

Layout under ``OUT/checkpoints/``::

    step_000100/            one checkpoint: DCP files (.metadata, __RANK_0.distcp) for model + optimizer,
                            rank_RANK.pt with that rank's own state (pipeline position, RNGs), shared.pt (step,
                            scheduler, agent; written by rank 0) and meta.json (written last)
    latest                  text file naming the newest complete checkpoint directory

Sharded runs save and load without gathering: every rank writes its own shards and DCP reshards on load, so a
checkpoint written by N processes loads into M. A save goes to a ``.tmp-step_N`` directory that is renamed into
place only when complete, and ``latest`` is replaced with an atomic rename afterwards; a crash or ``kill -9`` at
any point leaves the previous checkpoint and pointer intact. Regular checkpoints are rotated (only the newest is
kept); milestones (every ``milestone_every`` steps) stay. The directory must be on a filesystem all ranks share.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from birdie.train.distributed import Runtime

META = "meta.json"
LATEST = "latest"


def rng_state() -> dict[str, Any]:
    """The Python, numpy and torch (CPU and CUDA) generator states of this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _single_process_quiet(runtime: Runtime) -> Iterator[None]:
    """Silence DCP's warning that it runs without a process group (intended in a single process)."""
    with warnings.catch_warnings():
        if runtime.world_size == 1:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def save_checkpoint(root: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    shared: dict[str, Any], per_rank: dict[str, Any], runtime: Runtime,
                    milestone_every: int = 0, write_extra: Callable[[Path], None] | None = None) -> Path:
    """Save the training state at ``step`` under ``root`` and point ``root/latest`` at it.

    Args:
        model, optimizer: saved sharded through DCP (all ranks take part).
        shared: state identical on every rank (step, scheduler, agent); rank 0 writes it.
        per_rank: this rank's own state (pipeline position, RNGs).
        milestone_every: keep checkpoints whose step is a multiple of it; other older ones are deleted.
        write_extra: called by rank 0 with the unfinished directory to add files (model config, tokenizer).

    Returns the checkpoint directory.
    """
    root = Path(root)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{final.name}"
    if runtime.is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    runtime.barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    with _single_process_quiet(runtime):
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp), no_dist=runtime.world_size == 1)
    torch.save(per_rank, tmp / f"rank_{runtime.rank}.pt")
    if runtime.is_main:
        torch.save(shared, tmp / "shared.pt")
        if write_extra is not None:
            write_extra(tmp)
    runtime.barrier()
    if runtime.is_main:
        (tmp / META).write_text(json.dumps({"step": step, "world_size": runtime.world_size}))
        _fsync_dir(tmp)
        if final.exists():
            stale = root / f".old-{final.name}"
            shutil.rmtree(stale, ignore_errors=True)
            os.replace(final, stale)
            shutil.rmtree(stale)
        os.replace(tmp, final)
        _write_latest(root, final.name)
        _rotate(root, keep=final.name, milestone_every=milestone_every)
    runtime.barrier()
    return final


def _fsync_dir(path: Path) -> None:
    for item in path.iterdir():
        with open(item, "rb") as handle:
            os.fsync(handle.fileno())


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


def resolve_checkpoint(spec: str, out_dir: str | Path) -> Path:
    """``'latest'`` -> the checkpoint ``OUT/checkpoints/latest`` names; otherwise ``spec`` as a directory.

    Raises FileNotFoundError (naming what was looked for) when there is no complete checkpoint.
    """
    if spec == LATEST:
        root = Path(out_dir) / "checkpoints"
        pointer = root / LATEST
        if not pointer.is_file():
            raise FileNotFoundError(f"--resume latest: no checkpoint under {root} (no {pointer}); train without "
                                    "--resume first or pass a checkpoint directory")
        path = root / pointer.read_text().strip()
    else:
        path = Path(spec)
        if (path / LATEST).is_file():
            path = path / (path / LATEST).read_text().strip()
        elif (path / "checkpoints" / LATEST).is_file():
            path = path / "checkpoints" / (path / "checkpoints" / LATEST).read_text().strip()
    if not (path / META).is_file():
        raise FileNotFoundError(f"{path} is not a complete birdie checkpoint (no {META})")
    return path


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    runtime: Runtime) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Load model (and optimizer) state in place from ``path``, resharding to this run's layout.

    Returns ``(shared, per_rank)``: the shared state, and this rank's own state when the checkpoint was written by
    the same number of processes (None otherwise: a different process count cannot resume the data position).
    """
    path = Path(path)
    meta = json.loads((path / META).read_text())
    model_state, optim_state = get_state_dict(model, optimizer) if optimizer is not None else (
        get_state_dict(model, [])[0], None)
    state = {"model": model_state}
    if optimizer is not None:
        state["optim"] = optim_state
    with _single_process_quiet(runtime):
        dcp.load(state, checkpoint_id=str(path), no_dist=runtime.world_size == 1)
    set_state_dict(model, optimizer if optimizer is not None else [], model_state_dict=state["model"],
                   optim_state_dict=state.get("optim", {}))
    shared = torch.load(path / "shared.pt", weights_only=False)
    rank_file = path / f"rank_{runtime.rank}.pt"
    same_layout = meta["world_size"] == runtime.world_size and rank_file.is_file()
    per_rank = torch.load(rank_file, weights_only=False) if same_layout else None
    return shared, per_rank


def read_rank0_state(path: str | Path) -> dict[str, Any] | None:
    """Rank 0's own state in the checkpoint at ``path`` (None when the file is missing): what every rank of a run
    with another process count needs to continue the curriculum agent."""
    rank_file = Path(path) / "rank_0.pt"
    return torch.load(rank_file, weights_only=False) if rank_file.is_file() else None
