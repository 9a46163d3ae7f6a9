"""The Gated SSM reward model: parallel scan vs loop, causality, last-real-position reads, fitting."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from birdie.curriculum.reward_model import (
    RewardModel,
    RewardModelConfig,
    SplitRMSNorm,
    fit_reward_model,
    linear_recurrence,
    linear_recurrence_reference,
    make_optimizer,
)

SMALL = RewardModelConfig(width=32, num_layers=2)


@pytest.mark.parametrize("length", [1, 2, 7, 16, 33])
@pytest.mark.parametrize("with_h0", [False, True])
def test_parallel_scan_matches_loop_forward_and_gradients(length, with_h0):
    generator = torch.Generator().manual_seed(length)
    decay_logits = torch.randn(3, length, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, length, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 5, generator=generator, dtype=torch.float64, requires_grad=True) if with_h0 else None
    weights = torch.randn(3, length, 5, generator=generator, dtype=torch.float64)

    results = []
    for scan in (linear_recurrence, linear_recurrence_reference):
        states, last = scan(F.logsigmoid(decay_logits), b, h0)
        inputs = [decay_logits, b] + ([h0] if with_h0 else [])
        grads = torch.autograd.grad((states * weights).sum() + last.sum(), inputs, materialize_grads=True)
        results.append((states, last, grads))
    (fast, fast_last, fast_grads), (slow, slow_last, slow_grads) = results
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(fast_last, slow_last)
    for fast_grad, slow_grad in zip(fast_grads, slow_grads):
        torch.testing.assert_close(fast_grad, slow_grad)


def test_model_is_causal():
    torch.manual_seed(0)
    model = RewardModel(4, SMALL)
    rows = torch.rand(1, 6, 8)
    changed = rows.clone()
    changed[0, 4:] = torch.rand(2, 8)
    torch.testing.assert_close(model(rows)[0, :4], model(changed)[0, :4])
    assert not torch.allclose(model(rows)[0, 4:], model(changed)[0, 4:])


def test_predictions_read_the_last_real_position_and_differ_between_candidates():
    """Regression: upstream read a padded position and every candidate scored exactly 0."""
    torch.manual_seed(0)
    model = RewardModel(4, SMALL)
    history = torch.rand(5, 8)
    candidates = torch.cat([torch.full((6, 4), 3.0), torch.distributions.Dirichlet(torch.ones(4)).sample((6,))], 1)
    predictions = model.predict_next(history, candidates)
    for row in range(len(candidates)):
        full = model(torch.cat([history, candidates[row:row + 1]])[None])[0, -1]
        torch.testing.assert_close(predictions[row], full)
    assert predictions.std(dim=0).min() > 1e-4


def test_predict_next_with_empty_history():
    model = RewardModel(3, SMALL)
    rows = torch.rand(4, 6)
    torch.testing.assert_close(model.predict_next(torch.zeros(0, 6), rows), model(rows[:, None])[:, 0])


def test_split_norm_normalizes_each_half_on_its_own():
    norm = SplitRMSNorm(6, 3)
    x = torch.rand(2, 6)
    scaled = torch.cat([x[:, :3] * 100.0, x[:, 3:]], dim=1)
    torch.testing.assert_close(norm(x), norm(scaled))


def test_fits_a_known_reward_of_the_action():
    """Rewards = 2 * (share of configuration 0) - 0.5: the fitted model must rank unseen actions by that share."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    config = RewardModelConfig(width=64, num_layers=2, train_steps=200)
    model = RewardModel(3, config)
    actions = rng.dirichlet(np.ones(3), size=24)
    losses = np.linspace(5.0, 4.0, 24)[:, None] * np.ones(3)
    rows = torch.as_tensor(np.concatenate([losses, actions], 1), dtype=torch.float32)
    rewards = torch.as_tensor(np.repeat(2 * actions[:, :1] - 0.5, 3, axis=1), dtype=torch.float32)
    mse = fit_reward_model(model, make_optimizer(model, config), rows, rewards, config)
    assert mse < 0.01
    fresh = rng.dirichlet(np.ones(3), size=64)
    next_rows = torch.as_tensor(np.concatenate([np.full((64, 3), 3.9), fresh], 1), dtype=torch.float32)
    predicted = model.predict_next(rows, next_rows).mean(dim=1).numpy()
    assert np.corrcoef(predicted, fresh[:, 0])[0, 1] > 0.9


def test_config_validation():
    with pytest.raises(ValueError, match="width"):
        RewardModelConfig(width=0)
    with pytest.raises(ValueError, match="train_steps"):
        RewardModelConfig(train_steps=-1)
