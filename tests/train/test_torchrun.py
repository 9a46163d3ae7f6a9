"""`torchrun -m birdie train` end to end: two gloo ranks with FSDP2, one mixture, separate data shards."""

import numpy as np
import pytest
import torch

from birdie import load
from birdie.train.trainer import train

from tests.train.helpers import run_torchrun, tiny_config

AGENT = "{warmup_steps: 1, steps_between_evaluations: 2, num_validation_batches: 1, validation_batch_size: 2, " \
        "train_steps: 5, num_candidates: 64}"


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_rank_sharded_run_shares_the_mixture_and_resumes_in_one_process(tmp_path, capsys):
    out = tmp_path / "run"
    done = run_torchrun(["-m", "birdie", "train", "--model", "transformer-tiny", "--steps", "3", "--out", str(out),
                         "--train.batch_size", "4", "--train.sequence_length", "256", "--train.device", "cpu",
                         "--objectives.mixture", "demo", "--objectives.agent_options", AGENT,
                         "--schedule.warmup_steps", "1", "--logging.progress", "false", "--logging.plots", "false",
                         "--distributed.mesh", "1,-1,1"], timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    step = out / "checkpoints" / "step_000003"
    ranks = [torch.load(step / f"rank_{r}.pt", weights_only=False)["curriculum"] for r in (0, 1)]
    assert np.array_equal(ranks[0]["agent"]["action"], ranks[1]["agent"]["action"])
    assert ranks[0]["pipeline"] != ranks[1]["pipeline"]  # each rank reads its own shard
    model, _ = load(out / "export")
    assert model.config.family == "transformer"

    summary = train(tiny_config(out, **{"train.steps": 4, "train.batch_size": 4, "checkpoint.resume": "latest"}))
    assert summary.step == 4 and len(summary.losses) == 1
    assert "different number of processes" in capsys.readouterr().out
    # The agent carried on from rank 0's state (its evaluation at step 2), though the data stream started afresh.
    after = torch.load(out / "checkpoints" / "step_000004" / "rank_0.pt", weights_only=False)["curriculum"]
    assert after["agent"]["last_step"] == ranks[0]["agent"]["last_step"] == 2
    assert np.array_equal(after["agent"]["action"], ranks[0]["agent"]["action"])
    assert len(after["agent"]["history_rows"]) == len(ranks[0]["agent"]["history_rows"]) == 1
