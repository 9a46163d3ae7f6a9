"""Turning what a user passes as a mixture into objective configurations with stable keys."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from birdie.objectives.base import ObjectiveConfig


def objective_key(config: ObjectiveConfig) -> str:
    """The configuration's stable ``key`` (its name and parameters)."""
    key = getattr(config, "key", None)
    if isinstance(key, str) and key:
        return key
    params = ",".join(f"{name}={value}" for name, value in config.params().items())
    return f"{config.name}({params})"


def as_objectives(mixture: str | Sequence[ObjectiveConfig | Mapping[str, Any]]) -> list[ObjectiveConfig]:
    """Objective configurations from a mixture name, a list of configs or a list of mixture entries.

    Raises:
        ValueError: the mixture is empty or two configurations share a key.
    """
    from birdie.objectives import make_objective

    if isinstance(mixture, str):
        from birdie.objectives import resolve_mixture

        objectives = list(resolve_mixture(mixture))
    else:
        objectives = [entry if isinstance(entry, ObjectiveConfig) else make_objective(entry) for entry in mixture]
    if not objectives:
        raise ValueError("the mixture is empty: give at least one objective configuration")
    keys = [objective_key(o) for o in objectives]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"the mixture lists these configurations more than once: {duplicates}; merge their probs")
    return objectives
