"""``birdie dpo``: direct preference optimisation (see :mod:`birdie.finetune.cli`)."""

from __future__ import annotations

import argparse


def build_parser(parser: argparse.ArgumentParser) -> None:
    from birdie.finetune.cli import build_parser as build

    build(parser, "dpo")
