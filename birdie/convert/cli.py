"""``birdie convert from-hf SRC OUT`` / ``to-hf SRC OUT``: models between Hugging Face directories and birdie
exports."""

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
    to_hf = sub.add_parser("to-hf", help="a birdie export -> a Hugging Face directory (AutoModelForCausalLM)")
    to_hf.add_argument("source", help="birdie export directory (model.safetensors, config.json, tokenizer.json)")
    to_hf.add_argument("out", help="new Hugging Face directory")
    to_hf.add_argument("--remote-code", action="store_true",
                       help="write birdie's modeling file even for a model Llama expresses natively")
    to_hf.set_defaults(func=_to_hf)
    open_lm = sub.add_parser("from-open-lm", help="an open_lm / linear_open_lm checkpoint -> a birdie export")
    open_lm.add_argument("checkpoint", help="epoch_N.pt / checkpoint.pt (a state dict, or a dict with 'state_dict')")
    open_lm.add_argument("out", help="new export directory")
    open_lm.add_argument("--preset", required=True, help="the architecture the run used (birdie models list)")
    open_lm.add_argument("--tokenizer", required=True,
                         help="the tokenizer the run used: a tokenizer.json path (GPT-NeoX for open_lm), 'bytes', ...")
    open_lm.add_argument("--trust-checkpoint", action="store_true",
                         help="unpickle a checkpoint holding more than tensors (runs code: trusted files only)")
    open_lm.set_defaults(func=_from_open_lm)


def _from_hf(args: argparse.Namespace) -> int:
    import torch

    from birdie.convert.from_hf import convert_from_hf

    dtype = None if args.dtype == "keep" else getattr(torch, args.dtype)
    done = convert_from_hf(args.source, args.out, dtype)
    print(f"wrote {done.out}: {done.config.n_layers}-layer transformer, vocabulary {done.source_vocab} + "
          f"{len(done.special_ids)} birdie special tokens (ids {min(done.special_ids)}..{max(done.special_ids)}; "
          f"embedding rows {done.config.vocab_size})")
    return 0


def _to_hf(args: argparse.Namespace) -> int:
    from birdie.convert.to_hf import convert_to_hf

    done = convert_to_hf(args.source, args.out, args.remote_code)
    how = "AutoModelForCausalLM.from_pretrained(OUT, trust_remote_code=True)" if done.remote_code \
        else "AutoModelForCausalLM.from_pretrained(OUT)"
    print(f"wrote {done.out} as {done.architecture}; load it with {how}")
    return 0



def _from_open_lm(args: argparse.Namespace) -> int:
    from birdie.convert.from_open_lm import convert_from_open_lm

    convert_from_open_lm(args.checkpoint, args.out, args.preset, args.tokenizer, args.trust_checkpoint)
    print(f"wrote {args.out}: {args.preset} from {args.checkpoint}")
    return 0
