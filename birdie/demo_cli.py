"""``birdie demo``: the training demo (default) and ``birdie demo agent``, the curriculum agent on a toy problem."""

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
