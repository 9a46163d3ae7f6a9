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


def load_into_one_process(path: Path, preset: str, optimizer_config: Any
                          ) -> tuple[torch.nn.Module, torch.optim.Optimizer, dict[str, Any], dict[str, Any] | None]:
    """A fresh ``preset`` model and its optimizer with the checkpoint at ``path`` loaded in a single process;
    returns them with the checkpoint's shared and per-rank state."""
    from birdie.models import create
    from birdie.train.checkpoint import load_checkpoint
    from birdie.train.optim import build_optimizer

    model = create(preset, vocab_size=VOCAB)
    optimizer = build_optimizer(model, optimizer_config)
    shared, per_rank = load_checkpoint(path, model, optimizer, SINGLE)
    return model, optimizer, shared, per_rank


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
