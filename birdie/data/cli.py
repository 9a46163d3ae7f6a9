"""``birdie data``: pre-tokenize a corpus into shards; print packed batches with their segments."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np


def build_parser(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="data_command", metavar="{tokenize,inspect}")

    tokenize = commands.add_parser("tokenize", help="write pre-tokenized shards and a manifest")
    tokenize.add_argument("inputs", nargs="*", help=".txt/.jsonl/.json/.parquet files, directories or globs")
    tokenize.add_argument("--out", required=True, help="new directory for the shards")
    tokenize.add_argument("--tokenizer", default="bytes", help="'bytes', 'tiktoken:NAME' or a tokenizer.json path")
    tokenize.add_argument("--stories", type=int, default=0, metavar="N",
                          help="tokenize N synthetic stories instead of files")
    tokenize.add_argument("--seed", type=int, default=0, help="story corpus seed (with --stories)")
    tokenize.add_argument("--text-key", default="text", help="field holding the text in JSON/parquet rows")
    tokenize.add_argument("--txt-sample-by", default="paragraph", choices=("line", "paragraph", "document"),
                          help="what one document of a .txt file is")
    tokenize.add_argument("--documents-per-shard", type=int, default=10_000)
    tokenize.add_argument("--workers", type=int, default=1, help="tokenizing processes")
    tokenize.add_argument("--format", choices=("birdie", "open_lm"), default="birdie",
                          help="birdie's .npy shards, or open_lm's webdataset tars of fixed-length sequences")
    tokenize.add_argument("--seq-len", type=int, default=2048,
                          help="--format open_lm: sequence length (each sample holds seq_len + 1 ids)")
    tokenize.add_argument("--sequences-per-shard", type=int, default=8192, help="--format open_lm: tar size")
    tokenize.set_defaults(func=run_tokenize)

    inspect = commands.add_parser("inspect", help="print packed batches with their segments")
    inspect.add_argument("source", nargs="*", help="files, globs or a shard directory (default: synthetic stories)")
    inspect.add_argument("--tokenizer", default="bytes")
    inspect.add_argument("--mixture", default="birdie", help="a named objective mixture")
    inspect.add_argument("--batch-size", type=int, default=2)
    inspect.add_argument("--sequence-length", type=int, default=256)
    inspect.add_argument("--batches", type=int, default=1)
    inspect.add_argument("--seed", type=int, default=0)
    inspect.set_defaults(func=run_inspect)


def run_tokenize(args: argparse.Namespace) -> int:
    from birdie.data.shards import tokenize_to_shards
    from birdie.data.sources import files_source
    from birdie.tokenizers import load_tokenizer

    if bool(args.inputs) == bool(args.stories):
        raise SystemExit("birdie data tokenize: give input files or --stories N (not both)")
    tokenizer = load_tokenizer(args.tokenizer)
    if args.stories:
        from birdie.data.stories import generate_story

        corpus: Any = [generate_story(args.seed, i).text for i in range(args.stories)]
    else:
        corpus = files_source(args.inputs, txt_sample_by=args.txt_sample_by).dataset
    key = args.text_key
    if args.format == "open_lm":
        return _tokenize_open_lm(args, corpus, tokenizer)
    manifest = tokenize_to_shards(corpus, args.out, tokenizer, args.documents_per_shard, args.workers,
                                  text_grabber_fn=lambda item: item.get(key) if isinstance(item, dict) else item)
    tokens = sum(entry["num_tokens"] for entry in manifest)
    documents = sum(entry["num_sequences"] for entry in manifest)
    print(f"wrote {len(manifest)} shards, {documents} documents, {tokens} tokens to {args.out}")
    return 0


def _tokenize_open_lm(args: argparse.Namespace, corpus: Any, tokenizer: Any) -> int:
    """Write open_lm tars: documents joined by the tokenizer's end-of-text id, cut into seq_len + 1 ids."""
    from birdie.data.open_lm import write_open_lm_shards

    skipped = [0]

    def documents():
        for item in corpus:
            text = item.get(args.text_key) if isinstance(item, dict) else item
            if isinstance(text, str) and text.strip():
                yield tokenizer.encode(text)
            else:
                skipped[0] += 1

    summary = write_open_lm_shards(documents(), args.out, tokenizer.specials.eos, args.seq_len,
                                   args.sequences_per_shard)
    print(f"wrote {summary['shards']} open_lm shards, {summary['sequences']} sequences of {args.seq_len + 1} ids to "
          f"{args.out} ({summary['leftover_tokens']} ids after the last full sequence not written; {skipped[0]} empty "
          "or non-text items skipped)")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from birdie.data.pipeline import Pipeline
    from birdie.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(args.tokenizer)
    source = args.source or None
    with Pipeline(tokenizer, args.mixture, source, batch_size=args.batch_size,
                  sequence_length=args.sequence_length, seed=args.seed, num_validation_batches=0) as pipeline:
        for index, batch in enumerate(itertools.islice(pipeline, args.batches)):
            print(f"=== batch {index}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch.items()))
            print(describe_batch(batch, tokenizer))
        print(f"fill rate {pipeline.stats()['fill_rate']:.3f}")
    return 0


def describe_batch(batch: dict[str, Any], tokenizer: Any, width: int = 160) -> str:
    """Each row's segments: positions, the bidirectional prefix and the target, decoded."""
    lines = []
    for row in range(batch["input_ids"].shape[0]):
        segments = batch["segment_ids"][row].numpy()
        lines.append(f"row {row}: {int((segments > 0).sum())}/{len(segments)} positions filled")
        for k in np.unique(segments[segments > 0]):
            where = np.flatnonzero(segments == k)
            prefix = batch["input_ids"][row, where][batch["attention_mask"][row, where] == 1]
            labels = batch["label_ids"][row, where]
            target = labels[labels != -100]
            lines.append(f"  [{k}] positions {where[0]}..{where[-1]}  prefix ({len(prefix)}): "
                         f"{_clip(tokenizer.decode(prefix), width)!r}")
            lines.append(f"      target ({len(target)}): {_clip(tokenizer.decode(target), width)!r}")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width // 2] + " ... " + text[-width // 2:]
