"""Decisions that overlap training: a fixed delay in batches, computed inline or on a background thread."""

import threading

import numpy as np
import pytest
import torch

from birdie import Birdie
from birdie.curriculum import Schedule, make_agent
from birdie.objectives import resolve_mixture
from birdie.tokenizers import ByteTokenizer

from .helpers import FAST, readme_loop, toy_losses
from .test_api import UserModel, interrupted_and_uninterrupted, small_config


def evaluate(birdie, step):
    """Log a validation loss for every held-out batch (falling toy values)."""
    for index, (key, _) in enumerate(birdie.measure_validation_losses()):
        birdie.log_validation_loss(key, float(toy_losses(step, 1)[0]) + 0.01 * index, step)


def train_until(birdie, steps, evaluate_at_end=False):
    """Take ``steps`` training batches, evaluating whenever the schedule says so (and, with ``evaluate_at_end``,
    at step ``steps`` too)."""
    for step in range(steps):
        if birdie.time_for_eval(step):
            evaluate(birdie, step)
        birdie.get_next_training_sample()
    if evaluate_at_end:
        evaluate(birdie, steps)


def test_shortest_decision_gap_follows_the_schedule():
    assert Schedule(total_steps=10_000).shortest_decision_gap() == 250  # decides at 250, evaluates again at 500
    assert Schedule(total_steps=10_000, warmup_steps=0).shortest_decision_gap() == 40  # 10 -> 50
    assert Schedule(total_steps=10_000, warmup_steps=3000).shortest_decision_gap() == 1000  # periodic part only
    assert Schedule(total_steps=100, steps_between_evaluations=7).shortest_decision_gap() == 7


def test_default_delay_and_bad_delays(tmp_path):
    with Birdie(small_config(tmp_path, log_path=None)) as birdie:  # every 10 steps
        assert birdie.decision_delay == 2
    with Birdie(small_config(tmp_path, log_path=None, steps_between_evaluations=None, total_steps=5000,
                                    warmup_steps=250)) as birdie:
        assert birdie.decision_delay == 32  # the paper schedule's shortest gap is 250
    with pytest.raises(ValueError, match="decision_delay_batches=10 must be smaller than 10"):
        Birdie(small_config(tmp_path, decision_delay_batches=10))
    with pytest.raises(ValueError, match="decision_delay_batches=-1 must be an int >= 0"):
        Birdie(small_config(tmp_path, decision_delay_batches=-1))
    with pytest.raises(ValueError, match="background_decisions='yes' must be True, False or None"):
        Birdie(small_config(tmp_path, background_decisions="yes"))
    with Birdie(small_config(tmp_path, log_path=None, agent="uniform", decision_delay_batches=50)) as birdie:
        assert birdie.decision_delay == 50  # static agents never decide, so any delay is harmless


def test_decisions_run_in_the_background_by_default_only_when_training_is_off_the_cpu(tmp_path):
    with Birdie(small_config(tmp_path, log_path=None)) as birdie:
        assert birdie._executor is None
    with Birdie(small_config(tmp_path, log_path=None, device="meta")) as birdie:
        assert birdie._executor is not None
    with Birdie(small_config(tmp_path, log_path=None, move_to_gpu_fn=lambda batch: batch)) as birdie:
        assert birdie._executor is not None
    with Birdie(small_config(tmp_path, log_path=None, device="meta", decision_delay_batches=0)) as birdie:
        assert birdie._executor is None  # nothing to overlap


@pytest.mark.parametrize("background", [False, True])
def test_a_decision_applies_exactly_delay_batches_late(tmp_path, background):
    delay, prefetch = 5, 8
    config = small_config(tmp_path, log_path=None, decision_delay_batches=delay, background_decisions=background)
    with Birdie(config) as birdie:
        train_until(birdie, 16)  # the decision of step 10 is finished when batch 15 is requested
        first_decision = birdie.records[1]
        assert first_decision["step"] == 10 and first_decision["decided"]
        start = 10 + (prefetch - 1) + delay  # the first batch a decision at once would reach, plus the delay
        assert first_decision["applies_from_batch"] == start
        new = np.array(list(first_decision["mixture"].values()))
        assert not np.allclose(birdie.pipeline.probs_at(start - 1), new)
        np.testing.assert_allclose(birdie.pipeline.probs_at(start), new)


def test_background_and_inline_decisions_give_the_same_run(tmp_path):
    def run(background):
        torch.manual_seed(0)
        model = UserModel(ByteTokenizer().vocab_size)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        config = small_config(tmp_path, log_path=None, decision_delay_batches=4, background_decisions=background)
        with Birdie(config) as birdie:
            assert (birdie._executor is not None) == background
            readme_loop(birdie, model, optimizer, range(40))
            return birdie.records, birdie.get_next_training_sample()

    (records, batch), (expected_records, expected_batch) = run(True), run(False)
    assert [r["decided"] for r in records] == [False, True, True, True]
    for record, expected in zip(records, expected_records, strict=True):
        assert record == expected
    for name in expected_batch:
        torch.testing.assert_close(batch[name], expected_batch[name])


