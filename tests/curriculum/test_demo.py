"""The agent demo: the helpful class's share must rise well above uniform."""

import argparse

import numpy as np
import pytest

from birdie.curriculum import BirdieAgentConfig, RewardModelConfig, demo


def test_agent_learns_to_favour_the_helpful_class():
    # A smaller agent than the defaults (to keep the test fast) on a seeded, deterministic run.
    records = demo.run_agent_demo(total_steps=6000, helpful_class="selective_copying", seed=2,
                                  birdie_agent=BirdieAgentConfig(num_candidates=256, num_proposals=64),
                                  reward_model=RewardModelConfig(width=64, num_layers=2, train_steps=60))
    shares = [r["class_mixture"]["selective_copying"] for r in records]
    assert shares[0] == pytest.approx(1 / 7)
    assert np.mean(shares[-3:]) > 0.5  # more than 3.5x the uniform share


def test_demo_cli_prints_every_evaluation(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--steps", "600", "--helpful", "copying", "--log", str(tmp_path / "log.jsonl"),
                              "--candidates", "64", "--train-steps", "10"])
    assert demo.run(args) == 0
    out = capsys.readouterr().out
    assert "final share of 'copying'" in out
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 4  # evaluations at 10, 50, 250, 500


@pytest.mark.parametrize("option, message", [(["--helpful", "nope"], "unknown class 'nope'"),
                                             (["--steps", "0"], "total_steps=0 must be >= 1")])
def test_demo_cli_reports_a_bad_option_without_a_traceback(capsys, option, message):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    assert demo.run(parser.parse_args(option)) == 2
    assert message in capsys.readouterr().err
