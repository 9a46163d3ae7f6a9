"""Packed tokens per second of the data pipeline for the ``birdie`` mixture, side by side, on this machine.

    OMP_NUM_THREADS=1 .venv/bin/python bench/pipeline.py [--stories 4000] [--batches 40] [--sequence-length 2048]

Corpus: synthetic stories, generated once before timing (generation is not part of the pipeline's cost), and a
byte-level BPE (HF ``tokenizers``) trained on them. Measured, each in the same run:

* (a) from pre-tokenized shards (``birdie data tokenize``; BPE and byte-level), in-process (one core): packed
  positions/s;
* (b) tokenizing on the fly with the BPE, in-process: packed positions/s and document tokens/s, against the
  BPE's own ``encode`` throughput on the same texts (one ``encode`` per document);
* (c) from shards with 1 and 2 worker processes: batches arriving in the training process per second.

"Packed positions" are non-padding positions of the batches (copying-type objectives put a document's tokens in
both prefix and target, so they can exceed the document tokens read).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from birdie.data.pipeline import Pipeline
from birdie.data.shards import tokenize_to_shards
from birdie.data.stories import generate_story
from birdie.tokenizers import ByteTokenizer, train_bpe


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the workers, once the pipeline is closed)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run(pipeline_args: dict, batches: int) -> dict[str, float]:
    """Wall and CPU seconds for ``batches`` batches after a warm-up batch (worker start-up excluded), with the
    packed positions and document tokens they hold. CPU time makes per-core rates robust to a shared machine."""
    with Pipeline(**pipeline_args) as pipeline:
        next(pipeline)
        before = pipeline.stats()
        cpu, wall = cpu_seconds(), time.perf_counter()
        for _ in range(batches):
            next(pipeline)
        wall = time.perf_counter() - wall
        after = pipeline.stats()
    cpu = cpu_seconds() - cpu
    shape = pipeline.config.batch_size * pipeline.config.sequence_length
    positions = after["fill_rate"] * after["batches"] * shape - before["fill_rate"] * before["batches"] * shape
    return {"wall": wall, "cpu": cpu, "positions": positions, "fill_rate": after["fill_rate"],
            "document_tokens": after["document_tokens"] - before["document_tokens"], "batches": batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=4000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=2048)
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="birdie-bench-") as work:
        measure_all(args, Path(work))


def measure_all(args: argparse.Namespace, work: Path) -> None:
    """Build the corpus, tokenizer and shards under ``work`` and print every measurement."""
    texts = [generate_story(0, i).text for i in range(args.stories)]
    (work / "stories.txt").write_text("\n".join(texts))
    tokenizer = train_bpe([work / "stories.txt"], vocab_size=args.vocab_size)
    tokenize_to_shards(texts, work / "shards", tokenizer, documents_per_shard=1000, progress=False)
    common = dict(batch_size=args.batch_size, sequence_length=args.sequence_length, num_validation_batches=0,
                  tokenizer=tokenizer)
    print(f"{args.stories} stories, BPE vocab {tokenizer.vocab_size}, batches {args.batch_size}x{args.sequence_length}; "
          "rates per CPU-second (= per core), wall-clock in brackets")

    start_cpu, start = cpu_seconds(), time.perf_counter()
    encoded = sum(len(tokenizer.encode(t)) for t in texts)
    encode_rate, encode_wall = encoded / (cpu_seconds() - start_cpu), encoded / (time.perf_counter() - start)
    print(f"BPE encode, one call per document:  {encode_rate / 1e6:5.2f} M tokens/s [{encode_wall / 1e6:5.2f}]")

    byte_tokenizer = ByteTokenizer()
    tokenize_to_shards(texts, work / "byte-shards", byte_tokenizer, documents_per_shard=1000, progress=False)
    for mixture, name, shards in (("ntp", "BPE", "shards"), ("birdie", "BPE", "shards"),
                                  ("birdie", "bytes", "byte-shards")):
        r = run(dict(common, mixture=mixture, source=str(work / shards),
                     tokenizer=byte_tokenizer if name == "bytes" else tokenizer), args.batches)
        print(f"(a) {mixture:6s} from {name:5s} shards:    {r['positions'] / r['cpu'] / 1e6:5.2f} M packed positions/s "
              f"[{r['positions'] / r['wall'] / 1e6:5.2f}], fill {r['fill_rate']:.4f}")

    def on_the_fly(split, worker_id, num_workers, rng_seed):
        return texts if split == "train" else []

    for mixture in ("ntp", "birdie"):
        r = run(dict(common, mixture=mixture, source=on_the_fly), args.batches)
        packed, read = r["positions"] / r["cpu"], r["document_tokens"] / r["cpu"]
        print(f"(b) {mixture:6s} tokenizing on the fly: {packed / 1e6:5.2f} M packed positions/s "
              f"[{r['positions'] / r['wall'] / 1e6:5.2f}] = {packed / encode_rate:4.2f}x encode; "
              f"{read / 1e6:5.2f} M document tokens/s = {read / encode_rate:4.2f}x encode")

    walls = {}
    for workers in (1, 2):
        r = run(dict(common, mixture="birdie", source=str(work / "shards"), num_workers=workers), args.batches)
        walls[workers] = r["batches"] / r["wall"]
        print(f"(c) birdie from shards, {workers} worker(s): {walls[workers]:6.1f} batches/s wall-clock, "
              f"{r['positions'] / r['cpu'] / 1e6:5.2f} M packed positions per CPU-second (workers + main)")
    print(f"    scaling 1 -> 2 workers (wall-clock): {walls[2] / walls[1]:.2f}x")


if __name__ == "__main__":
    main()
