"""The Gated SSM reward model: block vs a loop over positions, causality, last-real-position reads, fitting."""

import numpy as np
import pytest
import torch

from birdie.curriculum.reward_model import (
    GatedSSMBlock,
    RewardModel,
    RewardModelConfig,
    SplitRMSNorm,
    fit_reward_model,
    make_optimizer,
)

SMALL = RewardModelConfig(width=32, num_layers=2)


def loop_block(block: GatedSSMBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's recurrence as a plain loop over positions (the oracle for its use of the fast scan)."""
    a, b, gate_out = block._gates(x)
    h = torch.zeros_like(b[:, 0])
    states = []
    for t in range(x.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return x + block.out(torch.sigmoid(gate_out) * torch.stack(states, dim=1)), h


@pytest.mark.parametrize("length", [1, 2, 7, 16, 41])
def test_block_matches_a_loop_over_positions_forward_and_gradients(length):
    torch.manual_seed(length)
    block = GatedSSMBlock(width=8, state_expansion=2).double()
    x = torch.randn(3, length, 8, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, length, 8, dtype=torch.float64)
    inputs = [x, *block.parameters()]
    results = []
    for run in (block, lambda rows: loop_block(block, rows)):
        y, last = run(x)
        grads = torch.autograd.grad((y * weights).sum() + last.sum(), inputs)
        results.append((y, last, grads))
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
