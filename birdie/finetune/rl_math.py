"""The arithmetic of PPO, GRPO and RLOO on per-token tensors (EasyLM ``llama_train_ppo.py`` / TRL's PPO, see
``docs/finetuning.md``).

Shapes: ``B`` sequences (rollouts) of ``T`` response positions; ``mask`` is ``(B, T)``, 1 at real response
tokens and 0 at padding (after EOS, or after a rollout that stopped early). Every function treats masked
positions as absent: they take no part in means, variances or the GAE recursion, and their outputs are 0.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over positions where ``mask`` is 1 (over ``dim``, or all positions)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance over the masked positions, with Bessel's correction by default (EasyLM and TRL both use it)."""
    mask = mask.to(values.dtype)
    mean = masked_mean(values, mask)
    count = mask.sum()
    var = (((values - mean) ** 2) * mask).sum() / count.clamp(min=1)
    if unbiased:
        if count < 2:
            raise ValueError(f"masked_var needs at least 2 unmasked values for Bessel's correction, got {int(count)}")
        var = var * count / (count - 1)
    return var


def whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8,
           all_sum: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``(values - mean) / sqrt(var + eps)`` with masked statistics; masked positions come out 0.

    ``shift_mean=False`` adds the mean back (EasyLM/TRL's ``whiten_rewards`` keeps the reward level).
    ``all_sum`` sums a tensor over data-parallel ranks: the statistics are then those of every rank's values
    together (what one process holding the whole batch computes).
    """
    if all_sum is None:
        mean, var = masked_mean(values, mask), masked_var(values, mask)
    else:
        real = mask.to(values.dtype)
        total, count = all_sum(torch.stack([(values * real).sum(), real.sum()])).unbind()
        mean = total / count.clamp(min=1)
        squares = all_sum((((values - mean) ** 2) * real).sum())
        if count < 2:
            raise ValueError(f"whiten needs at least 2 unmasked values over all ranks, got {int(count)}")
        var = squares / (count - 1)
    out = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(values.dtype)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation: ``(advantages, returns)``, each ``(B, T)``.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, with
    ``V_{T} = 0`` past the last response token (the episode ends there) and ``returns = A + V``. Masked
    positions are skipped: the recursion links each real token to the next *real* token, so left or interior
    padding does not break the chain, and their advantages and returns are 0.
    """
    if rewards.shape != values.shape or rewards.shape != mask.shape or rewards.dim() != 2:
        raise ValueError(f"gae needs rewards, values and mask of one (B, T) shape, got {tuple(rewards.shape)}, "
                         f"{tuple(values.shape)}, {tuple(mask.shape)}")
    real = mask.to(torch.bool)
    rewards = rewards.masked_fill(~real, 0.0)
    values = values.masked_fill(~real, 0.0)
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        current = delta + gamma * lam * next_advantage
        here = real[:, t]
        advantages[:, t] = torch.where(here, current, torch.zeros_like(current))
        next_value = torch.where(here, values[:, t], next_value)
        next_advantage = torch.where(here, current, next_advantage)
    returns = (advantages + values) * real.to(values.dtype)
    return advantages, returns


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k1 estimator of KL(policy || reference) for tokens sampled from the policy: ``logp - ref_logp``
    (unbiased, can be negative)."""
    return logp - ref_logp


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimator (Schulman): ``r - 1 - log r`` with ``r = exp(ref_logp - logp)``; unbiased and >= 0."""
    log_ratio = ref_logp - logp
    return torch.expm1(log_ratio) - log_ratio


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str) -> Tensor:
    """The per-token KL estimate named ``estimator`` (``"k1"`` or ``"k3"``)."""
    if estimator == "k1":
        return kl_k1(logp, ref_logp)
    if estimator == "k3":
        return kl_k3(logp, ref_logp)
    raise ValueError(f"unknown KL estimator {estimator!r}; use 'k1' or 'k3'")


def shaped_rewards(scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """Per-token rewards ``-kl_coef * kl_t``, plus each sequence's score at its last real token: ``(B, T)``.

    ``scores`` is ``(B,)``; ``kl`` and ``mask`` are ``(B, T)``. A sequence with no real token gets no score.
    """
    real = mask.to(kl.dtype)
    rewards = -kl_coef * kl * real
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.to(torch.bool), positions, torch.full_like(positions, -1)).max(dim=1).values
    has_token = last >= 0
    rows = torch.arange(mask.shape[0], device=mask.device)[has_token]
    rewards[rows, last[has_token]] += scores[has_token].to(rewards.dtype)
    return rewards


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
                clip_range: float) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's clipped surrogate: ``(loss, clip fraction, approx KL)``.

    ``loss = masked_mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))`` with ``ratio = exp(logp -
    old_logp)``; the clip fraction is the share of tokens where the clipped term is the larger; approx KL is
    ``0.5 * masked_mean((logp - old_logp)^2)`` (TRL's ``approxkl``). All inputs ``(B, T)``.
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).to(logp.dtype), mask)
    approx_kl = 0.5 * masked_mean((logp - old_logp) ** 2, mask)
    return loss, clip_fraction.detach(), approx_kl.detach()


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               clip_range_value: float) -> tuple[Tensor, Tensor]:
    """Clipped value loss ``0.5 * masked_mean(max((V - R)^2, (V_clip - R)^2))`` with ``V_clip = V_old +
    clip(V - V_old, +-eps)``: ``(loss, clip fraction)``. All inputs ``(B, T)``."""
    clipped_values = old_values + (values - old_values).clamp(-clip_range_value, clip_range_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    clip_fraction = masked_mean((clipped_error > unclipped_error).to(values.dtype), mask)
    return loss, clip_fraction.detach()


def grpo_advantages(scores: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """GRPO's per-sequence advantages: each score minus its group's mean, divided by the group's standard
    deviation (unbiased) when ``scale``. ``scores`` is ``(B,)`` with the ``group_size`` rollouts of a prompt
    adjacent; returns ``(B,)``."""
    groups = _groups(scores, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(scores: Tensor, group_size: int) -> Tensor:
    """RLOO's per-sequence advantages: each score minus the mean of the *other* rollouts of its prompt,
    ``s_i - (sum_j s_j - s_i) / (k - 1)``. ``scores`` is ``(B,)`` with groups adjacent; returns ``(B,)``."""
    groups = _groups(scores, group_size)
    if group_size < 2:
        raise ValueError("RLOO needs rollouts_per_prompt >= 2 (the baseline is the other rollouts' mean)")
    baseline = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - baseline).reshape(-1)


def _groups(scores: Tensor, group_size: int) -> Tensor:
    if scores.dim() != 1 or group_size < 1 or scores.numel() % group_size:
        raise ValueError(f"scores of shape {tuple(scores.shape)} do not split into groups of {group_size} "
                         "rollouts per prompt")
    return scores.reshape(-1, group_size)
