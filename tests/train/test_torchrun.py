"""`torchrun -m birdie train` end to end: two gloo ranks with FSDP2, one mixture, separate data shards."""

import numpy as np
import pytest

from birdie import load
from birdie.train.integrity import load_side_file
from birdie.train.stateful import decode_state
from birdie.train.trainer import train

from tests.train.helpers import run_torchrun, tiny_config

CURRICULUM = ["--curriculum.mixture", "demo", "--curriculum.schedule.warmup_steps", "1",
              "--curriculum.schedule.steps_between_evaluations", "2", "--curriculum.num_validation_batches", "1",
              "--curriculum.validation_batch_size", "2", "--curriculum.reward_model.train_steps", "5",
              "--curriculum.birdie_agent.num_candidates", "64"]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_rank_sharded_run_shares_the_mixture_and_resumes_in_one_process(tmp_path, capsys):
    out = tmp_path / "run"
    done = run_torchrun(["-m", "birdie", "train", "--model", "transformer-tiny", "--steps", "3", "--out", str(out),
                         "--train.batch_size", "4", "--train.sequence_length", "256", "--train.device", "cpu",
                         *CURRICULUM,
                         "--schedule.warmup_steps", "1", "--logging.progress", "false", "--logging.plots", "false",
                         "--distributed.mesh", "1,-1,1"], timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    step = out / "checkpoints" / "step_000003"
    agent = decode_state(load_side_file(step / "shared.pt"))["agent"]["agent"]  # one copy, shared by the ranks
    ranks = [decode_state(load_side_file(step / f"rank_{r}.pt"))["data"] for r in (0, 1)]
    assert ranks[0]["pipeline"] != ranks[1]["pipeline"]  # each rank reads its own shard
    model, _ = load(out / "export")
    assert model.config.family == "transformer"

    summary = train(tiny_config(out, **{"train.steps": 4, "train.batch_size": 4, "checkpoint.resume": "latest"}))
    assert summary.step == 4 and len(summary.losses) == 1
    assert "written by 2 process(es) and this run has 1" in capsys.readouterr().out
    # The agent carried on (its evaluation at step 2), though the data stream started afresh.
    after = decode_state(load_side_file(out / "checkpoints" / "step_000004" / "shared.pt"))["agent"]["agent"]
    assert after["last_step"] == agent["last_step"] == 2
    assert np.array_equal(after["action"], agent["action"])
    assert len(after["history_rows"]) == len(agent["history_rows"]) == 1
