"""``birdie demo``: the training demo (default), ``birdie demo agent`` (the curriculum agent on a toy problem) and
``birdie demo finetune`` (SFT -> DPO -> reward model on story questions)."""

from __future__ import annotations

import argparse


def build_parser(parser: argparse.ArgumentParser) -> None:
    from birdie.curriculum import demo as agent_demo
    from birdie.train import demo as train_demo

    train_demo.add_arguments(parser)
    parser.set_defaults(func=train_demo.run)
    sub = parser.add_subparsers(dest="which")
    agent = sub.add_parser("agent", help="the reward agent learning to favour the most useful objective class")
    agent_demo.add_arguments(agent)
    agent.set_defaults(func=agent_demo.run)
    from birdie.finetune import demo as finetune_demo

    finetune = sub.add_parser("finetune", help="SFT -> DPO -> reward model on story questions; held-out accuracy")
    finetune_demo.add_arguments(finetune)
    finetune.set_defaults(func=finetune_demo.run)
