"""The Gated SSM reward model: block vs a loop over positions, causality, last-real-position reads, fitting, and
the hand-written training path against autograd and a plain reference fit."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie.curriculum.reward_fit import fit_reward_model, loss_and_gradients, make_optimizer, scan_rows, training_pass
from birdie.curriculum.reward_model import NORM_EPS, GatedSSMBlock, RewardModel, RewardModelConfig, SplitRMSNorm

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


def loop_scan(entering: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``h_0 = b_0, h_t = entering_{t-1} h_{t-1} + b_t`` one row at a time."""
    h = [b[0]]
    for t in range(1, len(b)):
        h.append(entering[t - 1] * h[-1] + b[t])
    return np.stack(h)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 70), width=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_scan_rows_matches_a_loop_both_directions(length, width, seed):
    rng = np.random.default_rng(seed)
    decays = rng.uniform(0.0, 1.0, (length, width))
    decays[rng.random((length, width)) < 0.1] = 0.0  # exact zeros cut the recurrence
    b = rng.normal(size=(length, width))
    out = np.empty_like(b)
    scan_rows(decays[1:], b, out)
    np.testing.assert_allclose(out, loop_scan(decays[1:], b), rtol=1e-12, atol=1e-12)
    # Right to left through reversed views: out_t = b_t + decays_{t+1} out_{t+1}, what the adjoint needs.
    scan_rows(decays[:0:-1], b[::-1], out[::-1])
    np.testing.assert_allclose(out[::-1], loop_scan(decays[:0:-1], b[::-1]), rtol=1e-12, atol=1e-12)


def normalized_rows(rows: torch.Tensor, num_configs: int) -> torch.Tensor:
    return torch.cat([F.rms_norm(half, (num_configs,), eps=NORM_EPS) for half in rows.split(num_configs, 1)], 1)


@pytest.mark.parametrize("compiled", [False, True], ids=["torch", "numba"])
@pytest.mark.parametrize("length", [1, 2, 9, 40])
def test_hand_written_gradients_match_autograd(length, compiled):
    if compiled:
        pytest.importorskip("numba")
    torch.manual_seed(length)
    num_configs = 5
    model = RewardModel(num_configs, RewardModelConfig(width=16, num_layers=2, state_expansion=2)).double()
    rows = torch.rand(length, 2 * num_configs, dtype=torch.float64) * 4
    rewards = torch.rand(length, num_configs, dtype=torch.float64) * 2 - 1
    parameters = list(model.parameters())
    expected_loss = F.mse_loss(model(rows[None])[0], rewards)
    expected = torch.autograd.grad(expected_loss, parameters)
    grads = {parameter: torch.full_like(parameter, float("nan")) for parameter in parameters}
    loss = loss_and_gradients(model, normalized_rows(rows, num_configs), rewards, grads, compiled=compiled)
    torch.testing.assert_close(loss, expected_loss.detach())
    for (name, parameter), grad in zip(model.named_parameters(), expected, strict=True):
        torch.testing.assert_close(grads[parameter], grad, msg=lambda message: f"{name}: {message}")


def reference_fit(model: RewardModel, rows, rewards, config: RewardModelConfig) -> float:
    """The plain fit: autograd, clip_grad_norm_, torch's AdamW over the module's parameters."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    for _ in range(config.train_steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(rows[None])[0], rewards)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
    return loss.item()


@pytest.mark.parametrize("grad_clip", [0.01, 100.0])
def test_fit_matches_the_plain_autograd_fit(grad_clip):
    """Same weights after 12 steps with the clip active at every step (0.01) and never active (100).

    Float64 models; the clip factor reaches fused AdamW as a float32 scalar, hence the 1e-6 tolerance."""
    config = RewardModelConfig(width=16, num_layers=2, train_steps=12, grad_clip=grad_clip)
    torch.manual_seed(0)
    reference = RewardModel(4, config).double()
    fast = RewardModel(4, config).double()
    fast.load_state_dict(reference.state_dict())
    rows = torch.rand(7, 8, dtype=torch.float64) * 3
    rewards = torch.rand(7, 4, dtype=torch.float64) * 2 - 1
    expected_loss = reference_fit(reference, rows, rewards, config)
    loss = fit_reward_model(fast, make_optimizer(fast, config), rows, rewards, config)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    for (name, expected), got in zip(reference.state_dict().items(), fast.state_dict().values()):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7, msg=lambda message: f"{name}: {message}")
    assert not torch.equal(fast.head.weight, RewardModel(4, config).double().head.weight)


def test_fit_continues_after_a_load_state_dict_and_rejects_a_foreign_optimizer():
    config = dataclasses.replace(SMALL, train_steps=3)
    model, other = RewardModel(3, config), RewardModel(3, config)
    optimizer = make_optimizer(model, config)
    rows, rewards = torch.rand(4, 6), torch.rand(4, 3)
    model.load_state_dict(other.state_dict())  # copies into the flat buffer's views
    before = model.head.weight.clone()
    fit_reward_model(model, optimizer, rows, rewards, config)
    assert not torch.equal(model.head.weight, before)
    with pytest.raises(ValueError, match="make_optimizer"):
        fit_reward_model(other, optimizer, rows, rewards, config)
    with pytest.raises(ValueError, match="at least one history row"):
        fit_reward_model(model, optimizer, rows[:0], rewards[:0], config)


@pytest.mark.parametrize("compiled", [False, True], ids=["torch", "numba"])
def test_a_reused_training_pass_sees_in_place_parameter_updates(compiled):
    """The fit builds one pass per decision and AdamW updates the parameters in place between its calls."""
    if compiled:
        pytest.importorskip("numba")
    torch.manual_seed(0)
    model = RewardModel(3, SMALL)
    rows, rewards = normalized_rows(torch.rand(6, 6), 3), torch.rand(6, 3)
    grads = {parameter: torch.empty_like(parameter) for parameter in model.parameters()}
    training_pass_ = training_pass(model, grads, len(rows), compiled)
    training_pass_(rows, rewards)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.5).add_(0.01)
    loss = training_pass_(rows, rewards)
    fresh = {parameter: torch.empty_like(parameter) for parameter in model.parameters()}
    torch.testing.assert_close(loss, loss_and_gradients(model, rows, rewards, fresh, compiled=False))
    for parameter in model.parameters():
        torch.testing.assert_close(grads[parameter], fresh[parameter])


def test_birdie_no_numba_switches_the_default_fit_to_the_torch_path(monkeypatch):
    pytest.importorskip("numba")
    model = RewardModel(3, SMALL)
    grads = {parameter: torch.empty_like(parameter) for parameter in model.parameters()}
    assert type(training_pass(model, grads, 4)).__name__ == "CompiledTrainingPass"
    monkeypatch.setenv("BIRDIE_NO_NUMBA", "1")
    assert type(training_pass(model, grads, 4)).__name__ == "function"  # the torch path's closure
    assert type(training_pass(model, grads, 4, compiled=True)).__name__ == "CompiledTrainingPass"
