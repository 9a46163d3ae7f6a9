"""``birdie convert from-hf SRC OUT``: bring models from the Hugging Face format into birdie exports."""

from __future__ import annotations

import argparse

DTYPES = ("keep", "float32", "bfloat16", "float16")


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    from_hf = sub.add_parser("from-hf", help="a local Llama/Mistral Hugging Face directory -> a birdie export")
    from_hf.add_argument("source", help="HF model directory: config.json, *.safetensors, tokenizer files")
    from_hf.add_argument("out", help="new export directory (birdie.load / generate / train --pretrained read it)")
    from_hf.add_argument("--dtype", choices=DTYPES, default="keep", help="weight dtype (default: the source's)")
    from_hf.set_defaults(func=_from_hf)


def _from_hf(args: argparse.Namespace) -> int:
    import torch

    from birdie.convert.from_hf import convert_from_hf

    dtype = None if args.dtype == "keep" else getattr(torch, args.dtype)
    done = convert_from_hf(args.source, args.out, dtype)
    print(f"wrote {done.out}: {done.config.n_layers}-layer transformer, vocabulary {done.source_vocab} + "
          f"{len(done.special_ids)} birdie special tokens (ids {min(done.special_ids)}..{max(done.special_ids)}; "
          f"embedding rows {done.config.vocab_size})")
    return 0
