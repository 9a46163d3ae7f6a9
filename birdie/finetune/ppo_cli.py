"""``birdie ppo``: PPO (or GRPO/RLOO) of a policy export against a reward model or a Python reward function.

    birdie ppo                                  # embedded story questions, story-answer reward, CPU, ~1-2 minutes
    birdie ppo --pretrained runs/sft/export --reward-model runs/rm/export --data prompts.jsonl --steps 200
    birdie ppo --reward.callable mypkg.rewards:exact_match --data prompts.jsonl --ppo.algorithm grpo
    torchrun --nproc-per-node 2 -m birdie ppo ... --distributed.mesh 1,-1,1    # FSDP2 over 2 processes

Shortcuts (``--pretrained``, ``--reward-model``, ``--data``, ``--steps``, ``--prompts-per-step``, ``--out``,
``--save-every``, ``--resume``, ``--critic-init``, ``--device``, ``--no-progress``) set the matching fields;
``--section.field value`` sets any field (``--help`` lists them, ``--ppo.FIELD`` every knob of
:class:`birdie.finetune.ppo.PPOConfig`; docs/finetuning.md gives each knob's EasyLM and TRL name).
"""

from __future__ import annotations

import argparse
import sys

from birdie.finetune.ppo_config import PPORunConfig, add_arguments, build_ppo_config, dotted_overrides
from birdie.train.config_io import merge, read_config_file

SHORTCUTS = {"pretrained": "model.pretrained", "reward_model": "reward.model", "data": "data.paths",
             "steps": "train.steps", "prompts_per_step": "train.prompts_per_step", "out": "train.out",
             "save_every": "checkpoint.save_every", "resume": "checkpoint.resume", "critic_init": "model.critic_init",
             "device": "train.device"}


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.allow_abbrev = False
    parser.description = __doc__
    parser.add_argument("--config", help="YAML or TOML file with config sections")
    parser.add_argument("--pretrained", help="policy export (= --model.pretrained)")
    parser.add_argument("--reward-model", dest="reward_model", help="reward model export (= --reward.model)")
    parser.add_argument("--data", help="prompt JSONL file(s), comma-separated (= --data.paths)")
    parser.add_argument("--steps", help="PPO iterations (= --train.steps)")
    parser.add_argument("--prompts-per-step", dest="prompts_per_step", help="= --train.prompts_per_step")
    parser.add_argument("--out", help="output directory (= --train.out)")
    parser.add_argument("--save-every", dest="save_every", help="checkpoint every N steps")
    parser.add_argument("--resume", nargs="?", const="latest",
                        help="continue from OUT's latest checkpoint (bare or 'latest') or a checkpoint directory")
    parser.add_argument("--critic-init", dest="critic_init", help="= --model.critic_init")
    parser.add_argument("--device", help="= --train.device")
    parser.add_argument("--no-progress", dest="logging.progress", action="store_const", const="false",
                        default=argparse.SUPPRESS, help="no progress bar (= --logging.progress false)")
    add_arguments(parser)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> PPORunConfig:
    """Command defaults < ``--config`` file < shortcuts and ``--section.field`` flags."""
    values = read_config_file(args.config) if args.config else {}
    overrides = {field: getattr(args, flag) for flag, field in SHORTCUTS.items() if getattr(args, flag) is not None}
    overrides.update(dotted_overrides(args))
    return build_ppo_config(merge(values, overrides))


def run(args: argparse.Namespace) -> int:
    from birdie.finetune.datasets import DataError
    from birdie.finetune.ppo_run import run_ppo
    from birdie.train.checkpoint import CheckpointError

    try:
        config = config_from_args(args)
        history = run_ppo(config)
    except (ValueError, DataError, CheckpointError, PermissionError) as error:
        print(f"birdie ppo: {error}", file=sys.stderr)
        return 2
    if history:
        scores = [metrics["objective/scores"] for metrics in history]
        window = min(5, len(scores))  # single steps are noisy: compare the first and last few
        print(f"mean reward of the first {window} steps {sum(scores[:window]) / window:.3f} -> last {window} "
              f"{sum(scores[-window:]) / window:.3f}; largest KL {max(m['objective/kl'] for m in history):.3f}; "
              f"metrics {config.train.out}/metrics.jsonl; export {config.train.out}/export")
    return 0
