"""From the ``data`` and ``objectives`` config sections to a :class:`~birdie.Birdie` curriculum for this rank.

The curriculum owns the pipeline (this rank's data shard, the validation batches) and the agent (the mixture,
identical on every rank: validation losses are averaged over ranks and rank 0's decision is broadcast).
"""

from __future__ import annotations

import importlib
import json
import operator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import yaml

from birdie.train.config import ConfigError, TrainConfig
from birdie.train.distributed import Runtime
from birdie.tokenizers import Tokenizer

NAMED_MIXTURES = ("birdie", "ul2", "ul2_decoder", "ntp")
#: the demo's mixture: one or two configurations per objective class, sized for 256-token rows
DEMO_MIXTURE = Path(__file__).with_name("demo_mixture.yaml")


def import_callable(spec: str, field: str = "data.callable") -> Callable[..., Any]:
    """``'package.module:function'`` -> the function; errors name the option ``field``."""
    module_name, _, attribute = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"{field}={spec!r} cannot be imported: {error}") from None
    if not callable(target):
        raise ConfigError(f"{field}={spec!r} is not callable")
    return target


def data_source(config: TrainConfig) -> Any:
    """What the pipeline reads: None (synthetic stories), file paths, a shard directory, or a callable."""
    data = config.data
    if data.source == "synthetic":
        return None
    if data.source == "callable":
        return import_callable(data.callable)
    if data.source == "shards":
        if len(data.paths) != 1:
            raise ConfigError(f"data.paths={data.paths!r} must name one shard directory (with manifest.jsonl) "
                              "when data.source=shards")
        return data.paths[0]
    return list(data.paths)


def objective_entries(mixture: str) -> Any:
    """A named mixture, ``demo`` (:data:`DEMO_MIXTURE`), ``supervised`` (the records' own prompt/completion pairs),
    or the entries of a YAML/JSON mixture file."""
    if mixture in NAMED_MIXTURES:
        return mixture
    if mixture == "supervised":
        return [{"name": "supervised"}]
    path = DEMO_MIXTURE if mixture == "demo" else Path(mixture)
    if not path.is_file():
        raise ConfigError(f"objectives.mixture={mixture!r} is neither a named mixture "
                          f"({', '.join(NAMED_MIXTURES)}, demo, supervised) nor an existing YAML/JSON file")
    entries = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    if not isinstance(entries, list):
        raise ConfigError(f"objectives.mixture={mixture!r} must hold a list of objective entries")
    return entries


def fixed_ratios(ratios: dict[str, float], configs: list[Any]) -> list[float]:
    """One weight per configuration from ``{configuration key or objective class: weight}``.

    A class weight is split equally over the class's configurations; configurations not named get 0.
    """
    keys = [c.key for c in configs]
    classes = [c.objective_class for c in configs]
    unknown = sorted(set(ratios) - set(keys) - set(classes))
    if unknown:
        raise ConfigError(f"objectives.ratios names {', '.join(unknown)}, not in the mixture; valid: "
                          f"{', '.join(dict.fromkeys(classes))} (classes) or {', '.join(keys)} (configurations)")
    weights = [float(ratios.get(key, 0.0)) for key in keys]
    for name, weight in ratios.items():
        if name in classes and name not in keys:
            members = [i for i, c in enumerate(classes) if c == name]
            for i in members:
                weights[i] += float(weight) / len(members)
    if sum(weights) <= 0:
        raise ConfigError("objectives.ratios gives every configuration weight 0")
    return weights


def build_curriculum(config: TrainConfig, tokenizer: Tokenizer, runtime: Runtime, micro_batch_size: int,
                     log_path: str | None) -> Any:
    """The :class:`~birdie.Birdie` curriculum feeding this rank micro-batches of ``micro_batch_size`` rows."""
    from birdie.curriculum.api import Birdie
    from birdie.objectives import resolve_mixture

    objectives = config.objectives
    entries = objective_entries(objectives.mixture)
    options = dict(objectives.agent_options)
    if objectives.agent == "fixed" and objectives.ratios:
        options["ratios"] = fixed_ratios(objectives.ratios, resolve_mixture(entries))
    if objectives.agent in ("ul2", "ntp"):
        entries = None
    text_key = config.data.text_key
    # Ranks of one tensor-parallel group read the same data: the pipeline sees data ranks, not process ranks.
    placement = SimpleNamespace(process_index=runtime.data_rank, num_processes=runtime.data_world,
                                device=runtime.device)
    settings = {
        "tokenizer": tokenizer,
        "objectives": entries,
        "ds": data_source(config),
        "text_grabber_fn": None if text_key == "text" else operator.itemgetter(text_key),
        "batch_size": micro_batch_size,
        "sequence_length": config.train.sequence_length,
        "num_workers": config.data.num_workers,
        "num_steps": config.train.steps,
        "agent": objectives.agent,
        "agent_options": options,
        "accelerator": placement,
        "seed": config.train.seed,
        "log_path": log_path,
        "pipeline_options": {"prompt_key": config.data.prompt_key, "completion_key": config.data.completion_key},
    }
    for key in ("warmup_steps", "steps_between_evaluations", "num_validation_batches", "validation_batch_size",
                "decision_delay_batches", "background_decisions"):
        if key in options:
            settings[key] = options.pop(key)
    try:
        return Birdie(settings)
    except ValueError as error:
        raise ConfigError(f"objectives/data: {error}") from None
