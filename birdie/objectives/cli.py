"""``birdie objectives show``: each configured objective applied to a sample story, with specials visible."""

from __future__ import annotations

import argparse

import numpy as np

from birdie.objectives.base import Example
from birdie.objectives.mixtures import MIXTURES, representative_objectives, resolve_mixture
from birdie.tokenizers import load_tokenizer

SAMPLE = (
    "Mira found an old brass key under the bakery stairs. She asked Tomas what it opened, and he laughed: "
    "\"Every door in this town has been opened by that key at least once.\" By evening they had tried the "
    "library, the clock tower and the harbour shed, and only the shed gave way."
)


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="apply objectives to a sample story and print prefix and target")
    show.add_argument("--mixture", choices=sorted(MIXTURES), default=None,
                      help="show every configuration of this named mixture (default: one per objective)")
    show.add_argument("--tokenizer", default="bytes", help="tokenizer spec: bytes, tiktoken:NAME or tokenizer.json")
    show.add_argument("--budget", type=int, default=512, help="positions available to each example")
    show.add_argument("--seed", type=int, default=0)
    show.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    tokenizer = load_tokenizer(args.tokenizer)
    ids = tokenizer.encode(SAMPLE)
    configs = resolve_mixture(args.mixture) if args.mixture else representative_objectives()
    print(f"sample story: {len(ids)} tokens ({type(tokenizer).__name__}), budget {args.budget}\n")
    for config in configs:
        result = config(ids, np.random.default_rng(args.seed), args.budget, tokenizer)
        print(f"== {config.key}  (class {config.objective_class}, p={config.prob:.4f})")
        if isinstance(result, Example):
            print(f"prefix ({len(result.prefix)}): {tokenizer.decode(result.prefix)}")
            print(f"target ({len(result.target)}): {tokenizer.decode(result.target)}")
            print(f"leftover: {len(result.leftover)} tokens")
        else:
            print(f"skipped: {result.reason}")
        print()
    return 0
