"""Run under torchrun by test_distributed.py: train a few steps data-parallel (DDP) and sharded (FSDP2) on rank
slices of fixed global batches, then write the gathered weights and losses, and a sharded checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from birdie.models import create
from birdie.train.checkpoint import save_checkpoint
from birdie.train.config import DistributedConfig, OptimizerConfig
from birdie.train.distributed import apply_parallelism, init_runtime, shutdown
from birdie.train.optim import build_optimizer
from birdie.train.step import train_step

from tests.train.helpers import VOCAB, random_batch, rows, training_state

PRESET, STEPS, GLOBAL_BATCH, ACCUM = "hawk-tiny", 3, 8, 2


def run(mesh: str, out: Path) -> None:
    runtime = init_runtime(DistributedConfig(mesh=mesh), "cpu")
    torch.manual_seed(0)
    model = apply_parallelism(create(PRESET, vocab_size=VOCAB), runtime)
    optimizer = build_optimizer(model, OptimizerConfig(lr=1e-3))
    per_rank = GLOBAL_BATCH // runtime.data_world
    micro = per_rank // ACCUM
    losses = []
    for step in range(STEPS):
        mine = rows(random_batch(GLOBAL_BATCH, seed=step), runtime.data_rank * per_rank,
                    (runtime.data_rank + 1) * per_rank)
        micro_batches = [rows(mine, i, i + micro) for i in range(0, per_rank, micro)]
        losses.append(train_step(model, optimizer, micro_batches, runtime, grad_clip=1.0).loss)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if runtime.is_main:
        torch.save({"losses": losses, "state": full}, out / f"{mesh}.pt")
    save_checkpoint(out / f"ckpt-{mesh}", STEPS, training_state(model, optimizer, {"step": STEPS}), runtime)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for mesh_spec in sys.argv[2:]:
        run(mesh_spec, target)
    shutdown(init_runtime(DistributedConfig(), "cpu"))
