"""A run stopped at step k and resumed equals the uninterrupted run: bit-identical losses, weights, decisions."""

import json
import multiprocessing

import pytest
import torch

from birdie.train.checkpoint import resolve_checkpoint
from birdie.train.export import read_weights
from birdie.train.integrity import load_side_file
from birdie.train.metrics import read_metrics
from birdie.train.stateful import decode_state
from birdie.train.trainer import train

from tests.train.helpers import tiny_config


def _decisions(out):
    return [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path):
    settings = {"model.preset": "hawk-tiny", "train.steps": 6, "checkpoint.save_every": 3,
                "checkpoint.milestone_every": 3}
    full = train(tiny_config(tmp_path / "full", **settings))
    stopped_at = tmp_path / "full" / "checkpoints" / "step_000003"
    resumed = train(tiny_config(tmp_path / "resumed", **settings, **{"checkpoint.resume": str(stopped_at),
                                                                 "checkpoint.trust_checkpoint": True}))

    assert resumed.step == full.step == 6
    assert resumed.losses == full.losses[3:]  # exact float equality
    final = read_weights(resolve_checkpoint("latest", tmp_path / "full"), trust_checkpoint=True)
    again = read_weights(resolve_checkpoint("latest", tmp_path / "resumed"), trust_checkpoint=True)
    assert final.keys() == again.keys()
    assert all(torch.equal(final[k], again[k]) for k in final)
    after = [d for d in _decisions(tmp_path / "full") if d["step"] >= 3]
    assert after and _decisions(tmp_path / "resumed") == after
    assert [r["step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl")] == [4, 5, 6]


@pytest.mark.slow
def test_resume_latest_continues_a_finished_run_to_more_steps(tmp_path):
    first = train(tiny_config(tmp_path, **{"train.steps": 2}))
    more = train(tiny_config(tmp_path, **{"train.steps": 4, "checkpoint.resume": "latest"}))
    assert (first.step, more.step, len(more.losses)) == (2, 4, 2)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]


def test_a_failed_resume_shuts_the_data_workers_down(tmp_path):
    before = set(multiprocessing.active_children())
    missing = tmp_path / "no_such_checkpoint"
    with pytest.raises(Exception, match="no_such_checkpoint"):
        train(tiny_config(tmp_path, **{"data.num_workers": 1, "checkpoint.resume": str(missing)}))
    assert set(multiprocessing.active_children()) <= before


@pytest.mark.slow
def test_resume_with_a_background_decision_pending_equals_uninterrupted(tmp_path):
    """The checkpoint at step 9 falls while the decision of the evaluation at step 8 is still pending."""
    settings = {"train.steps": 12, "checkpoint.save_every": 9, "checkpoint.milestone_every": 9,
                "curriculum.schedule.steps_between_evaluations": 8, "curriculum.decision_delay_batches": 3,
                "curriculum.background_decisions": True}
    full = train(tiny_config(tmp_path / "full", **settings))
    stopped_at = tmp_path / "full" / "checkpoints" / "step_000009"
    agent = decode_state(load_side_file(stopped_at / "shared.pt"))["agent"]
    data = decode_state(load_side_file(stopped_at / "rank_0.pt"))["data"]
    assert agent["agent"]["pending"]["step"] == 8 and data["decision_batch"] == 8 + 7 + 3
    resumed = train(tiny_config(tmp_path / "resumed", **settings, **{"checkpoint.resume": str(stopped_at),
                                                                     "checkpoint.trust_checkpoint": True}))

    assert resumed.losses == full.losses[9:]
    decided = [d for d in _decisions(tmp_path / "full") if d["step"] == 8]
    assert decided[0]["decided"] and decided[0]["applies_from_batch"] == 18
    assert _decisions(tmp_path / "resumed") == decided
