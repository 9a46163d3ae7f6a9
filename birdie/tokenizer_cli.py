"""``birdie tokenizer train FILES --vocab-size N --out PATH``."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdie.tokenizers import train_bpe


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    train = sub.add_parser("train", help="train a byte-level BPE (HF tokenizers) with birdie's special tokens")
    train.add_argument("files", nargs="+", help="plain-text training files")
    train.add_argument("--vocab-size", type=int, required=True, help="vocabulary size, specials included")
    train.add_argument("--min-frequency", type=int, default=2, help="minimum pair frequency for a merge")
    train.add_argument("--out", default="tokenizer.json", help="where to write the tokenizer.json")
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    tokenizer = train_bpe(args.files, args.vocab_size, args.min_frequency)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out)
    print(f"wrote {out} (vocab size {tokenizer.vocab_size}, {len(tokenizer.specials.ids)} special tokens)")
    return 0
