"""The reward-driven curriculum: rewards, the Gated SSM reward model, agents, schedule and the Birdie API.

:func:`make_agent` switches a training run between the learned Birdie curriculum and static mixtures with one
setting; ``from birdie import Birdie`` gives the seeds' API (:mod:`birdie.curriculum.api`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Sequence

import numpy as np

from birdie.curriculum.agent import Agent, BirdieAgent, BirdieAgentConfig, Decision, FixedAgent
from birdie.curriculum.reward import RewardFn, birdie_reward, class_rewards, compute_rewards, total_reward
from birdie.curriculum.reward_model import RewardModel, RewardModelConfig
from birdie.curriculum.schedule import Schedule

AGENT_KINDS = ("birdie", "ul2", "ntp", "uniform", "fixed")


def class_ids_of(configs: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Class id per configuration and the class names, in first-appearance order of ``objective_class``."""
    names: list[str] = []
    for config in configs:
        if config.objective_class not in names:
            names.append(config.objective_class)
    return np.array([names.index(c.objective_class) for c in configs], dtype=np.int64), names


def _split_options(options: dict[str, Any], target: type) -> dict[str, Any]:
    return {f.name: options.pop(f.name) for f in fields(target) if f.name in options}


def make_agent(kind: str, configs: Sequence[Any] | None, total_steps: int, **options: Any) -> Agent:
    """An agent of ``kind`` over the objective configurations ``configs`` (from ``resolve_mixture``).

    Kinds:
        ``birdie``: the learned curriculum (:class:`BirdieAgent`), starting uniform over classes.
        ``uniform``: every class the same share, split equally inside the class.
        ``fixed``: the configs' own ``prob`` ratios, or ``ratios=[...]`` (one weight per config).
        ``ul2``, ``ntp``: the named mixture at its published ratios; ``configs`` must be that mixture (pass None
            to use ``resolve_mixture(kind)``); the agent's ``configs`` attribute holds it.

    Options (all keyword): :class:`Schedule` fields (``warmup_steps``, ``eval_steps``, ``eval_every``,
    ``steps_between_evaluations``, ``explore_start``, ``explore_end``, ``explore_fraction``), ``reward_fn``,
    :class:`BirdieAgentConfig` fields (``num_candidates``, ``num_proposals``, ``top_k``, ``proposal_floor``,
    ``seed``), :class:`RewardModelConfig` fields (``width``, ``num_layers``, ``train_steps``, ``lr``, ...), and
    ``ratios`` for ``fixed``. Static kinds validate and ignore the learning options, so one configuration serves
    every kind. Unknown options raise ``ValueError`` listing the valid ones.
    """
    from birdie.objectives import mixture_probabilities, resolve_mixture

    if kind not in AGENT_KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; valid kinds: {', '.join(AGENT_KINDS)}")
    if kind in ("ul2", "ntp"):
        named = resolve_mixture(kind)
        if configs is not None and [c.key for c in configs] != [c.key for c in named]:
            raise ValueError(f"agent kind {kind!r} trains on the {kind!r} mixture; pass objectives={kind!r} "
                             "(or configs=None), or use kind='fixed' for your own objectives")
        configs = named
    if not configs:
        raise ValueError(f"agent kind {kind!r} needs a non-empty list of objective configurations")
    options = dict(options)
    schedule = Schedule(total_steps=total_steps, **_split_options(options, Schedule))
    reward_fn = options.pop("reward_fn", None)
    class_ids, _ = class_ids_of(configs)
    agent_config = BirdieAgentConfig(**_split_options(options, BirdieAgentConfig))
    model_config = RewardModelConfig(**_split_options(options, RewardModelConfig))
    if kind == "birdie":
        agent: Agent = BirdieAgent(class_ids, schedule, reward_fn, agent_config, model_config)
    elif kind == "uniform":
        agent = FixedAgent(class_ids, schedule, None, reward_fn)
    else:
        ratios = options.pop("ratios", None) if kind == "fixed" else None
        agent = FixedAgent(class_ids, schedule, mixture_probabilities(configs) if ratios is None else ratios,
                           reward_fn)
    if options:
        valid = sorted({f.name for t in (Schedule, BirdieAgentConfig, RewardModelConfig) for f in fields(t)}
                       - {"total_steps"} | {"reward_fn", "ratios"})
        raise ValueError(f"unknown agent option(s) {', '.join(sorted(options))} for kind {kind!r}; "
                         f"valid: {', '.join(valid)}")
    agent.configs = list(configs)
    return agent


__all__ = [
    "AGENT_KINDS", "Agent", "BirdieAgent", "BirdieAgentConfig", "Decision", "FixedAgent", "RewardFn",
    "RewardModel", "RewardModelConfig", "Schedule", "birdie_reward", "class_ids_of", "class_rewards",
    "compute_rewards", "make_agent", "total_reward",
]