def test_training_goes_on_while_the_decision_computes(tmp_path):
    release, started = threading.Event(), threading.Event()
    config = small_config(tmp_path, log_path=None, decision_delay_batches=4, background_decisions=True)
    with Birdie(config) as birdie:
        decide = birdie.agent._decide

        def slow_decide(step, losses):
            started.set()
            assert release.wait(timeout=30), "the test never released the decision"
            return decide(step, losses)

        birdie.agent._decide = slow_decide
        train_until(birdie, 10, evaluate_at_end=True)
        pending = birdie.agent.pending
        assert started.wait(timeout=30) and pending is not None and pending.decides
        for _ in range(4):  # batches 10..13 do not need the new mixture: none of them waits
            birdie.get_next_training_sample()
        assert not pending.ready() and len(birdie.records) == 1 and birdie.decision_wait_s == 0.0
        threading.Timer(0.3, release.set).start()
        birdie.get_next_training_sample()  # commits the delayed batch: waits for the decision and records it
        assert birdie.agent.pending is None and birdie.records[-1]["decided"]
        assert birdie.decision_wait_s >= 0.25  # the wait is counted


def test_a_failed_background_decision_raises_in_the_training_loop(tmp_path):
    config = small_config(tmp_path, log_path=None, decision_delay_batches=3, background_decisions=True)
    with Birdie(config) as birdie:
        def broken(step, losses):
            raise FloatingPointError("reward model diverged")

        birdie.agent._decide = broken
        train_until(birdie, 10, evaluate_at_end=True)
        with pytest.raises(FloatingPointError, match="reward model diverged"):
            for _ in range(4):
                birdie.get_next_training_sample()


@pytest.mark.parametrize("save_at", [21, 26])  # decision of step 20 still pending / already in force
def test_resume_with_a_pending_decision_continues_like_an_uninterrupted_run(tmp_path, save_at, monkeypatch):
    config = small_config(tmp_path, log_path=None, decision_delay_batches=4, background_decisions=True)
    pending_at_save = []
    original = Birdie.state_dict

    def state_dict(birdie):
        pending_at_save.append(birdie.agent.pending is not None)
        return original(birdie)

    monkeypatch.setattr(Birdie, "state_dict", state_dict)
    (expected_records, expected_batch), (records, batch) = interrupted_and_uninterrupted(config, save_at)
    assert pending_at_save == [save_at == 21]
    assert records == expected_records
    for name in expected_batch:
        torch.testing.assert_close(batch[name], expected_batch[name])


def test_agent_refuses_a_new_observation_while_one_is_pending():
    agent = make_agent("birdie", resolve_mixture("ntp") + resolve_mixture("ul2"), 1000,
                       schedule=Schedule(warmup_steps=0), **FAST)
    agent.observe(0, toy_losses(0, agent.num_configs))
    pending = agent.begin_observation(10, toy_losses(10, agent.num_configs))
    with pytest.raises(RuntimeError, match="step 10 is still pending"):
        agent.begin_observation(20, toy_losses(20, agent.num_configs))
    decision = pending.finish()
    assert decision.decided and agent.pending is None
    with pytest.raises(RuntimeError, match="finished twice"):
        pending.finish()


def test_workers_start_before_a_decision_thread_exists(tmp_path):
    """A run resumed at an evaluation decides before its first batch: the workers must be forked first."""
    config = small_config(tmp_path, log_path=None, num_workers=1, decision_delay_batches=4, background_decisions=True)
    torch.manual_seed(0)
    model = UserModel(ByteTokenizer().vocab_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with Birdie(config) as first:
        readme_loop(first, model, optimizer, range(20))
        state = first.state_dict()
    with Birdie(config) as resumed:
        resumed.load_state_dict(state)
        decide = resumed.agent._decide
        workers_at_decision = []

        def checked_decide(step, losses):
            workers_at_decision.append(resumed.pipeline._pool is not None)
            return decide(step, losses)

        resumed.agent._decide = checked_decide
        readme_loop(resumed, model, optimizer, range(20, 30))
    assert workers_at_decision == [True]


def test_agent_state_continues_under_another_data_layout(tmp_path):
    """A run resumed with another process count keeps the agent (and its pending decision), not the data position."""
    config = small_config(tmp_path, log_path=None, decision_delay_batches=4, background_decisions=True)
    torch.manual_seed(0)
    model = UserModel(ByteTokenizer().vocab_size)
    with Birdie(config) as first:
        readme_loop(first, model, torch.optim.SGD(model.parameters(), lr=0.1), range(21))
        assert first.agent.pending is not None  # the decision of step 20
        state = first.state_dict()
        history = len(first.agent.history_rows)
    with Birdie({**config, "pipeline_options": {"num_streams": 4}}) as other:
        other.agent_state.load_state_dict(state)
        assert other.agent.last_step == 20 and len(other.agent.history_rows) == history
        assert other.pipeline.batch_index == 0
        other.get_next_training_sample()  # the pending decision takes effect from the stream's first batch
        assert other.agent.pending is None
        decision = other.records[-1]
        assert decision["step"] == 20 and decision["decided"] and decision["applies_from_batch"] == 0
        np.testing.assert_allclose(other.pipeline.probs_at(0), other.agent.action)
        assert not other.time_for_eval(20) and other.time_for_eval(30)
