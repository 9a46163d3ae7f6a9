"""Preference losses: DPO (sigmoid, conservative cDPO, IPO), the Bradley-Terry reward-model loss, and the summed
response log-probabilities both start from (easylm.md §2.2, §3.5)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from birdie.models.lm import IGNORE_INDEX

LOSS_TYPES = ("sigmoid", "ipo")


def dpo_loss(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, ref_chosen_logps: Tensor,
             ref_rejected_logps: Tensor, beta: float = 0.1, label_smoothing: float = 0.0,
             loss_type: Literal["sigmoid", "ipo"] = "sigmoid") -> tuple[Tensor, Tensor, Tensor]:
    """Per-pair DPO losses and implicit rewards from summed response log-probs (each of shape (N,)).

    With ``delta = (pi_c - pi_r) - (ref_c - ref_r)``:

    * ``sigmoid``: ``-(1 - eps) * logsigmoid(beta * delta) - eps * logsigmoid(-beta * delta)`` (eps =
      ``label_smoothing``: conservative DPO; 0 = plain DPO).
    * ``ipo``: ``(delta - 1 / (2 * beta)) ** 2`` on the summed (not length-normalised) log-probs, as EasyLM.

    Returns ``(losses, chosen_rewards, rejected_rewards)``, each (N,); rewards are ``beta * (pi - ref)``, detached.
    """
    if beta <= 0:
        raise ValueError(f"dpo_loss: beta={beta} must be > 0")
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"dpo_loss: label_smoothing={label_smoothing} must be in [0, 0.5)")
    delta = (policy_chosen_logps - policy_rejected_logps) - (ref_chosen_logps - ref_rejected_logps)
    if loss_type == "sigmoid":
        losses = (-(1 - label_smoothing) * F.logsigmoid(beta * delta)
                  - label_smoothing * F.logsigmoid(-beta * delta))
    elif loss_type == "ipo":
        losses = (delta - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"dpo_loss: loss_type={loss_type!r}; use one of {', '.join(LOSS_TYPES)}")
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


def reward_model_loss(chosen_scores: Tensor, rejected_scores: Tensor, margin: Tensor | None = None) -> Tensor:
    """Per-pair Bradley-Terry losses ``-logsigmoid(r_c - r_r - margin)`` (shapes (N,); ``margin`` optional)."""
    difference = chosen_scores - rejected_scores
    if margin is not None:
        difference = difference - margin
    return -F.logsigmoid(difference)


def sequence_logps(logits: Tensor, label_ids: Tensor, segment_ids: Tensor | None = None) -> Tensor:
    """Summed log-probabilities of the targets, per row or per packed segment.

    Args:
        logits: (B, T, V).
        label_ids: (B, T) next-token targets aligned with positions, -100 = no loss.
        segment_ids: (B, T) packed segment numbers 1..k (0 = padding); None sums per row.

    Returns:
        (B,) without ``segment_ids``; with them (B, S) where ``S = segment_ids.max()`` and column ``s - 1`` holds
        segment ``s``'s sum. Computed in fp32 (fp64 for a float64 model).
    """
    keep = label_ids != IGNORE_INDEX
    logps = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    picked = logps.gather(-1, label_ids.clamp(min=0).long().unsqueeze(-1)).squeeze(-1) * keep
    if segment_ids is None:
        return picked.sum(-1)
    columns = int(segment_ids.max())
    sums = picked.new_zeros(picked.shape[0], columns + 1)
    sums.scatter_add_(1, segment_ids.long(), picked)
    return sums[:, 1:]
