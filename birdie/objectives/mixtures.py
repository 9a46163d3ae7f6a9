"""Named objective mixtures and user-written ones.

A mixture is a list of objective configs whose ``prob`` fields are sampling probabilities. Named mixtures:

* ``birdie`` -- the paper's action space (birdie.md §2.1): 104 configurations in 7 classes, each class weighted
  1/7 and its probability split equally among the class's configurations. Paradigm tokens are prepended or
  appended 50/50 (paper A.6).
* ``ul2`` -- the paper's UL2 baseline: R-denoisers (15%, spans 3 and 8) 0.2 each, X-denoisers (50% / spans 3, 8;
  15% and 50% / span 64) 0.1 each, S-denoiser (prefix-LM 75%) 0.2.
* ``ul2_decoder`` -- decoder-only UL2 (Garcia et al. 2023): NTP 0.6, prefix-LM 0.2, infilling (15%, 3) and
  (50%, 32) 0.1 each.
* ``ntp`` -- plain next-token prediction.

A user mixture is a list of entries ``{"name": ..., "prob": ..., **params}`` (or configs); see
:func:`resolve_mixture`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from birdie.objectives.autoencoding import Autoencoding, AutoencodingWithDeshuffling
from birdie.objectives.base import ObjectiveConfig
from birdie.objectives.copying import Copying
from birdie.objectives.deshuffling import Deshuffling
from birdie.objectives.infilling import Infilling
from birdie.objectives.next_token_prediction import NextTokenPrediction
from birdie.objectives.prefix_language_modeling import PrefixLanguageModeling
from birdie.objectives.registry import OBJECTIVE_CONFIG_BY_NAME, make_objective
from birdie.objectives.selective_copying import SelectiveCopying

RATES = (0.05, 0.15, 0.5)
SPANS = (3.0, 8.0, 32.0)


def _infilling_grid() -> list[ObjectiveConfig]:
    """The paper's 26 infilling configs: span 3 only at 128-256 tokens; a config whose expected gap between spans
    (``span / rate / 2``) exceeds the longest chunk is dropped (v1's rule, which removes (32, 5%, 128-256))."""
    configs = []
    for length in ((128, 256), (256, 512), (512, 1024), (1024, 2048)):
        for rate in RATES:
            for span in SPANS:
                if span == 3.0 and length[1] > 256:
                    continue
                if int(span / rate / 2 + 1e-9) > length[1]:
                    continue
                configs.append(Infilling(corruption_rate=rate, mean_span_length=span, length=length))
    return configs


def birdie() -> list[ObjectiveConfig]:
    """The paper's Birdie action space: 7 classes, 104 configurations, classes weighted uniformly."""
    configs: list[ObjectiveConfig] = [NextTokenPrediction(), PrefixLanguageModeling()]
    configs += [
        cls(corruption_rate=rate, mean_span_length=span, length=length)
        for cls in (Autoencoding, AutoencodingWithDeshuffling)
        for length in ((192, 384), (384, 768), (768, 1536))
        for rate in RATES
        for span in SPANS
    ]
    configs += _infilling_grid()
    configs += [
        SelectiveCopying(num_spans=(spans, spans), format=fmt, length=length)
        for length in ((384, 768), (768, 1536))
        for spans in (1, 2, 3, 4)
        for fmt in ("query_context", "context_query")
    ]
    configs += [
        Deshuffling(shuffle_fraction=fraction, length=length)
        for length in ((128, 256), (512, 1024))
        for fraction in (0.5, 1.0)
    ]
    configs += [Copying(length=length) for length in ((128, 256), (512, 1024))]
    return uniform_over_classes(configs)


def ul2() -> list[ObjectiveConfig]:
    """The paper's UL2 baseline (v1 ``configs/ul2.py`` weights 4:4:2:2:2:2:4); mode tokens are prepended."""
    def infill(rate: float, span: float, prob: float) -> Infilling:
        return Infilling(corruption_rate=rate, mean_span_length=span, length=None, prob=prob, paradigm="prepend")

    return [
        infill(0.15, 3.0, 0.2), infill(0.15, 8.0, 0.2),
        infill(0.5, 3.0, 0.1), infill(0.5, 8.0, 0.1), infill(0.15, 64.0, 0.1), infill(0.5, 64.0, 0.1),
        PrefixLanguageModeling(prefix_fraction=0.75, prob=0.2, paradigm="prepend"),
    ]


def ul2_decoder() -> list[ObjectiveConfig]:
    """Decoder-only UL2 (paper Table 6): 60% NTP, 20% prefix-LM, 10% + 10% infilling."""
    return [
        NextTokenPrediction(prob=0.6, paradigm="prepend"),
        PrefixLanguageModeling(prefix_fraction=0.75, prob=0.2, paradigm="prepend"),
        Infilling(corruption_rate=0.15, mean_span_length=3.0, length=None, prob=0.1, paradigm="prepend"),
        Infilling(corruption_rate=0.5, mean_span_length=32.0, length=None, prob=0.1, paradigm="prepend"),
    ]


def ntp() -> list[ObjectiveConfig]:
    """Plain causal language modelling."""
    return [NextTokenPrediction()]


MIXTURES: dict[str, Callable[[], list[ObjectiveConfig]]] = {
    "birdie": birdie,
    "ul2": ul2,
    "ul2_decoder": ul2_decoder,
    "ntp": ntp,
}


def uniform_over_classes(configs: Sequence[ObjectiveConfig]) -> list[ObjectiveConfig]:
    """``configs`` reweighted so every objective class has the same total probability, split equally within it."""
    per_class = Counter(c.objective_class for c in configs)
    return [dataclasses.replace(c, prob=1.0 / (len(per_class) * per_class[c.objective_class])) for c in configs]


def resolve_mixture(spec: str | ObjectiveConfig | Mapping[str, Any] | Sequence[Any]) -> list[ObjectiveConfig]:
    """Objective configs of a mixture, with ``prob`` normalised to sum to 1.

    Args:
        spec: a name in :data:`MIXTURES`; one config or entry; or a list of configs and entries
            ``{"name": ..., "prob": ..., **params}`` (``prob`` defaults to 1, i.e. equal weights).

    Raises:
        ValueError: unknown mixture/objective/parameter names (the message lists the valid ones), an empty list,
            or two entries with the same configuration key (merge them by adding their probabilities).
    """
    if isinstance(spec, str):
        if spec not in MIXTURES:
            raise ValueError(f"unknown mixture {spec!r}; valid names: {', '.join(MIXTURES)} "
                             "(or a list of {'name': ..., 'prob': ...} entries)")
        configs = MIXTURES[spec]()
    elif isinstance(spec, (ObjectiveConfig, Mapping)):
        configs = [_as_config(spec)]
    elif isinstance(spec, Sequence):
        configs = [_as_config(item) for item in spec]
    else:
        raise TypeError(f"a mixture is a name ({', '.join(MIXTURES)}) or a list of objective entries, got {spec!r}")
    if not configs:
        raise ValueError("a mixture needs at least one objective")
    duplicates = sorted(key for key, count in Counter(c.key for c in configs).items() if count > 1)
    if duplicates:
        raise ValueError(f"mixture lists the same configuration more than once: {', '.join(duplicates)}; "
                         "merge the entries by adding their probs")
    total = sum(c.prob for c in configs)
    return [dataclasses.replace(c, prob=c.prob / total) for c in configs]


def mixture_probabilities(configs: Sequence[ObjectiveConfig]) -> np.ndarray:
    """Sampling probabilities of ``configs`` (their ``prob`` fields, normalised), float64."""
    probs = np.array([c.prob for c in configs], dtype=np.float64)
    return probs / probs.sum()


def class_probabilities(configs: Sequence[ObjectiveConfig]) -> dict[str, float]:
    """Total probability of each objective class in ``configs`` (normalised), in first-appearance order."""
    totals: dict[str, float] = {}
    for config, prob in zip(configs, mixture_probabilities(configs)):
        totals[config.objective_class] = totals.get(config.objective_class, 0.0) + float(prob)
    return totals


def representative_objectives() -> list[ObjectiveConfig]:
    """One default configuration of every objective (what ``birdie objectives show`` prints by default)."""
    return [cls() for cls in OBJECTIVE_CONFIG_BY_NAME.values()]


def _as_config(item: Any) -> ObjectiveConfig:
    if isinstance(item, ObjectiveConfig):
        return item
    return make_objective(item)
