"""The paper's reward (code sign), class averaging and user reward functions."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdie.curriculum.reward import birdie_reward, class_rewards, class_scale, compute_rewards, total_reward

losses = st.floats(min_value=0.01, max_value=20.0)


def naive_reward(old: float, new: float) -> float:
    """The formula written out for one configuration."""
    e = np.e
    value = -100 * e * np.tanh(e * np.sqrt(old * new) * ((new - old) / old) ** 3)
    return float(min(max(value, -1.0), 1.0))


def test_paper_example_improvements_are_positive_and_alike():
    high, low = birdie_reward(np.array([4.5, 0.6]), np.array([4.2, 0.5207]))
    assert high == pytest.approx(0.951, abs=2e-3)
    assert low == pytest.approx(0.953, abs=2e-3)


def test_worse_loss_is_negative_and_no_change_is_zero():
    rewards = birdie_reward(np.array([4.2, 3.0, 2.0]), np.array([4.35, 3.0, 1.0]))
    assert rewards[0] == pytest.approx(-0.144, abs=2e-3)
    assert rewards[1] == 0.0
    assert rewards[2] == 1.0  # a halved loss saturates the clip


def test_nan_losses_give_zero_reward():
    assert birdie_reward(np.array([np.nan, 3.0]), np.array([2.0, np.nan])).tolist() == [0.0, 0.0]


@given(losses, losses)
def test_matches_formula_sign_and_bounds(old, new):
    reward = float(birdie_reward(np.array([old]), np.array([new]))[0])
    assert reward == pytest.approx(naive_reward(old, new), abs=1e-6)
    assert -1.0 <= reward <= 1.0
    if new < old:
        assert reward >= 0.0
    if new > old:
        assert reward <= 0.0


def test_class_averaging_and_total_on_hand_numbers():
    rewards = np.array([1.0, 0.0, 0.5, -0.5, 0.25])
    class_ids = np.array([0, 1, 1, 2, 2])
    assert class_rewards(rewards, class_ids).tolist() == [1.0, 0.25, -0.125]
    assert total_reward(rewards, class_ids) == pytest.approx(1.125)


@given(st.lists(st.integers(0, 4), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_scaled_sum_equals_total_reward(raw_ids, random):
    _, class_ids = np.unique(raw_ids, return_inverse=True)
    rewards = np.array([random.uniform(-1, 1) for _ in class_ids])
    assert float(rewards @ class_scale(class_ids)) == pytest.approx(total_reward(rewards, class_ids))


def test_user_reward_fn_scalar_array_and_bad_shape():
    old, new = np.array([2.0, 3.0]), np.array([1.0, 3.5])
    assert compute_rewards(old, new, lambda o, n: float((o - n).sum())).tolist() == [0.5, 0.5]
    assert compute_rewards(old, new, lambda o, n: o - n).tolist() == [1.0, -0.5]
    assert compute_rewards(old, new, lambda o, n: np.array([np.nan, 1.0])).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="one reward per configuration"):
        compute_rewards(old, new, lambda o, n: np.zeros(3))
    with pytest.raises(ValueError, match="1-D arrays of one shape"):
        compute_rewards(old, np.array([1.0]))
