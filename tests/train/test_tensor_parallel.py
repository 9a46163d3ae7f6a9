"""Tensor parallelism for the Transformer: two gloo processes with ``distributed.mesh=1,1,2`` (each holding half
of every block's heads and MLP units) match one process on the same batch, and their sharded checkpoint loads
into one process.

Run directly under torchrun this file is also the worker: it trains, then writes the losses and gathered weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from birdie.models import create
from birdie.train.checkpoint import save_checkpoint
from birdie.train.config import ConfigError, DistributedConfig, OptimizerConfig
from birdie.train.distributed import Runtime, apply_parallelism, init_runtime, shutdown
from birdie.train.optim import build_optimizer
from birdie.train.step import train_step

from tests.train.helpers import (SINGLE, VOCAB, assert_state_dicts_close, load_into_one_process, random_batch, rows,
                                 run_torchrun, training_state)

ROOT = Path(__file__).resolve().parents[2]
PRESET, STEPS, BATCH, ACCUM, MESH = "transformer-tiny", 3, 4, 2, "1,1,2"


def train(runtime: Runtime) -> tuple[torch.nn.Module, torch.optim.Optimizer, list[float]]:
    """STEPS optimizer steps on fixed batches, ACCUM micro-batches each; every rank of a tp group sees them all."""
    torch.manual_seed(0)
    model = apply_parallelism(create(PRESET, vocab_size=VOCAB), runtime)
    optimizer = build_optimizer(model, OptimizerConfig(lr=1e-3, weight_decay=0.1))
    micro = BATCH // ACCUM
    losses = []
    for step in range(STEPS):
        batch = random_batch(BATCH, seed=step)
        micro_batches = [rows(batch, i, i + micro) for i in range(0, BATCH, micro)]
        losses.append(train_step(model, optimizer, micro_batches, runtime, grad_clip=1.0).loss)
    return model, optimizer, losses


def worker(out: Path) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.tensor import DTensor

    runtime = init_runtime(DistributedConfig(mesh=MESH), "cpu")
    model, optimizer, losses = train(runtime)
    in_proj = model.layers[0].attention.in_proj.weight
    local_rows = in_proj.to_local().shape[0] if isinstance(in_proj, DTensor) else in_proj.shape[0]
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if runtime.is_main:
        torch.save({"losses": losses, "state": full, "in_proj_local_rows": local_rows}, out / "tp.pt")
    save_checkpoint(out / "ckpt", STEPS, training_state(model, optimizer, {"step": STEPS}), runtime)
    shutdown(runtime)


@pytest.fixture(scope="module")
def single_process_reference():
    return train(SINGLE)


@pytest.fixture(scope="module")
def tensor_parallel_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tp")
    done = run_torchrun([str(Path(__file__)), str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_tensor_parallel_processes_match_one(tensor_parallel_run, single_process_reference):
    result = torch.load(tensor_parallel_run / "tp.pt")
    model, _, losses = single_process_reference
    attention = model.layers[0].attention
    # Each rank really holds half of q, k and v (whole heads), not a replica.
    assert result["in_proj_local_rows"] == attention.in_proj.weight.shape[0] // 2
    assert result["losses"] == pytest.approx(losses, abs=1e-5)
    assert_state_dicts_close(result["state"], model.state_dict(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_tensor_parallel_checkpoint_loads_into_one_process(tensor_parallel_run, single_process_reference):
    reference_model, reference_optimizer, _ = single_process_reference
    model, optimizer, shared, _ = load_into_one_process(tensor_parallel_run / "ckpt" / "step_000003", PRESET,
                                                        OptimizerConfig(lr=1e-3, weight_decay=0.1))
    assert shared["step"] == STEPS
    assert_state_dicts_close(model.state_dict(), reference_model.state_dict(), atol=1e-5)
    mine, theirs = optimizer.state_dict()["state"], reference_optimizer.state_dict()["state"]
    assert set(mine) == set(theirs)
    for index in mine:
        torch.testing.assert_close(mine[index]["exp_avg"], theirs[index]["exp_avg"], atol=1e-6, rtol=1e-3)


def test_only_families_with_a_plan_accept_tensor_parallel():
    plan = create(PRESET).tp_plan()
    assert set(plan) == {"attention.in_proj", "attention.out_proj", "feed_forward.w12", "feed_forward.w3"}
    for preset in ("hawk-tiny", "gated-ssm-tiny", "supra-tiny"):
        assert create(preset).tp_plan() is None
    tp_runtime = Runtime(0, 2, 0, torch.device("cpu"), 1, 1, 2, None)
    with pytest.raises(ConfigError, match="only the transformer family"):
        apply_parallelism(create("hawk-tiny"), tp_runtime)


def test_grouped_query_attention_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="n_kv_heads=2 != n_heads=4"):
        create(PRESET, n_kv_heads=2).tp_plan()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
