"""The Birdie API: the seeds' README training loop with a user's own model, config keys, logging, resume."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from birdie import Birdie
from birdie.tokenizers import ByteTokenizer

from .helpers import FAST_SECTIONS, readme_loop

OBJECTIVES = [{"name": "next_token_prediction"}, {"name": "infilling"}, {"name": "copying"}]


class UserModel(torch.nn.Module):
    """A user's own tiny LM: returns the mean cross-entropy over label_ids != -100."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, 16)
        self.out = torch.nn.Linear(16, vocab_size)

    def forward(self, input_ids, label_ids, attention_mask=None, segment_ids=None, position_ids=None):
        logits = self.out(self.embed(input_ids))
        return F.cross_entropy(logits.flatten(0, 1), label_ids.flatten(), ignore_index=-100)


def small_config(tmp_path, **overrides):
    config = {
        "tokenizer": ByteTokenizer(), "pretraining_objectives": OBJECTIVES, "batch_size": 2,
        "max_sequence_length": 128, "num_workers": 0, "total_steps": 40, "steps_between_evaluations": 10,
        "warmup_steps": 10, "seed": 0, **FAST_SECTIONS, "log_path": str(tmp_path / "decisions.jsonl"),
    }
    config.update(overrides)
    return config


@pytest.mark.slow
def test_readme_training_loop_runs_and_logs_every_decision(tmp_path):
    torch.manual_seed(0)
    config = small_config(tmp_path)
    model = UserModel(ByteTokenizer().vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with Birdie(config) as birdie:
        readme_loop(birdie, model, optimizer, range(config["total_steps"]))
        assert set(birdie.get_current_action()) == set(birdie.keys)
        pipeline_probs = birdie.pipeline.probs_at(birdie.records[-1]["applies_from_batch"])
        np.testing.assert_allclose(pipeline_probs, list(birdie.get_current_action().values()))
    lines = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 10, 20, 30]
    assert [line["decided"] for line in lines] == [False, True, True, True]
    assert lines[0]["rewards"] is None
    for line in lines[1:]:
        assert set(line["losses"]) == set(line["rewards"]) == set(line["mixture"])
        assert sum(line["class_mixture"].values()) == pytest.approx(1.0)
        assert all(np.isfinite(list(line["losses"].values())))
    assert lines[1]["losses"] != lines[0]["losses"]  # the model trained between evaluations


def test_unknown_and_duplicate_keys_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown Birdie config key 'num_step'; valid keys: .*num_steps"):
        Birdie(small_config(tmp_path, num_step=10))
    with pytest.raises(ValueError, match="gives 'num_steps' twice"):
        Birdie(small_config(tmp_path, num_steps=10))
    with pytest.raises(ValueError, match="needs 'tokenizer'"):
        Birdie({"batch_size": 2})


def test_incomplete_evaluation_and_bad_losses_fail_loudly(tmp_path):
    with Birdie(small_config(tmp_path)) as birdie:
        assert birdie.time_for_eval(0)
        key, _ = next(iter(birdie.measure_validation_losses()))
        with pytest.raises(ValueError, match="scalar loss"):
            birdie.log_validation_loss(key, torch.ones(3), 0)
        with pytest.raises(KeyError, match="unknown objective key"):
            birdie.log_validation_loss("nope", 1.0, 0)
        birdie.log_validation_loss(key, torch.tensor(2.5), 0)
        with pytest.raises(ValueError, match="differs from 0"):
            birdie.log_validation_loss(key, 2.5, 5)
        with pytest.raises(RuntimeError, match="incomplete.*log_validation_loss for every"):
            birdie.get_next_training_sample()


def test_fixed_agent_kinds_switch_with_one_setting(tmp_path):
    with Birdie(small_config(tmp_path, agent="ul2", pretraining_objectives=None, log_path=None)) as birdie:
        assert birdie.get_current_class_action() == pytest.approx({"infilling": 0.8, "prefix_language_modeling": 0.2})


def interrupted_and_uninterrupted(config, save_at, total=40):
    """The README loop over ``total`` steps in one Birdie, and stopped after ``save_at`` steps and continued in a
    new one from ``state_dict()``: returns ((records, next batch) uninterrupted, the same resumed)."""
    def fresh():
        torch.manual_seed(0)
        model = UserModel(ByteTokenizer().vocab_size)
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    model, optimizer = fresh()
    with Birdie(config) as birdie:
        readme_loop(birdie, model, optimizer, range(total))
        uninterrupted = birdie.records, birdie.get_next_training_sample()

    model, optimizer = fresh()
    with Birdie(config) as first:
        readme_loop(first, model, optimizer, range(save_at))
        state, head = first.state_dict(), list(first.records)
    with Birdie(config) as resumed:
        resumed.load_state_dict(state)
        readme_loop(resumed, model, optimizer, range(save_at, total))
        return uninterrupted, (head + resumed.records, resumed.get_next_training_sample())


def test_resumed_birdie_continues_like_an_uninterrupted_one(tmp_path):
    (expected_records, expected_batch), (records, batch) = interrupted_and_uninterrupted(
        small_config(tmp_path, log_path=None), save_at=25)
    assert [r["mixture"] for r in records] == [r["mixture"] for r in expected_records]
    assert [r["losses"] for r in records] == [r["losses"] for r in expected_records]
    for name in expected_batch:
        torch.testing.assert_close(batch[name], expected_batch[name])
