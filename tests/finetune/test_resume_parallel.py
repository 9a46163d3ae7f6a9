"""Exact resume, and data-parallel runs (2 gloo processes, DDP and FSDP2) equal to one process."""

import shutil

import pytest
import torch

from birdie.train.export import read_weights

from tests.finetune.helpers import QUICK, make_base, max_difference, run
from tests.train.helpers import run_torchrun


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("base") / "export")


@pytest.mark.parametrize("command", ["sft", "dpo"])
def test_resume_is_bit_exact(base, tmp_path, command):
    whole = run(command, base, tmp_path / "whole", "--steps", "4")
    run(command, base, tmp_path / "cut", "--steps", "4", "--save-every", "2", "--checkpoint.milestone_every", "2",
        "--checkpoint.export", "false")
    # a run stopped after step 2 (its step-2 checkpoint), continued to step 4
    cut = tmp_path / "cut" / "checkpoints"
    (cut / "latest").write_text("step_000002\n")
    shutil.rmtree(cut / "step_000004")
    resumed = run(command, base, tmp_path / "cut", "--steps", "4", "--resume", "latest")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("command, mesh", [("sft", "2,1,1"), ("sft", "1,2,1"), ("dpo", "2,1,1"), ("dpo", "1,2,1")])
def test_two_processes_match_one(base, tmp_path, command, mesh):
    single = run(command, base, tmp_path / "one", "--steps", "3", "--train.grad_accum", "2",
                 "--train.batch_size", "8")
    done = run_torchrun(["-m", "birdie", command, "--pretrained", str(base), "--out", str(tmp_path / "two"),
                         *QUICK, "--steps", "3", "--train.grad_accum", "2", "--train.batch_size", "8",
                         "--mesh_dim", mesh], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert max_difference(single, read_weights(tmp_path / "two" / "export")) < 1e-5
