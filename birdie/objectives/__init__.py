"""The self-supervised pretraining objectives and their named mixtures.

``OBJECTIVES`` maps each objective name (the seeds' names) to its config class. :func:`make_objective` builds one
from a mixture entry ``{"name": ..., "prob": ..., **params}``; unknown names or parameters raise errors that list
the valid ones.
"""

from __future__ import annotations

from typing import Any, Mapping

from birdie.objectives.base import Example, ObjectiveConfig, Skip
from birdie.objectives.next_token_prediction import NextTokenPrediction

OBJECTIVES: dict[str, type[ObjectiveConfig]] = {
    cls.name: cls
    for cls in (
        NextTokenPrediction,
    )
}


def make_objective(entry: Mapping[str, Any]) -> ObjectiveConfig:
    """Build an objective config from a mixture entry ``{"name": ..., "prob": ..., **params}``."""
    if "name" not in entry:
        raise ValueError(f"objective entry {dict(entry)!r} has no 'name'; valid names: {', '.join(OBJECTIVES)}")
    name = entry["name"]
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid names: {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    params = {k: v for k, v in entry.items() if k != "name"}
    valid = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for objective {name!r}; valid: {', '.join(sorted(valid))}")
    return cls(**params)


__all__ = ["OBJECTIVES", "Example", "ObjectiveConfig", "Skip", "make_objective", "NextTokenPrediction"]
