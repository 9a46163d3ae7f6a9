"""``birdie ppo``: PPO (or GRPO/RLOO) of a policy export against a reward model or a Python reward function.

    birdie ppo                                  # embedded story questions, programmatic answer reward, CPU
    birdie ppo --pretrained runs/sft/export --reward-model runs/rm/export --data prompts.jsonl --steps 200
    birdie ppo --reward.callable mypkg.rewards:exact_match --data prompts.jsonl --ppo.algorithm grpo

``--ppo.FIELD VALUE`` sets any knob of :class:`birdie.finetune.ppo.PPOConfig` (see docs/finetuning.md, which
gives each knob's EasyLM and TRL name).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from birdie.finetune.ppo import PPOConfig


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--pretrained", help="policy export (default: runs/finetune/sft/export, else a tiny "
                                             "random model)")
    parser.add_argument("--reward-model", dest="reward_model", help="reward model export of birdie rm")
    parser.add_argument("--reward.callable", dest="reward_callable", help="module:function(prompts, completions)")
    parser.add_argument("--data", help="prompts JSONL ('messages' ending in a user turn, or 'prompt')")
    parser.add_argument("--steps", type=int, default=40, help="PPO iterations (default 40)")
    parser.add_argument("--prompts-per-step", dest="prompts_per_step", type=int, default=4)
    parser.add_argument("--out", default="runs/ppo", help="output directory (default runs/ppo)")
    parser.add_argument("--save-every", dest="save_every", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT's latest checkpoint")
    parser.add_argument("--critic-init", dest="critic_init", default="auto",
                        help="auto (reward model when given, else policy), reward_model or policy")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    hints = typing.get_type_hints(PPOConfig)
    for item in dataclasses.fields(PPOConfig):
        kind = hints[item.name]
        convert = (lambda text: text.lower() in ("1", "true", "yes")) if kind is bool else \
            (float if "float" in str(kind) else int if kind is int else str)
        parser.add_argument(f"--ppo.{item.name}", dest=f"ppo__{item.name}", type=convert, default=None,
                            help=f"(default {item.default})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from birdie.finetune.datasets import DataError
    from birdie.finetune.ppo_run import RunConfig, run_ppo

    values = vars(args)
    ppo_values = {key[5:]: value for key, value in values.items() if key.startswith("ppo__") and value is not None}
    try:
        config = RunConfig(pretrained=args.pretrained, reward_model=args.reward_model,
                           reward_callable=args.reward_callable, data=args.data, steps=args.steps,
                           prompts_per_step=args.prompts_per_step, out=args.out, save_every=args.save_every,
                           resume=args.resume, progress=args.progress, critic_init=args.critic_init, device=args.device,
                           ppo=PPOConfig(**ppo_values))
        history = run_ppo(config)
    except (ValueError, DataError) as error:
        print(f"birdie ppo: {error}", file=sys.stderr)
        return 2
    if history:
        first, last = history[0], history[-1]
        print(f"reward {first['objective/scores']:.3f} -> {last['objective/scores']:.3f}; KL {last['objective/kl']:.3f}; "
              f"metrics {config.out}/metrics.jsonl; export {config.out}/export")
    return 0
