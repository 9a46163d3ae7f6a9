"""Two gloo processes (DDP, and FSDP2) match one process holding the same global batch; a checkpoint sharded over
two processes loads into one."""

from pathlib import Path

import pytest
import torch

from birdie.models import create
from birdie.train.config import ConfigError, OptimizerConfig
from birdie.train.distributed import parse_mesh
from birdie.train.optim import build_optimizer
from birdie.train.step import train_step

from tests.train import distributed_worker as worker
from tests.train.helpers import (SINGLE, VOCAB, assert_state_dicts_close, load_into_one_process, random_batch,
                                 run_torchrun)

ROOT = Path(__file__).resolve().parents[2]
MESHES = ("2,1,1", "1,2,1")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    done = run_torchrun([str(ROOT / "tests/train/distributed_worker.py"), str(out), *MESHES])
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def single_process_reference():
    torch.manual_seed(0)
    model = create(worker.PRESET, vocab_size=VOCAB)
    optimizer = build_optimizer(model, OptimizerConfig(lr=1e-3))
    losses = [train_step(model, optimizer, [random_batch(worker.GLOBAL_BATCH, seed=s)], SINGLE, grad_clip=1.0).loss
              for s in range(worker.STEPS)]
    return model, optimizer, losses


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.parametrize("mesh", MESHES)
def test_two_processes_match_one_with_the_same_global_batch(two_process_run, single_process_reference, mesh):
    model, _, losses = single_process_reference
    result = torch.load(two_process_run / f"{mesh}.pt")
    assert result["losses"] == pytest.approx(losses, abs=1e-5)
    assert_state_dicts_close(result["state"], model.state_dict(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_sharded_checkpoint_loads_into_a_different_process_count(two_process_run, single_process_reference):
    reference_model, reference_optimizer, _ = single_process_reference
    model, optimizer, shared, per_rank = load_into_one_process(two_process_run / "ckpt-1,2,1" / "step_000003",
                                                               worker.PRESET, OptimizerConfig(lr=1e-3))
    assert shared["step"] == worker.STEPS and per_rank is None  # written by 2 processes, read by 1
    assert_state_dicts_close(model.state_dict(), reference_model.state_dict(), atol=1e-5)
    mine, theirs = optimizer.state_dict()["state"], reference_optimizer.state_dict()["state"]
    assert set(mine) == set(theirs)
    for index in mine:
        assert int(mine[index]["step"]) == worker.STEPS
        torch.testing.assert_close(mine[index]["exp_avg_sq"], theirs[index]["exp_avg_sq"], atol=1e-8, rtol=1e-3)


def test_mesh_parsing_infers_one_dimension_and_rejects_bad_products():
    assert parse_mesh("-1,1,1", 4) == (4, 1, 1)
    assert parse_mesh("1,-1,2", 8) == (1, 4, 2)
    with pytest.raises(ConfigError, match="distributed.mesh"):
        parse_mesh("2,2,1", 2)
    with pytest.raises(ConfigError, match="not divisible"):
        parse_mesh("-1,3,1", 4)
