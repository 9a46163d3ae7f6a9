"""``BirdieConfig``: what :class:`~birdie.Birdie` needs -- the data, the batch shape, the device -- around a
:class:`~birdie.curriculum.config.CurriculumConfig`, and the seeds' flat dict keys mapped onto it.

A seeds-style dict is read by :meth:`BirdieConfig.from_mapping`: the seeds' README keys (``tokenizer``, ``ds``,
``batch_size``, ``sequence_length``, ``num_workers``, ``steps_between_evaluations``, ``num_steps``,
``accelerator``, ``objectives``, ``reward_fn``, ``text_grabber_fn``, ``start_generating_paradigm``), their older
spellings (:data:`ALIASES`), this package's :class:`BirdieConfig` fields, the top-level
:class:`CurriculumConfig` fields (``agent``, ``decision_delay_batches``, ...) and its nested sections as dicts or
dataclasses (``"reward_model": {"train_steps": 50}``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from birdie.checks import ConfigError, check
from birdie.curriculum.config import CurriculumConfig
from birdie.curriculum.reward import RewardFn
from birdie.data.packing import BATCH_KEYS

#: The keys of the seeds' batches that a seeds-style model's ``forward`` takes (the default ``batch_keys``).
SEED_BATCH_KEYS = ("input_ids", "label_ids", "segment_ids", "attention_mask")

#: Seeds' alternative spellings -> the canonical key.
ALIASES = {"pretraining_objectives": "objectives", "dataset": "ds", "max_sequence_length": "sequence_length",
           "total_steps": "num_steps"}
#: Flat dict keys that set a field of the curriculum's schedule.
SCHEDULE_KEYS = ("steps_between_evaluations", "warmup_steps")
_NESTED = {f.name: f.default_factory for f in dataclasses.fields(CurriculumConfig)
           if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)}


@dataclass
class BirdieConfig:
    """The configuration of :class:`~birdie.Birdie`.

    Attributes:
        tokenizer: any tokenizer with ``encode``/``decode`` or a birdie tokenizer spec such as ``"bytes"``.
        ds: training documents: ``ds(split, worker_id, num_workers, rng_seed) -> iterable``, paths, a HF dataset;
            default the embedded synthetic stories. ``ds_validation``: validation documents (default ``ds``).
        text_grabber_fn: ``item -> text`` (default ``item["text"]`` or the item itself).
        batch_size, sequence_length: batch shape. num_workers: pipeline worker processes (0 = in-process).
        num_steps: training steps in the run (the schedule's and the exploration's horizon).
        reward_fn: ``reward_fn(old_losses, new_losses) -> rewards`` (numpy (K,) arrays); default the paper's.
        accelerator: optional HF ``accelerate.Accelerator``: gives the device, rank and world size.
        device: where batches go when there is no accelerator (default CPU). move_to_gpu_fn: custom
            ``batch -> batch`` transfer, used instead of ``.to(device)``.
        seed: fixes the batch stream, the validation set and the agent (unless ``birdie_agent.seed`` is set).
        pipeline_options: extra :class:`birdie.data.PipelineConfig` fields (``num_streams``, ``prefetch``, ...).
        log_path: JSONL decision log (written on rank 0); None = no file.
        batch_keys: the keys of every batch handed out (training and validation), of
            :data:`~birdie.data.packing.BATCH_KEYS`. Default the seeds' four (:data:`SEED_BATCH_KEYS`), so that a
            model whose ``forward`` takes exactly ``input_ids, label_ids, segment_ids, attention_mask`` runs
            ``model(**batch)``; add ``position_ids`` (positions restarting in every packed segment) for models that
            read them (birdie's own models derive them from ``segment_ids`` when absent).
        start_generating_paradigm: the separator between an example's prefix and its target, as in the paper's
            layout (A.3): its tokens follow the prefix in the causal region, carry no loss, and the last of them
            predicts the target's first token. None: the tokenizer's one ``<|begin_generating|>`` special id (the
            paper's begin-generating token). A string (the seeds' README: ``"\\n<|assistant|>\\n"``) is encoded
            with the tokenizer; it must give at least one token.
        curriculum: the mixture, the agent and their settings (:class:`CurriculumConfig`).
    """

    tokenizer: Any
    ds: Any = None
    ds_validation: Any = None
    text_grabber_fn: Callable[[Any], Any] | None = None
    batch_size: int = 8
    sequence_length: int = 2048
    num_workers: int = 1
    num_steps: int = 16384
    reward_fn: RewardFn | None = None
    accelerator: Any = None
    device: Any = None
    move_to_gpu_fn: Callable[[dict[str, torch.Tensor]], Any] | None = None
    seed: int = 0
    pipeline_options: dict[str, Any] = field(default_factory=dict)
    log_path: str | None = None
    batch_keys: tuple[str, ...] = SEED_BATCH_KEYS
    start_generating_paradigm: str | None = None
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def __post_init__(self) -> None:
        self.batch_keys = tuple(self.batch_keys)
        check(self, "batch_keys", "input_ids" in self.batch_keys and set(self.batch_keys) <= set(BATCH_KEYS),
              f"must include input_ids and name only batch keys ({', '.join(BATCH_KEYS)})")
        check(self, "start_generating_paradigm", self.start_generating_paradigm is None
              or (isinstance(self.start_generating_paradigm, str) and self.start_generating_paradigm != ""),
              "must be a non-empty string (or None for the <|begin_generating|> token)")
        check(self, "curriculum", isinstance(self.curriculum, CurriculumConfig), "must be a CurriculumConfig")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | "BirdieConfig") -> "BirdieConfig":
        """Build from a seeds-style dict (see the module docstring); an unknown key, a key given under two names,
        or a replaced key (``agent_options``) raises :class:`~birdie.checks.ConfigError` naming it."""
        if isinstance(config, BirdieConfig):
            return config
        own = {f.name for f in dataclasses.fields(cls)} - {"curriculum"}
        curriculum_fields = {f.name for f in dataclasses.fields(CurriculumConfig)}
        values: dict[str, Any] = {}
        curriculum: dict[str, Any] = {}
        schedule: dict[str, Any] = {}
        for key, value in config.items():
            name = ALIASES.get(key, key)
            if name == "agent_options":
                raise ConfigError("Birdie config key 'agent_options' is replaced by typed sections: give 'schedule', "
                                  "'birdie_agent' and 'reward_model' as dicts or dataclasses (e.g. 'reward_model': "
                                  "{'train_steps': 50}); see birdie.curriculum.CurriculumConfig")
            target, name = ((curriculum, "mixture") if name == "objectives" else
                            (schedule, name) if name in SCHEDULE_KEYS else
                            (curriculum, name) if name in curriculum_fields else
                            (values, name) if name in own | {"curriculum"} else (None, name))
            if target is None:
                names = sorted(own | curriculum_fields | set(ALIASES) | set(SCHEDULE_KEYS) | {"objectives"})
                raise ConfigError(f"unknown Birdie config key {key!r}; valid keys: {', '.join(names)}")
            if name in target:
                raise ConfigError(f"Birdie config gives {name!r} twice (as {key!r} and another spelling); keep one")
            target[name] = value
        if "tokenizer" not in values:
            raise ConfigError("Birdie config needs 'tokenizer' (any object with encode/decode, or 'bytes')")
        values["curriculum"] = _curriculum(values.get("curriculum"), curriculum, schedule)
        return cls(**values)


def _curriculum(given: Any, flat: dict[str, Any], schedule: dict[str, Any]) -> CurriculumConfig:
    """A :class:`CurriculumConfig` from a ``curriculum`` value (dataclass or dict) and the flat keys."""
    if isinstance(given, CurriculumConfig):
        if flat or schedule:
            raise ConfigError(f"Birdie config gives 'curriculum' and curriculum keys {sorted({*flat, *schedule})}; "
                              "set them inside the CurriculumConfig")
        return given
    given = dict(given or {})
    values = {**given, **flat}
    twice = set(given) & set(flat)
    if isinstance(values.get("schedule"), Mapping):
        twice |= set(schedule) & set(values["schedule"])
    if twice:
        raise ConfigError(f"Birdie config gives {', '.join(map(repr, sorted(twice)))} twice (flat and in a "
                          "section); keep one")
    for name, kind in _NESTED.items():
        section = values.get(name)
        if isinstance(section, Mapping):
            values[name] = _build(kind, dict(section), name)
    if schedule:
        base = values.get("schedule") or _NESTED["schedule"]()
        values["schedule"] = dataclasses.replace(base, **schedule)
    return CurriculumConfig(**values)


def _build(kind: type, values: dict[str, Any], name: str) -> Any:
    valid = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(f"Birdie config {name!r} has unknown key(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(sorted(valid))}")
    return kind(**values)
