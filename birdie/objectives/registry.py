"""The objective registry: names (the seeds' names) to config classes, and building a config from a mixture entry."""

from __future__ import annotations

from typing import Any, Mapping

from birdie.objectives.autoencoding import Autoencoding, AutoencodingWithDeshuffling
from birdie.objectives.base import ObjectiveConfig
from birdie.objectives.copying import Copying
from birdie.objectives.deshuffling import Deshuffling
from birdie.objectives.infilling import Infilling
from birdie.objectives.next_token_prediction import NextTokenPrediction
from birdie.objectives.prefix_language_modeling import PrefixLanguageModeling
from birdie.objectives.selective_copying import SelectiveCopying

OBJECTIVES: dict[str, type[ObjectiveConfig]] = {
    cls.name: cls
    for cls in (
        NextTokenPrediction,
        PrefixLanguageModeling,
        Copying,
        Deshuffling,
        Infilling,
        Autoencoding,
        AutoencodingWithDeshuffling,
        SelectiveCopying,
    )
}


def make_objective(entry: Mapping[str, Any]) -> ObjectiveConfig:
    """Build an objective config from a mixture entry ``{"name": ..., "prob": ..., **params}``."""
    if not isinstance(entry, Mapping):
        raise TypeError(f"an objective entry must be a dict like {{'name': 'infilling', 'prob': 0.5}}, got {entry!r}")
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
