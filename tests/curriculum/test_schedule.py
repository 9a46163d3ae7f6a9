"""Evaluation schedule, warm-up and exploration decay."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdie.curriculum.schedule import Schedule


def test_paper_schedule():
    schedule = Schedule(total_steps=5001)
    assert schedule.evaluation_steps() == [10, 50, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000]
    assert not schedule.agent_in_control(50) and schedule.agent_in_control(250)


def test_fixed_interval_like_the_seeds():
    schedule = Schedule(total_steps=100, steps_between_evaluations=32, warmup_steps=0)
    assert schedule.evaluation_steps() == [0, 32, 64, 96]


def test_custom_early_steps_and_interval():
    schedule = Schedule(total_steps=400, eval_steps=(5, 20), eval_every=100)
    assert schedule.evaluation_steps() == [5, 20, 120, 220, 320]


def test_exploration_starts_high_decays_and_ends():
    schedule = Schedule(total_steps=10_250, warmup_steps=250, explore_start=0.5, explore_end=0.05,
                        explore_fraction=0.5)
    assert schedule.explore_probability(0) == pytest.approx(0.5)
    assert schedule.explore_probability(250) == pytest.approx(0.5)
    assert schedule.explore_probability(250 + 2500) == pytest.approx(0.275)
    assert schedule.explore_probability(250 + 5000) == pytest.approx(0.05)
    assert schedule.explore_probability(10_000) == pytest.approx(0.05)


@given(st.integers(1, 100_000), st.integers(0, 100_000), st.integers(0, 100_000))
def test_exploration_never_increases(total, a, b):
    schedule = Schedule(total_steps=total)
    first, second = sorted((a, b))
    assert schedule.explore_probability(second) <= schedule.explore_probability(first) + 1e-12


@pytest.mark.parametrize("bad", [dict(total_steps=0), dict(total_steps=10, steps_between_evaluations=0),
                                 dict(total_steps=10, eval_steps=(50, 10)), dict(total_steps=10, explore_start=2.0),
                                 dict(total_steps=10, explore_fraction=0.0), dict(total_steps=10, warmup_steps=-1)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError, match="Schedule"):
        Schedule(**bad)
