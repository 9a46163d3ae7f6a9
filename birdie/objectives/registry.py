"""The objective registry: names (the seeds' names) to config classes, and building a config from a mixture entry.

``OBJECTIVE_CONFIG_BY_NAME`` maps the self-supervised objectives' names (text -> example) to their config classes;
``SUPERVISED_CONFIG_BY_NAME`` those that pack an item's own prompt/completion pair. :func:`make_objective` builds
either.
"""

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
from birdie.objectives.supervised import Supervised

OBJECTIVE_CONFIG_BY_NAME: dict[str, type[ObjectiveConfig]] = {
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

#: Objectives that take a source item's own prompt/completion pair instead of making an example from text.
SUPERVISED_CONFIG_BY_NAME: dict[str, type[ObjectiveConfig]] = {Supervised.name: Supervised}


#: Parameter names of the upstream ``birdie_rl`` configs and the field that plays their role here.
UPSTREAM_PARAMETERS = {
    "mean_tokens_per_span": "mean_span_length",
    "tokens_per_mask": "mean_span_length",
    "percentage_to_shuffle": "shuffle_fraction",
    "format_style": "format",
    "paradigm_token": "paradigm",
    "paradigm_str": "paradigm",
}


def make_objective(entry: Mapping[str, Any]) -> ObjectiveConfig:
    """Build an objective config from a mixture entry ``{"name": ..., "prob": ..., **params}``."""
    if not isinstance(entry, Mapping):
        raise TypeError(f"an objective entry must be a dict like {{'name': 'infilling', 'prob': 0.5}}, got {entry!r}")
    if "name" not in entry:
        raise ValueError(f"objective entry {dict(entry)!r} has no 'name'; valid names: "
                         f"{', '.join([*OBJECTIVE_CONFIG_BY_NAME, *SUPERVISED_CONFIG_BY_NAME])}")
    name = entry["name"]
    known = {**OBJECTIVE_CONFIG_BY_NAME, **SUPERVISED_CONFIG_BY_NAME}
    if name not in known:
        raise ValueError(f"unknown objective {name!r}; valid names: {', '.join(known)}")
    cls = known[name]
    params = {k: v for k, v in entry.items() if k != "name"}
    valid = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - valid)
    if unknown:
        hints = [f"{u} -> {UPSTREAM_PARAMETERS[u]}" for u in unknown if UPSTREAM_PARAMETERS.get(u) in valid]
        hint = f" (upstream birdie names: use {', '.join(hints)})" if hints else ""
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for objective {name!r}; "
                         f"valid: {', '.join(sorted(valid))}{hint}")
    return cls(**params)
