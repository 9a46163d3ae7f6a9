"""Packed tokens per second of the data pipeline for the ``birdie`` mixture, side by side, on this machine.

    OMP_NUM_THREADS=1 .venv/bin/python bench/pipeline.py [--stories 4000] [--batches 60] [--rounds 5]

Corpus: synthetic stories, generated once before timing (generation is not part of the pipeline's cost), and a
byte-level BPE (HF ``tokenizers``) trained on them. Measured in-process (one core), in ``--rounds`` interleaved
rounds so that a load change on a shared machine hits every measurement alike:

* the BPE's own encode throughput on the same texts, one call per document: ``tokenizers.Tokenizer.encode``
  (``add_special_tokens=False``, its faster setting) and ``encode_batch_fast`` over all texts (no offsets, the
  library's fastest path; one thread);
* (a) from pre-tokenized shards (``birdie data tokenize``; BPE and byte-level): packed positions/s;
* (b) tokenizing on the fly with the BPE: packed positions/s and document tokens/s, as ratios to the encode
  throughput of the same round.

Printed per measurement: the best round (other jobs on a shared machine only ever slow a round down, so the best
is the closest to this code's own speed), then the median and [min-max] over rounds. Ratios: the best rates
divided, then the median of the per-round ratios. Then (c), once: from shards with 1 and 2 worker processes,
batches arriving in the training process per wall-clock second.

"Packed positions" are non-padding positions of the batches (copying-type objectives put a document's tokens in
both prefix and target, and deshuffling's shuffled prefix takes more tokens than the text it came from, so they
can exceed the document tokens read). Rates are per CPU-second of this process (and its finished workers), i.e.
per core; the load average is printed before and after, as other jobs still slow a core they share.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core for HF tokenizers too
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # and no fork warning when (c) starts workers

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

from birdie.data.pipeline import Pipeline  # noqa: E402
from birdie.data.shards import tokenize_to_shards  # noqa: E402
from birdie.data.stories import generate_story  # noqa: E402
from birdie.tokenizers import ByteTokenizer, load_tokenizer, train_bpe  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process (``process_time``: os.times counts in 10 ms ticks, 15% of a short run) plus its
    finished children (the workers, once the pipeline is closed)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def run(pipeline_args: dict, batches: int) -> dict[str, float]:
    """Wall and CPU seconds for ``batches`` batches after a warm-up batch (worker start-up excluded), with the
    packed positions and document tokens they hold."""
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


def encode_rate(encode_all: Callable[[], int]) -> float:
    """Tokens per CPU-second of ``encode_all()`` (which returns how many tokens it produced)."""
    start = cpu_seconds()
    tokens = encode_all()
    return tokens / (cpu_seconds() - start)


def summary(values: list[float], scale: float = 1e6) -> str:
    """``best, median [min-max]`` of ``values / scale``."""
    scaled = [v / scale for v in values]
    return f"{max(scaled):5.2f}, median {statistics.median(scaled):5.2f} [{min(scaled):.2f}-{max(scaled):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=4000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
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
    byte_tokenizer = ByteTokenizer()
    tokenize_to_shards(texts, work / "shards", tokenizer, documents_per_shard=1000, progress=False)
    tokenize_to_shards(texts, work / "byte-shards", byte_tokenizer, documents_per_shard=1000, progress=False)
    common = dict(batch_size=args.batch_size, sequence_length=args.sequence_length, num_validation_batches=0,
                  tokenizer=tokenizer)
    print(f"{args.stories} stories, BPE vocab {tokenizer.vocab_size}, batches {args.batch_size}x{args.sequence_length}, "
          f"{args.batches} batches per measurement, {args.rounds} rounds; load average {os.getloadavg()[0]:.2f}")
    print("rates per CPU-second (= per core): best round, median [min-max] over rounds")

    from tokenizers import Tokenizer as RawTokenizer

    # The reference is the HF library itself (the same BPE and added tokens), not birdie's adapter around it. It and
    # every (b) run start from a fresh copy, as a new training process would: HF's BPE caches the first 10,000
    # distinct words it meets, so what a tokenizer encoded before changes its speed.
    spec = tokenizer.spec()

    def on_the_fly(split, worker_id, num_workers, rng_seed):
        return texts if split == "train" else []

    shard_runs = {("ntp", "BPE"): "shards", ("birdie", "BPE"): "shards", ("birdie", "bytes"): "byte-shards"}
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    for _ in range(args.rounds):
        raw, raw_fast = RawTokenizer.from_str(spec["json"]), RawTokenizer.from_str(spec["json"])
        encode = encode_rate(lambda: sum(len(raw.encode(t, add_special_tokens=False).ids) for t in texts))
        fast = encode_rate(lambda: sum(len(e.ids) for e in raw_fast.encode_batch_fast(texts, add_special_tokens=False)))
        record("encode", encode)
        record("encode_batch_fast", fast)
        for (mixture, name), shards in shard_runs.items():
            r = run(dict(common, mixture=mixture, source=str(work / shards),
                         tokenizer=byte_tokenizer if name == "bytes" else tokenizer), args.batches)
            record(f"a {mixture} {name}", r["positions"] / r["cpu"])
            record(f"fill {mixture} {name}", r["fill_rate"])
        for mixture in ("ntp", "birdie"):
            r = run(dict(common, mixture=mixture, source=on_the_fly, tokenizer=load_tokenizer(spec)), args.batches)
            packed, read = r["positions"] / r["cpu"], r["document_tokens"] / r["cpu"]
            record(f"b {mixture} packed", packed)
            record(f"b {mixture} read", read)
            for reference, rate in (("encode", encode), ("fast", fast)):
                record(f"b {mixture} packed/{reference}", packed / rate)
                record(f"b {mixture} read/{reference}", read / rate)

    print(f"BPE Tokenizer.encode, one call per document: {summary(results['encode'])} M tokens/s")
    print(f"BPE encode_batch_fast, all texts, 1 thread:  {summary(results['encode_batch_fast'])} M tokens/s")
    for mixture, name in shard_runs:
        print(f"(a) {mixture:6s} from {name:5s} shards: {summary(results[f'a {mixture} {name}'])} M packed positions/s, "
              f"fill {statistics.median(results[f'fill {mixture} {name}']):.4f}")
    for mixture in ("ntp", "birdie"):
        print(f"(b) {mixture:6s} tokenizing on the fly: {summary(results[f'b {mixture} packed'])} M packed positions/s")
        for what, label in (("packed", "packed positions/s"), ("read", "document tokens/s")):
            ratios = [f"{max(results[f'b {mixture} {what}']) / max(results[key]):4.2f}x "
                      f"(median {statistics.median(results[f'b {mixture} {what}/{ref}']):4.2f}x)"
                      for key, ref in (("encode", "encode"), ("encode_batch_fast", "fast"))]
            print(f"      {label:18s} / encode: {ratios[0]}, / encode_batch_fast: {ratios[1]}")

    walls = {}
    for workers in (1, 2):
        r = run(dict(common, mixture="birdie", source=str(work / "shards"), num_workers=workers), args.batches)
        walls[workers] = r["batches"] / r["wall"]
        print(f"(c) birdie from shards, {workers} worker(s): {walls[workers]:6.1f} batches/s wall-clock, "
              f"{r['positions'] / r['cpu'] / 1e6:5.2f} M packed positions per CPU-second (workers + main; the "
              "workers' CPU includes their start and the batches prefetched past the last one consumed)")
    print(f"    scaling 1 -> 2 workers (wall-clock): {walls[2] / walls[1]:.2f}x; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
