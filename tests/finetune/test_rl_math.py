"""PPO/GRPO/RLOO arithmetic against naive per-element references and hand numbers."""

import math

import pytest
import torch

import birdie.finetune as ft
from birdie.finetune import rl_math


def naive_gae(rewards, values, mask, gamma, lam):
    """Backward loop over each row's real tokens only (the textbook recursion on the compacted sequence)."""
    advantages = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        real = [t for t in range(rewards.shape[1]) if mask[b, t]]
        next_value, next_adv = 0.0, 0.0
        for t in reversed(real):
            delta = rewards[b, t].item() + gamma * next_value - values[b, t].item()
            next_adv = delta + gamma * lam * next_adv
            advantages[b, t] = next_adv
            next_value = values[b, t].item()
    return advantages, (advantages + values) * mask


def test_gae_matches_naive_loop_with_padding():
    torch.manual_seed(0)
    rewards, values = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    mask = torch.ones(4, 7)
    mask[0, 5:] = 0  # right padding (EOS came early)
    mask[1, :2] = 0  # left padding
    mask[2, 3] = 0  # a hole in the middle
    mask[3] = 0  # nothing real
    for gamma, lam in [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)]:
        adv, ret = ft.gae(rewards, values, mask, gamma, lam)
        want_adv, want_ret = naive_gae(rewards, values, mask, gamma, lam)
        torch.testing.assert_close(adv, want_adv)
        torch.testing.assert_close(ret, want_ret.to(ret.dtype))
        assert adv[mask == 0].abs().max() == 0


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 0.25, 0.0]])
    adv, ret = ft.gae(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    torch.testing.assert_close(ret, torch.tensor([[6.0, 5.0, 3.0]]))
    torch.testing.assert_close(adv, torch.tensor([[5.5, 4.75, 3.0]]))


def test_kl_estimators_match_definitions():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -1.0, -0.5])
    torch.testing.assert_close(ft.kl_k1(logp, ref), logp - ref)
    r = torch.exp(ref - logp)
    torch.testing.assert_close(ft.kl_k3(logp, ref), r - 1 - torch.log(r))
    assert (ft.kl_k3(logp, ref) >= 0).all()
    # Both are unbiased for KL(p || q) when tokens are sampled from p.
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.2, 0.5, 0.3])
    exact = (p * (p / q).log()).sum()
    for estimator in ("k1", "k3"):
        expected = (p * rl_math.kl_penalty(p.log(), q.log(), estimator)).sum()
        torch.testing.assert_close(expected, exact)
    with pytest.raises(ValueError, match="k2"):
        rl_math.kl_penalty(logp, ref, "k2")


def test_masked_whiten_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -7.0, 6.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 1]])
    out = rl_math.whiten(values, mask)
    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    want = (real - real.mean()) / torch.sqrt(real.var(unbiased=True) + 1e-8)
    torch.testing.assert_close(out[mask.bool()], want)
    assert out[~mask.bool()].abs().max() == 0
    kept = rl_math.whiten(values, mask, shift_mean=False)
    torch.testing.assert_close(kept[mask.bool()], want + real.mean())


def test_clipped_policy_loss_hand_numbers():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    adv = torch.tensor([[1.0, 1.0, -2.0]])
    mask = torch.tensor([[1, 1, 1]])
    loss, clipfrac, approx = rl_math.policy_loss(logp, old, adv, mask, 0.2)
    # token 0: ratio 1.5, A=1: max(-1.5, -1.2) = -1.2 (clipped). token 1: ratio .5: max(-.5, -.8) = -.5.
    # token 2: ratio 1.1, A=-2: max(2.2, 2.2) = 2.2 (inside the range).
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert clipfrac.item() == pytest.approx(1 / 3)
    assert approx.item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2 + math.log(1.1) ** 2) / 3)
    masked, _, _ = rl_math.policy_loss(logp, old, adv, torch.tensor([[1, 0, 0]]), 0.2)
    assert masked.item() == pytest.approx(-1.2)


def test_clipped_value_loss_hand_numbers():
    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1]])
    returns = torch.tensor([[1.0, 1.0]])
    loss, clipfrac = rl_math.value_loss(new, old, returns, torch.ones(1, 2), 0.2)
    # token 0: unclipped error 0, clipped value 0.2 -> error 0.64 (larger). token 1: both 0.81.
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81) / 2)
    assert clipfrac.item() == pytest.approx(0.5)


def test_shaped_rewards_put_score_at_last_real_token():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    rewards = rl_math.shaped_rewards(torch.tensor([2.0, 7.0]), kl, mask, 0.5)
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, -0.1 + 2.0, 0.0], [0.0, 0.0, 0.0]]))


def test_grpo_and_rloo_advantages():
    scores = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    grpo = rl_math.grpo_advantages(scores, 3)
    torch.testing.assert_close(grpo[:3], torch.tensor([-1.0, 0.0, 1.0]) / (1.0 + 1e-4))
    torch.testing.assert_close(grpo[3:], torch.zeros(3))
    torch.testing.assert_close(rl_math.grpo_advantages(scores, 3, scale=False)[:3], torch.tensor([-1.0, 0.0, 1.0]))
    rloo = rl_math.rloo_advantages(scores, 3)
    want = [s - (sum(scores[g:g + 3].tolist()) - s) / 2 for g in (0, 3) for s in scores[g:g + 3].tolist()]
    torch.testing.assert_close(rloo, torch.tensor(want))
    with pytest.raises(ValueError, match="groups of 4"):
        rl_math.grpo_advantages(scores, 4)
    with pytest.raises(ValueError, match="rollouts_per_prompt >= 2"):
        rl_math.rloo_advantages(scores, 1)
