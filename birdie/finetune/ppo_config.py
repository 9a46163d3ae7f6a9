"""Configuration of ``birdie ppo``: sections read like ``birdie train``'s and ``birdie sft``'s (defaults < the
command's defaults < a YAML/TOML file < ``--section.field`` flags), built by :mod:`birdie.train.config_io`.

Sections: ``model`` (the policy export and the critic's initialisation), ``data`` (prompt files), ``reward`` (a
reward-model export or a Python function), ``train`` (steps, prompts per step, device, output), ``ppo`` (every knob
of :class:`birdie.finetune.ppo.PPOConfig`), and ``birdie train``'s ``checkpoint``, ``logging`` and ``distributed``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping

from birdie.checks import ConfigError, check, option
from birdie.finetune.ppo import PPOConfig
from birdie.train.config import CheckpointConfig, DistributedConfig, LoggingConfig
from birdie.train.config_io import add_leaf_arguments, build_sections


@dataclass
class PPOModelConfig:
    pretrained: str | None = option(None, "policy export (default: runs/finetune/sft/export when present, else a "
                                          "tiny random transformer-tiny with the byte tokenizer)")
    critic_init: Literal["auto", "reward_model", "policy"] = option(
        "auto", "the critic's trunk: auto (the reward model when given, else the policy), reward_model or policy")


@dataclass
class PromptDataConfig:
    paths: list[str] = option(list, "prompt JSONL files ('messages' ending in a user turn, or 'prompt'); empty = "
                                    "the embedded story questions with the story-answer reward")
    embedded_prompts: int = option(64, "with no paths: how many embedded story questions")

    def __post_init__(self) -> None:
        check(self, "embedded_prompts", self.embedded_prompts >= 1, "must be >= 1")


@dataclass
class RewardConfig:
    model: str | None = option(None, "reward-model export (birdie rm)")
    callable: str | None = option(None, "'module:function' called as f(prompts, completions) -> list of floats")

    def __post_init__(self) -> None:
        check(self, "model", not (self.model and self.callable),
              "and reward.callable are both set; give one reward")


@dataclass
class PPOLoopConfig:
    steps: int = option(40, "PPO iterations (one rollout batch and its updates each)")
    prompts_per_step: int = option(4, "prompts per iteration over all ranks (EasyLM's prompt batch size)")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "device (auto = cuda when available)")
    out: str = option("runs/ppo", "output directory (metrics, checkpoints, export)")

    def __post_init__(self) -> None:
        check(self, "steps", self.steps >= 1, "must be >= 1")
        check(self, "prompts_per_step", self.prompts_per_step >= 1, "must be >= 1")


SECTIONS: dict[str, type] = {
    "model": PPOModelConfig, "data": PromptDataConfig, "reward": RewardConfig, "train": PPOLoopConfig,
    "ppo": PPOConfig, "checkpoint": CheckpointConfig, "logging": LoggingConfig, "distributed": DistributedConfig,
}


@dataclass
class PPORunConfig:
    """One ``birdie ppo`` run."""

    model: PPOModelConfig = field(default_factory=PPOModelConfig)
    data: PromptDataConfig = field(default_factory=PromptDataConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    train: PPOLoopConfig = field(default_factory=PPOLoopConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        if self.data.paths and not (self.reward.model or self.reward.callable):
            raise ConfigError(f"data.paths={self.data.paths}: custom prompts need a reward: --reward-model RM_EXPORT "
                              "or --reward.callable module:function")
        if self.model.critic_init == "reward_model" and not self.reward.model:
            raise ConfigError("model.critic_init=reward_model needs a reward model (--reward-model RM_EXPORT)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: ``birdie ppo``'s own defaults, sized so that the run with no arguments (a tiny random policy on the embedded
#: story questions, CPU) raises the reward within a minute or two: short responses, many rollouts, a learning rate
#: a 2-layer model needs, and a KL coefficient small enough that the noisy k1 penalty does not drown the score
#: (0.05 does, measured). For a real policy use EasyLM/TRL's settings (docs/finetuning.md, Recipes).
COMMAND_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {"max_new_tokens": 8, "rollouts_per_prompt": 8, "temperature": 1.0, "ppo_epochs": 2, "kl_coef": 0.02,
            "lr": 5e-3, "critic_lr": 5e-3},
}


def build_ppo_config(values: Mapping[str, Any] | None = None) -> PPORunConfig:
    """A validated config from nested ``{section: {field: value}}`` over :data:`COMMAND_DEFAULTS`."""
    return PPORunConfig(**build_sections(SECTIONS, COMMAND_DEFAULTS, values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--section.field`` option per field, documented with ``birdie ppo``'s defaults."""
    add_leaf_arguments(parser, PPORunConfig, build_ppo_config())


def dotted_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--section.field`` values given on the command line."""
    return {k: v for k, v in vars(args).items() if "." in k and k.split(".", 1)[0] in SECTIONS}
