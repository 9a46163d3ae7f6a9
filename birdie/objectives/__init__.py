"""The self-supervised pretraining objectives and their named mixtures.

``OBJECTIVE_CONFIG_BY_NAME`` maps each objective name (the seeds' names) to its config class. :func:`make_objective`
builds one from a mixture entry ``{"name": ..., "prob": ..., **params}``; unknown names or parameters raise errors
that list the valid ones. ``SUPERVISED_CONFIG_BY_NAME`` holds ``supervised`` (:class:`Supervised`), which packs a
source item's own prompt/completion pair instead of transforming text; ``make_objective`` builds it too.
:func:`resolve_mixture` turns a mixture name or a list of entries into configs whose ``prob`` sum to 1; every config
has an ``objective_class`` (the curriculum's reward group) and a stable ``key``.
"""

from __future__ import annotations

from birdie.objectives.autoencoding import Autoencoding, AutoencodingWithDeshuffling
from birdie.objectives.base import Example, ObjectiveConfig, Skip
from birdie.objectives.copying import Copying
from birdie.objectives.deshuffling import Deshuffling
from birdie.objectives.infilling import Infilling
from birdie.objectives.mixtures import (
    MIXTURES,
    class_probabilities,
    mixture_probabilities,
    representative_objectives,
    resolve_mixture,
)
from birdie.objectives.next_token_prediction import NextTokenPrediction
from birdie.objectives.prefix_language_modeling import PrefixLanguageModeling
from birdie.objectives.registry import OBJECTIVE_CONFIG_BY_NAME, SUPERVISED_CONFIG_BY_NAME, make_objective
from birdie.objectives.selective_copying import SelectiveCopying
from birdie.objectives.supervised import Supervised

__all__ = [
    "MIXTURES",
    "OBJECTIVE_CONFIG_BY_NAME",
    "SUPERVISED_CONFIG_BY_NAME",
    "Autoencoding",
    "AutoencodingWithDeshuffling",
    "Copying",
    "Deshuffling",
    "Example",
    "Infilling",
    "NextTokenPrediction",
    "ObjectiveConfig",
    "PrefixLanguageModeling",
    "SelectiveCopying",
    "Skip",
    "Supervised",
    "class_probabilities",
    "make_objective",
    "mixture_probabilities",
    "representative_objectives",
    "resolve_mixture",
]
