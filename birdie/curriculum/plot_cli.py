"""``birdie plot mixture LOG [--out PNG]``: draw a curriculum decision log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what")
    mixture = sub.add_parser("mixture", help="mixture per objective class and validation losses over steps")
    mixture.add_argument("log", help="decision log (JSONL) written by Birdie(log_path=...) or birdie demo agent")
    mixture.add_argument("--out", default=None, help="PNG to write (default: the log's name with .png)")
    mixture.set_defaults(func=_plot_mixture)


def _plot_mixture(args: argparse.Namespace) -> int:
    from birdie.curriculum.log import read_log
    from birdie.curriculum.plot import plot_mixture

    out = args.out or str(Path(args.log).with_suffix(".png"))
    try:
        written = plot_mixture(read_log(args.log), out)
    except (FileNotFoundError, ValueError) as error:
        print(f"birdie plot: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0
