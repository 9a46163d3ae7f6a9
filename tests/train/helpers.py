"""Shared helpers for the trainer tests: random packed batches with uneven target counts, the single-process
runtime, and comparing a multi-process run with one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from birdie.train.distributed import Runtime

VOCAB = 300
#: one process on the CPU, no mesh
SINGLE = Runtime(0, 1, 0, torch.device("cpu"), 1, 1, 1, None)


def random_batch(rows: int, length: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch in the pipeline's format: one segment per row, a random-length prefix without labels, so rows
    carry different numbers of target tokens."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (rows, length), generator=gen)
    label_ids = torch.randint(0, VOCAB, (rows, length), generator=gen)
    prefix = torch.randint(1, length - 1, (rows, 1), generator=gen)
    positions = torch.arange(length).expand(rows, length)
    label_ids = torch.where(positions < prefix, torch.full_like(label_ids, -100), label_ids)
    return {
        "input_ids": input_ids,
        "label_ids": label_ids,
        "attention_mask": (positions < prefix).long(),
        "segment_ids": torch.ones(rows, length, dtype=torch.long),
        "position_ids": positions.clone(),
    }


def rows(batch: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    return {k: v[start:stop] for k, v in batch.items()}


def assert_state_dicts_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                             atol: float) -> None:
    """The same keys, and every tensor within ``atol`` of the expected one (the failure names the key)."""
    assert set(actual) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=atol, rtol=0, msg=name)


class Box:
    """A checkpoint owner holding a plain dict: the tests' stand-in for the trainer's progress and data state."""

    def __init__(self, value: dict[str, Any] | None = None) -> None:
        self.value = dict(value or {})

    def state_dict(self) -> dict[str, Any]:
        return dict(self.value)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = dict(state)


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, shared: dict[str, Any] | None = None,
                   per_rank: dict[str, Any] | None = None) -> Any:
    """A :class:`~birdie.train.stateful.TrainingState` of ``model`` and ``optimizer`` (sharded), a ``progress`` box
    holding ``shared`` and a ``data`` box holding ``per_rank``."""
    from birdie.train.stateful import ModelState, OptimizerState, TrainingState

    return TrainingState(sharded={"model": ModelState(model), "optim": OptimizerState(model, optimizer)},
                         shared={"progress": Box(shared)}, per_rank={"data": Box(per_rank)})


def load_into_one_process(path: Path, preset: str, optimizer_config: Any
                          ) -> tuple[torch.nn.Module, torch.optim.Optimizer, dict[str, Any], dict[str, Any] | None]:
    """A fresh ``preset`` model and its optimizer with the checkpoint at ``path`` loaded in a single process;
    returns them with the checkpoint's shared state and this rank's own (None when the process count differs)."""
    from birdie.models import create
    from birdie.train.checkpoint import load_checkpoint
    from birdie.train.optim import build_optimizer

    model = create(preset, vocab_size=VOCAB)
    optimizer = build_optimizer(model, optimizer_config)
    states = training_state(model, optimizer)
    restored = load_checkpoint(path, states, SINGLE, trusted=True)
    own = states.per_rank["data"].value if restored.per_rank else None
    return model, optimizer, states.shared["progress"].value, own


def run_torchrun(script_and_args: list[str], nproc: int = 2, timeout: float = 120) -> "subprocess.CompletedProcess":
    """Run ``torchrun --standalone --nproc-per-node nproc ...`` in its own session; on timeout the whole process
    group is killed so no worker outlives the test."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           *script_and_args]
    process = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"torchrun timed out after {timeout} s:\n{stderr[-3000:]}") from None
    return subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr)


def tiny_config(out, **values):
    """A seconds-long run: a tiny preset, 256-token rows of the demo mixture, the Birdie agent deciding every
    2 steps with a small reward model; ``values`` are ``{"section.field": value}`` overrides."""
    from birdie.train.config_io import build_config, merge

    base = {
        "model.preset": "transformer-tiny",
        "curriculum.mixture": "demo",
        "curriculum.schedule.warmup_steps": 1, "curriculum.schedule.steps_between_evaluations": 2,
        "curriculum.num_validation_batches": 1, "curriculum.validation_batch_size": 2,
        "curriculum.reward_model.train_steps": 5, "curriculum.birdie_agent.num_candidates": 64,
        "train.steps": 4, "train.sequence_length": 256, "train.batch_size": 2, "train.device": "cpu",
        "train.out": str(out),
        "schedule.warmup_steps": 1,
        "logging.progress": False, "logging.plots": False, "logging.log_every": 1,
        "checkpoint.export": False,
    }
    return build_config(merge({}, {**base, **values}))
