"""Candidate mixtures for the agent and how they are scored (paper Fig. 4).

Candidates are probability vectors over the K objective configurations. Two kinds are drawn:

* random points of the simplex, drawn per class: class shares from a Dirichlet over the C classes, then each
  class's share split by a Dirichlet over its configurations, both with concentrations drawn per candidate
  log-uniformly in [0.1, 1] -- from near-uniform mixtures to ones that put most mass on a few classes or
  configurations. (The paper's normalized uniform noise over all K configurations gives every class a share
  close to its size, e.g. ~52% autoencoding in the 104-configuration space, so it never proposes favouring a
  small class);
* class proposals: 1 or 2 random classes share most of the mass (random weights inside each class), the other
  classes share ``floor``; these are also the exploration actions.

A candidate's score is ``sum_k predicted_reward_k / (configurations in k's class)``, the predicted total reward
(class means summed over classes); the action is the mean of the ``top_k`` best candidates.
"""

from __future__ import annotations

import numpy as np

from birdie.curriculum.reward import class_scale


def _dirichlet_rows(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """(count, size) Dirichlet samples, each row with its own concentration, log-uniform in [0.1, 1]."""
    concentration = np.exp(rng.uniform(np.log(0.1), 0.0, size=(count, 1)))
    draws = rng.gamma(np.broadcast_to(concentration, (count, size))) + 1e-12
    return draws / draws.sum(axis=1, keepdims=True)


def simplex_candidates(rng: np.random.Generator, class_ids: np.ndarray, count: int) -> np.ndarray:
    """(count, K) random mixtures: Dirichlet class shares times Dirichlet within-class splits."""
    num_classes = int(class_ids.max()) + 1
    candidates = _dirichlet_rows(rng, count, num_classes)[:, class_ids]
    within = _dirichlet_rows(rng, count, len(class_ids))
    for c in range(num_classes):
        members = class_ids == c
        candidates[:, members] *= within[:, members] / within[:, members].sum(axis=1, keepdims=True)
    return candidates / candidates.sum(axis=1, keepdims=True)


def class_proposals(rng: np.random.Generator, class_ids: np.ndarray, count: int, floor: float = 0.05) -> np.ndarray:
    """(count, K) mixtures that put ``1 - floor`` of the mass on 1 or 2 random classes.

    Inside each chosen class the mass is split by uniform random weights; every other class gets an equal share of
    ``floor``, split equally among its configurations. With a single class the proposal is random within it.
    """
    num_classes = int(class_ids.max()) + 1
    per_config_floor = np.zeros(len(class_ids)) if num_classes == 1 else (
        floor / (num_classes - 1) * class_scale(class_ids)
    )
    proposals = np.empty((count, len(class_ids)))
    for row in range(count):
        chosen = rng.choice(num_classes, size=min(int(rng.integers(1, 3)), num_classes), replace=False)
        focus = (class_ids[:, None] == chosen).any(axis=1)
        weights = np.where(focus, rng.uniform(0.05, 1.0, size=len(class_ids)), 0.0)
        for c in chosen:
            members = class_ids == c
            weights[members] /= weights[members].sum() * len(chosen)
        rest = 0.0 if num_classes == 1 else floor
        proposals[row] = np.where(focus, weights * (1.0 - rest), per_config_floor)
    return proposals / proposals.sum(axis=1, keepdims=True)


def score_candidates(predicted_rewards: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """(N, K) predicted per-configuration rewards -> (N,) predicted total reward (class-averaged, summed)."""
    return predicted_rewards @ class_scale(class_ids)


def top_k_mean(candidates: np.ndarray, scores: np.ndarray, top_k: int) -> np.ndarray:
    """The normalized mean of the ``top_k`` highest-scoring candidates; (N, K), (N,) -> (K,)."""
    best = np.argsort(-scores, kind="stable")[:top_k]
    action = candidates[best].mean(axis=0)
    return action / action.sum()


def uniform_over_classes(class_ids: np.ndarray) -> np.ndarray:
    """Every class gets the same share, split equally among its configurations (the paper's initial mixture)."""
    scale = class_scale(class_ids)
    return scale / scale.sum()
