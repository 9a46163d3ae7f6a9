"""Rewards from validation losses (Birdie paper, appendix A.1, with the code's sign: improvement is positive).

For one objective configuration with validation loss ``old`` at the previous evaluation and ``new`` now::

    reward = clip(-100 e * tanh(e * sqrt(old * new) * ((new - old) / old) ** 3), -1, 1)      (NaN -> 0)

The cube makes small changes nearly free and saturates large ones; the ``sqrt(old * new)`` factor makes a change
at a high loss worth about as much as a proportionally smaller change at a low loss (4.5 -> 4.2 and 0.6 -> 0.5207
both give about +0.95). Per-configuration rewards are averaged within each objective class and summed over
classes, so a class with 54 configurations counts as much as a class with one.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: A user reward: ``reward_fn(old_losses, new_losses) -> rewards``, each a float64 array of shape (K,).
RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def birdie_reward(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The paper's per-configuration reward for a loss going from ``old`` to ``new``; shapes (K,) -> (K,)."""
    old = np.asarray(old, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        relative_change = (new - old) / (old + 1e-8)
        scaled = np.e * np.sqrt(old * new) * relative_change**3
        reward = np.clip(-100.0 * np.e * np.tanh(scaled), -1.0, 1.0)
    return np.nan_to_num(reward, nan=0.0)


def compute_rewards(old: np.ndarray, new: np.ndarray, reward_fn: RewardFn | None = None) -> np.ndarray:
    """Per-configuration rewards, (K,) float64, from ``reward_fn`` (default :func:`birdie_reward`).

    A user function may return a scalar (broadcast to every configuration) or a (K,) array; NaNs become 0 as in the
    built-in reward. Any other shape raises ``ValueError``.
    """
    old = np.asarray(old, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if old.shape != new.shape or old.ndim != 1:
        raise ValueError(f"old and new losses must be 1-D arrays of one shape, got {old.shape} and {new.shape}")
    raw = (reward_fn or birdie_reward)(old, new)
    rewards = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw, dtype=np.float64)
    if rewards.ndim == 0:
        rewards = np.full(old.shape, float(rewards))
    if rewards.shape != old.shape:
        raise ValueError(
            f"reward_fn returned shape {rewards.shape}; it must return a scalar or one reward per configuration "
            f"(shape {old.shape})"
        )
    return np.nan_to_num(rewards, nan=0.0)


def class_rewards(rewards: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Mean reward of each objective class: (K,) rewards and (K,) class ids in 0..C-1 -> (C,)."""
    counts = np.bincount(class_ids)
    return np.bincount(class_ids, weights=rewards, minlength=len(counts)) / counts


def total_reward(rewards: np.ndarray, class_ids: np.ndarray) -> float:
    """The paper's scalar reward: class means summed over classes."""
    return float(class_rewards(rewards, class_ids).sum())


def class_scale(class_ids: np.ndarray) -> np.ndarray:
    """(K,) weights ``1 / (configurations in this configuration's class)``: summing ``rewards * scale`` gives
    :func:`total_reward`."""
    return 1.0 / np.bincount(class_ids)[class_ids]
