"""Configuration of ``birdie sft``, ``birdie dpo`` and ``birdie rm``: ``birdie train``'s sections plus the
fine-tuning ones, read the same way (defaults < the command's defaults < a YAML/TOML file < ``--section.field``).

Sections reused from :mod:`birdie.train.config`: ``model`` (``model.pretrained`` is the base export),
``optimizer``, ``checkpoint``, ``logging``, ``distributed``; extended: ``train`` (``num_epochs``), ``schedule``
(``warmup_ratio``); new: ``data`` (chat/preference files, packing), ``dpo`` and ``rm``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping

from birdie.checks import ConfigError, check, option
from birdie.train.config import (CheckpointConfig, DistributedConfig, LoggingConfig, ModelSection, OptimizerConfig,
                                 ScheduleConfig, TrainLoopConfig)
from birdie.train.config_io import add_leaf_arguments, build_sections

COMMANDS = ("sft", "dpo", "rm")
#: The row fields of fine-tuning data (``data.columns`` maps dataset columns onto them).
ROW_FIELDS = ("messages", "prompt", "completion", "chosen", "rejected", "margin")


@dataclass
class FinetuneLoopConfig(TrainLoopConfig):
    num_epochs: int = option(0, "train for this many epochs over the data instead of train.steps (0 = use steps); "
                                "EasyLM's --num_epochs")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "num_epochs", self.num_epochs >= 0, "must be >= 0")


@dataclass
class FinetuneScheduleConfig(ScheduleConfig):
    warmup_ratio: float = option(0.0, "warm up over this fraction of the steps (ceil), replacing "
                                      "schedule.warmup_steps when > 0; EasyLM's --warmup_ratio")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)")


@dataclass
class FinetuneDataConfig:
    paths: list[str] = option(list, "JSONL/JSON/parquet files, HF dataset directories or hub names (SFT: "
                                    "messages or prompt/completion rows; dpo/rm: chosen/rejected rows); empty = the "
                                    "embedded story questions")
    embedded_examples: int = option(2000, "with no paths: training rows generated from the embedded stories")
    heldout_examples: int = option(200, "held-out story questions for the accuracy evaluation")
    packing: bool = option(True, "SFT: pack conversations into rows with per-conversation resets (false: one "
                                 "padded row each, as EasyLM)")
    drop_truncated: bool = option(False, "skip rows longer than train.sequence_length tokens (default: truncate "
                                         "them; both are counted)")
    chat_template: str | None = option(None, "render with the chat_template of this tokenizer_config.json (file or "
                                             "dir) instead of the Tulu format; needs jinja2")
    columns: dict[str, str] = option(dict, "birdie field -> the dataset's column name, e.g. '{messages: "
                                           "conversations, chosen: pos}'; fields: " + ", ".join(ROW_FIELDS))
    split: str = option("train", "the split of an HF dataset (saved directory, local dataset or hub name)")
    allow_download: bool = option(False, "let datasets download a hub dataset (default: the local HF cache only, "
                                         "offline)")

    def __post_init__(self) -> None:
        check(self, "embedded_examples", self.embedded_examples >= 1, "must be >= 1")
        check(self, "heldout_examples", self.heldout_examples >= 0, "must be >= 0")
        check(self, "columns", set(self.columns) <= set(ROW_FIELDS),
              f"maps unknown field(s); map birdie's fields ({', '.join(ROW_FIELDS)}) to your column names")


@dataclass
class DPOConfig:
    beta: float = option(0.1, "DPO temperature beta")
    label_smoothing: float = option(0.0, "conservative DPO epsilon (0 = plain DPO)")
    loss_type: Literal["sigmoid", "ipo"] = option("sigmoid", "sigmoid (DPO/cDPO) or ipo (on summed log-probs)")
    reference: Literal["live", "cached"] = option(
        "cached", "reference log-probs: live (a frozen copy runs every step) or cached (computed once before "
                  "training and stored under OUT, keyed by the data and weights hash)")

    def __post_init__(self) -> None:
        check(self, "beta", math.isfinite(self.beta) and self.beta > 0, "must be > 0")
        check(self, "label_smoothing", 0 <= self.label_smoothing < 0.5, "must be in [0, 0.5)")


@dataclass
class RMConfig:
    use_margin: bool = option(False, "subtract each row's 'margin' inside the Bradley-Terry loss")


SECTIONS: dict[str, type] = {
    "model": ModelSection, "data": FinetuneDataConfig, "train": FinetuneLoopConfig, "optimizer": OptimizerConfig,
    "schedule": FinetuneScheduleConfig, "checkpoint": CheckpointConfig, "logging": LoggingConfig,
    "distributed": DistributedConfig, "dpo": DPOConfig, "rm": RMConfig,
}


@dataclass
class FinetuneConfig:
    """One fine-tuning run; ``command`` is sft, dpo or rm."""

    command: str = "sft"
    model: ModelSection = field(default_factory=ModelSection)
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    train: FinetuneLoopConfig = field(default_factory=FinetuneLoopConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: FinetuneScheduleConfig = field(default_factory=FinetuneScheduleConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    rm: RMConfig = field(default_factory=RMConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Each command's defaults (sized for a CPU in a few minutes on the embedded data); files and flags override them.
#: ``model.preset`` is the quick base's (trained when there is no base export): a tiny Transformer reads answers
#: off a passage in a few hundred steps, where the tiny Hawk stayed near chance on held-out questions.
COMMAND_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "sft": {"train": {"steps": 200, "batch_size": 16, "sequence_length": 256, "out": "runs/sft"},
            "optimizer": {"lr": 3e-3, "weight_decay": 0.0}, "schedule": {"warmup_steps": 10, "decay": "linear"},
            "logging": {"log_every": 10}, "model": {"preset": "transformer-tiny"}},
    "dpo": {"train": {"steps": 150, "batch_size": 16, "sequence_length": 256, "out": "runs/dpo"},
            "optimizer": {"lr": 3e-3, "weight_decay": 0.0}, "schedule": {"warmup_steps": 5, "decay": "linear"},
            "logging": {"log_every": 10}, "model": {"preset": "transformer-tiny"}},
    "rm": {"train": {"steps": 200, "batch_size": 16, "sequence_length": 256, "out": "runs/rm"},
           "optimizer": {"lr": 2e-3, "weight_decay": 0.0}, "schedule": {"warmup_steps": 10, "decay": "linear"},
           "logging": {"log_every": 10}, "model": {"preset": "transformer-tiny"}},
}

#: EasyLM flags that map one to one onto a field.
ALIASES = {"mesh_dim": "distributed.mesh", "num_epochs": "train.num_epochs", "warmup_ratio": "schedule.warmup_ratio"}


def build_finetune_config(command: str, values: Mapping[str, Any] | None = None) -> FinetuneConfig:
    """A validated config for ``command`` from nested ``{section: {field: value}}`` over the command defaults."""
    if command not in COMMANDS:
        raise ConfigError(f"unknown fine-tuning command {command!r}; valid: {', '.join(COMMANDS)}")
    return FinetuneConfig(command=command, **build_sections(SECTIONS, COMMAND_DEFAULTS[command], values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--section.field`` option per field, and the EasyLM aliases."""
    add_leaf_arguments(parser, FinetuneConfig, FinetuneConfig(), skip=("command",))
    aliases = parser.add_argument_group("EasyLM aliases")
    for flag, target in ALIASES.items():
        aliases.add_argument(f"--{flag}", dest=target, default=argparse.SUPPRESS, help=f"= --{target}")


def dotted_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--section.field`` values (and aliases) given on the command line."""
    return {k: v for k, v in vars(args).items() if "." in k and k.split(".", 1)[0] in SECTIONS}
