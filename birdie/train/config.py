"""The training configuration: nested dataclasses that validate their own fields.

A :class:`TrainConfig` has one section per concern (``model``, ``data``, ``curriculum``, ``train``,
``optimizer``, ``schedule``, ``checkpoint``, ``logging``, ``distributed``); a section may nest further dataclasses
(``curriculum.schedule``, ``curriculum.birdie_agent``, ``curriculum.reward_model``: the curriculum's own
:class:`~birdie.curriculum.config.CurriculumConfig`). Every leaf carries a ``help`` text in its metadata;
``birdie train --help`` is generated from it, and every leaf can be set from a YAML/TOML file or with
``--section.field value`` / ``--section.sub.field value`` on the command line (see :mod:`birdie.train.config_io`).

Sections validate their fields with :func:`birdie.checks.check`; built through :mod:`birdie.train.config_io`, an
invalid value raises :class:`ConfigError` naming the dotted field, its value and the requirement, e.g.
``optimizer.lr=-1.0 must be > 0`` or ``curriculum.schedule.warmup_steps=-1 must be >= 0``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal

from birdie.checks import ConfigError, check, option
from birdie.curriculum.config import CurriculumConfig


@dataclass
class ModelSection:
    """Which model to train: a preset, its overrides, optional pretrained weights (the architecture itself is
    :class:`birdie.models.config.ModelConfig`)."""

    preset: str = option("hawk-tiny", "model preset name (`birdie models list` shows them)")
    overrides: dict[str, Any] = option(dict, "preset overrides as a mapping, e.g. '{n_layers: 2, d_model: 64}'")
    pretrained: str | None = option(None, "uptraining: initialise the weights from an export or checkpoint dir")
    strict: bool = option(True, "with pretrained: require exactly matching keys (false reports the differences)")
    compile: bool = option(False, "wrap the model in torch.compile")

    def __post_init__(self) -> None:
        check(self, "preset", bool(self.preset), "must name a preset")


@dataclass
class DataConfig:
    source: Literal["synthetic", "files", "shards", "callable", "open_lm"] = option(
        "synthetic", "synthetic stories | local text files (paths) | pre-tokenized shards (paths) | "
        "a Python callable (callable) | open_lm webdataset tars (paths: brace globs or manifest.jsonl)")
    paths: list[str] = option(list, "files or globs (source=files: .txt/.jsonl/.json/.parquet) or shard dirs")
    callable: str | None = option(None, "source=callable: 'module:function' with the signature "
                                        "ds(split, worker_id, num_workers, rng_seed) -> iterable")
    text_key: str = option("text", "field holding the text in each record")
    prompt_key: str = option("prefix", "with curriculum.mixture=supervised: field holding the prompt (bidirectional, "
                                       "no loss) of a prompt/completion record")
    completion_key: str = option("target", "with curriculum.mixture=supervised: field holding the completion (the "
                                           "loss) of a prompt/completion record")
    tokenizer: str = option("bytes", "tokenizer spec: bytes | tiktoken:NAME | path of a tokenizer.json")
    num_workers: int = option(0, "pipeline worker processes per rank (0 = in the training process)")
    resampled: bool = option(False, "source=open_lm: draw shards with replacement (open_lm's --dataset-resampled)")
    batch_timeout_s: float | None = option(300.0, "with workers: fail when the worker owing the next batch "
                                                  "delivers nothing for this many seconds (none = wait forever)")

    def __post_init__(self) -> None:
        check(self, "num_workers", self.num_workers >= 0, "must be >= 0")
        check(self, "batch_timeout_s", self.batch_timeout_s is None or (math.isfinite(self.batch_timeout_s)
                                                                        and self.batch_timeout_s > 0),
              "must be > 0 seconds (or none to wait forever)")
        if self.source in ("files", "shards", "open_lm"):
            check(self, "paths", bool(self.paths), f"must list at least one path when data.source={self.source}")
        if self.source == "callable":
            check(self, "callable", bool(self.callable) and ":" in self.callable,
                  "must be 'module:function' when data.source=callable")


@dataclass
class TrainLoopConfig:
    steps: int = option(300, "optimizer steps to train for")
    sequence_length: int = option(256, "tokens per row")
    batch_size: int = option(16, "global batch in rows per optimizer step (over all ranks and micro-steps)")
    grad_accum: int = option(1, "micro-steps per optimizer step; each rank's micro-batch is "
                                "batch_size / (data ranks * grad_accum)")
    seed: int = option(0, "seed for the model init, the data and the agent")
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto", "bf16 autocast (auto = bf16 on GPUs that support it, fp32 elsewhere)")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "device (auto = cuda when available)")
    out: str = option("runs/birdie", "output directory (metrics, plots, checkpoints, export)")
    overwrite: bool = option(False, "start afresh in a train.out that holds another run, deleting its checkpoints, "
                                    "logs and export (without it such a run is refused unless resumed)")
    check_memory: bool = option(True, "refuse a run whose step needs more memory than the device has (a lower-bound "
                                      "estimate from batch_size x sequence_length and the model, checked before "
                                      "allocating); false skips the check")

    def __post_init__(self) -> None:
        check(self, "steps", self.steps >= 1, "must be >= 1")
        check(self, "sequence_length", self.sequence_length >= 16, "must be >= 16")
        check(self, "batch_size", self.batch_size >= 1, "must be >= 1")
        check(self, "grad_accum", self.grad_accum >= 1, "must be >= 1")
        check(self, "batch_size", self.batch_size % self.grad_accum == 0,
              f"must be divisible by train.grad_accum={self.grad_accum}")


@dataclass
class OptimizerConfig:
    lr: float = option(3e-3, "peak learning rate (AdamW)")
    betas: list[float] = option(lambda: [0.9, 0.95], "AdamW betas")
    eps: float = option(1e-8, "AdamW epsilon")
    weight_decay: float = option(0.1, "decoupled weight decay; never applied to norms, embeddings, biases or the recurrences a family lists (Hawk RG-LRU, Gated SSM forget gate)")
    grad_clip: float = option(1.0, "clip the global gradient norm to this (0 = off)")
    z_loss: float = option(0.0, "z-loss coefficient: adds z_loss * mean(logsumexp(logits)^2) over target tokens")

    def __post_init__(self) -> None:
        check(self, "lr", math.isfinite(self.lr) and self.lr > 0, "must be > 0")
        check(self, "betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
              "must be two numbers in [0, 1)")
        check(self, "eps", self.eps > 0, "must be > 0")
        check(self, "weight_decay", self.weight_decay >= 0, "must be >= 0")
        check(self, "grad_clip", self.grad_clip >= 0, "must be >= 0")
        check(self, "z_loss", self.z_loss >= 0, "must be >= 0")


@dataclass
class ScheduleConfig:
    warmup_steps: int = option(30, "linear warm-up from 0 to optimizer.lr over this many steps")
    decay: Literal["cosine", "linear", "constant"] = option("cosine", "decay after the warm-up")
    final_lr_ratio: float = option(0.1, "final learning rate as a fraction of optimizer.lr")

    def __post_init__(self) -> None:
        check(self, "warmup_steps", self.warmup_steps >= 0, "must be >= 0")
        check(self, "final_lr_ratio", 0 <= self.final_lr_ratio <= 1, "must be in [0, 1]")


@dataclass
class CheckpointConfig:
    save_every: int = option(0, "save the full training state every N steps (0 = only at the end)")
    milestone_every: int = option(0, "keep the checkpoints of every N-th step as milestones (0 = keep only "
                                     "the latest)")
    resume: str | None = option(None, "continue a run: 'latest' (OUT/checkpoints/latest) or a checkpoint dir")
    export: bool = option(True, "write OUT/export (safetensors + config.json + tokenizer) at the end")
    trust_checkpoint: bool = option(False, "allow model.pretrained or resume to read a DCP checkpoint directory "
                                           "that this run did not write (its .metadata is a pickle, which can run "
                                           "code); exports need no trust")

    def __post_init__(self) -> None:
        check(self, "save_every", self.save_every >= 0, "must be >= 0")
        check(self, "milestone_every", self.milestone_every >= 0, "must be >= 0")


@dataclass
class LoggingConfig:
    log_every: int = option(10, "write a metrics.jsonl line every N steps (and at evaluations)")
    progress: bool = option(True, "show a progress bar (rank 0)")
    tensorboard: bool = option(False, "also log to OUT/tensorboard (needs the tensorboard package)")
    wandb: bool = option(False, "also log to Weights & Biases (needs the wandb package)")
    wandb_mode: Literal["offline", "online", "disabled"] = option("offline", "wandb mode; offline needs no network")
    wandb_project: str = option("birdie", "wandb project")
    plots: bool = option(True, "write OUT/plots/*.png at the end")

    def __post_init__(self) -> None:
        check(self, "log_every", self.log_every >= 1, "must be >= 1")


@dataclass
class DistributedConfig:
    mesh: str = option("-1,1,1", "device mesh 'dp,fsdp,tp' as in EasyLM's mesh_dim; one entry may be -1 "
                                 "(inferred); dp>1 alone = DDP, fsdp>1 = FSDP2 (HSDP with dp>1), tp>1 = tensor "
                                 "parallel (Transformer presets)")
    backend: Literal["auto", "nccl", "gloo"] = option("auto", "process-group backend (auto: nccl on GPU, gloo "
                                                             "on CPU)")

    def __post_init__(self) -> None:
        parts = self.mesh.split(",")
        ok = len(parts) == 3 and all(p.strip().lstrip("-").isdigit() for p in parts)
        check(self, "mesh", ok, "must be three integers 'dp,fsdp,tp', e.g. '-1,1,1' or '1,-1,1'")
        sizes = [int(p) for p in parts]
        check(self, "mesh", sizes.count(-1) <= 1 and all(s == -1 or s >= 1 for s in sizes),
              "entries must be >= 1, with at most one -1")


SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataConfig,
    "curriculum": CurriculumConfig,
    "train": TrainLoopConfig,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "checkpoint": CheckpointConfig,
    "logging": LoggingConfig,
    "distributed": DistributedConfig,
}


@dataclass
class TrainConfig:
    """The whole run's configuration (defaults: hawk-tiny on the synthetic stories under the Birdie agent)."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict of YAML types (what ``OUT/config.yaml`` holds; tuples become lists)."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def section_fields(section: type) -> list[Any]:
    """The configurable fields of a section class, in declaration order."""
    return list(fields(section))


def is_section(tp: Any) -> bool:
    """True for a field type that is itself a section (a nested dataclass)."""
    return isinstance(tp, type) and is_dataclass(tp)


__all__ = ["SECTIONS", "ConfigError", "CurriculumConfig", "TrainConfig", "is_section", "option", "section_fields"]
