"""The reward-driven curriculum: rewards, the Gated SSM reward model, agents, schedule and the Birdie API.

:func:`make_agent` switches a training run between the learned Birdie curriculum and static mixtures with one
setting; ``from birdie import Birdie`` gives the seeds' API (:mod:`birdie.curriculum.api`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from birdie.curriculum.agent import Agent, BirdieAgent, BirdieAgentConfig, Decision, FixedAgent
from birdie.curriculum.config import AGENT_KINDS, SELF_MIXTURE_AGENTS, CurriculumConfig
from birdie.curriculum.reward import RewardFn, birdie_reward, class_rewards, compute_rewards, total_reward
from birdie.curriculum.reward_model import RewardModel, RewardModelConfig
from birdie.curriculum.schedule import Schedule


def class_ids_of(configs: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Class id per configuration and the class names, in first-appearance order of ``objective_class``."""
    names: list[str] = []
    for config in configs:
        if config.objective_class not in names:
            names.append(config.objective_class)
    return np.array([names.index(c.objective_class) for c in configs], dtype=np.int64), names


def make_agent(kind: str, configs: Sequence[Any] | None, total_steps: int, *, schedule: Schedule | None = None,
               birdie_agent: BirdieAgentConfig | None = None, reward_model: RewardModelConfig | None = None,
               reward_fn: RewardFn | None = None, ratios: Sequence[float] | Mapping[str, float] | None = None,
               seed: int = 0) -> Agent:
    """An agent of ``kind`` over the objective configurations ``configs`` (from ``resolve_mixture``).

    Kinds:
        ``birdie``: the learned curriculum (:class:`BirdieAgent`), starting uniform over classes.
        ``uniform``: every class the same share, split equally inside the class.
        ``fixed``: the configs' own ``prob`` ratios, or ``ratios`` (one weight per config, or
            ``{class or configuration key: weight}``).
        ``ul2``, ``ntp``: the named mixture at its published ratios; ``configs`` must be that mixture or None
            (:func:`~birdie.curriculum.config.resolve_curriculum_mixture` decides); the agent's ``configs``
            attribute holds it.

    ``schedule`` (default the paper's) gets ``total_steps`` unless it sets its own; ``birdie_agent`` and
    ``reward_model`` configure ``kind="birdie"`` (the static kinds ignore them); ``seed`` seeds the Birdie agent
    when ``birdie_agent.seed`` is None.
    """
    from birdie.curriculum.config import fixed_ratios, resolve_curriculum_mixture
    from birdie.objectives import mixture_probabilities

    if kind not in AGENT_KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; valid kinds: {', '.join(AGENT_KINDS)}")
    if configs is None or kind in SELF_MIXTURE_AGENTS:
        configs = resolve_curriculum_mixture(configs, kind)
    if not configs:
        raise ValueError(f"agent kind {kind!r} needs a non-empty list of objective configurations")
    if ratios is not None and kind != "fixed":
        raise ValueError(f"ratios are read by kind 'fixed' only, not {kind!r}")
    schedule = (schedule or Schedule()).for_run(total_steps)
    class_ids, _ = class_ids_of(configs)
    if kind == "birdie":
        birdie_agent = birdie_agent or BirdieAgentConfig()
        if birdie_agent.seed is None:
            birdie_agent = replace(birdie_agent, seed=seed)
        agent: Agent = BirdieAgent(class_ids, schedule, reward_fn, birdie_agent, reward_model or RewardModelConfig())
    elif kind == "uniform":
        agent = FixedAgent(class_ids, schedule, None, reward_fn)
    else:
        if isinstance(ratios, Mapping):
            ratios = fixed_ratios(dict(ratios), configs)
        agent = FixedAgent(class_ids, schedule, mixture_probabilities(configs) if ratios is None else ratios,
                           reward_fn)
    agent.configs = list(configs)
    return agent


__all__ = [
    "AGENT_KINDS", "Agent", "BirdieAgent", "BirdieAgentConfig", "CurriculumConfig", "Decision", "FixedAgent",
    "RewardFn", "RewardModel", "RewardModelConfig", "Schedule", "birdie_reward", "class_ids_of", "class_rewards",
    "compute_rewards", "make_agent", "total_reward",
]
