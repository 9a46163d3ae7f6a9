"""Objective throughput on one core: source tokens per second, with the byte tokenizer and a trained 8k BPE.

Times are process CPU time, so a shared machine slows the figures less. Documents are pre-tokenized (as the
pipeline hands them over); each is consumed chunk by chunk through ``leftover`` until the objective skips the rest,
at a budget of 2048 positions (the paper's sequence length). "Tokens" are the document tokens an objective
consumed. The tokenizer's own ``encode`` throughput is measured on the same text, side by side.

Each example costs a fixed number of small numpy calls whatever its length, so short chunks are bound by numpy's
per-call overhead: the table also gives microseconds per example (byte tokenizer) and, in its header, the cost of
one small numpy call (``small + 1`` on 16 int64) measured in the same run; their ratio is the per-example cost in
"numpy calls".

    OMP_NUM_THREADS=1 .venv/bin/python bench/objectives.py [--seconds 1.0] [--results bench/RESULTS.md]
                                                           [--compare-with GIT_REV [--repeats 3]] [--only TEXT]

``--compare-with REV`` also measures ``birdie/objectives`` as it stood at git revision REV (imported from ``git
show`` output as a separate package), before and after alternating ``--repeats`` times per configuration so load
changes on a shared machine hit both alike; each side keeps its best repeat. When numba is installed, today's
objectives are measured both ways, with their compiled kernels (span corruption, selective copying) and on their
numpy path (``numba`` and ``numpy`` columns; ``×`` is numba over before); without ``--compare-with``, ``BIRDIE_NO_NUMBA=1`` measures the numpy path.
``--only TEXT`` measures only the configurations whose key contains TEXT. Each measurement starts after one
untimed document, so a kernel's one-time compilation or cache load is not counted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core for HF tokenizers too
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

import birdie.objectives as current  # noqa: E402
from birdie.objectives import spans as current_spans  # noqa: E402
from birdie.objectives import make_objective, mixture_probabilities, resolve_mixture  # noqa: E402
from birdie.tokenizers import ByteTokenizer, Tokenizer, train_bpe  # noqa: E402

BUDGET = 2048
CONFIGS = [
    {"name": "next_token_prediction"},
    {"name": "prefix_language_modeling"},
    {"name": "copying", "length": (128, 256)},
    {"name": "copying", "length": (512, 1024)},
    {"name": "infilling", "corruption_rate": 0.15, "mean_span_length": 3.0, "length": (128, 256)},
    {"name": "infilling", "corruption_rate": 0.15, "mean_span_length": 8.0, "length": (1024, 2048)},
    {"name": "infilling", "corruption_rate": 0.5, "mean_span_length": 32.0, "length": (1024, 2048)},
    {"name": "autoencoding", "corruption_rate": 0.15, "mean_span_length": 3.0, "length": (192, 384)},
    {"name": "autoencoding", "corruption_rate": 0.5, "mean_span_length": 8.0, "length": (768, 1536)},
    {"name": "autoencoding_with_deshuffling", "corruption_rate": 0.15, "mean_span_length": 3.0, "length": (192, 384)},
    {"name": "autoencoding_with_deshuffling", "corruption_rate": 0.5, "mean_span_length": 8.0, "length": (768, 1536)},
    {"name": "selective_copying", "num_spans": (1, 4), "length": (384, 768)},
    {"name": "selective_copying", "num_spans": (4, 4), "length": (768, 1536)},
    {"name": "deshuffling", "shuffle_fraction": 0.5, "length": (128, 256)},
    {"name": "deshuffling", "shuffle_fraction": 1.0, "length": (512, 1024)},
]

WORDS = ("the a bird song morning early air fill sings over under river stone light quiet town harbour key door "
         "clock tower library bakery stairs evening opened asked laughed found old brass every least once they "
         "had tried only shed gave way she he it what and by that this in of to").split()


def generated_text(num_documents: int, words_per_document: int, seed: int = 0) -> list[str]:
    """Word-salad documents with sentence punctuation (enough structure for BPE merges and unique delimiters)."""
    rng = np.random.default_rng(seed)
    documents = []
    for _ in range(num_documents):
        words = np.array(WORDS)[rng.integers(0, len(WORDS), size=words_per_document)]
        ends = rng.random(words_per_document) < 0.08
        documents.append(" ".join(w + "." if e else w for w, e in zip(words, ends)))
    return documents


def encode_throughput(tokenizer: Tokenizer, documents: list[str]) -> float:
    start = time.process_time()
    tokens = sum(len(tokenizer.encode(d)) for d in documents)
    return tokens / (time.process_time() - start)


def numpy_call_seconds(calls: int = 200_000) -> float:
    """CPU seconds of one small numpy call (an add on 16 int64), the unit of per-example overhead."""
    small = np.arange(16)
    start = time.process_time()
    for _ in range(calls):
        small + 1
    return (time.process_time() - start) / calls


def throughput(make_examples, documents: list[np.ndarray], seconds: float) -> tuple[float, float]:
    """``(tokens per CPU-second, CPU-seconds per call)``; ``make_examples(ids)`` consumes one document and returns
    ``(tokens, calls)``."""
    make_examples(documents[0])  # untimed: one-time costs (a kernel's compilation or cache load) are not throughput
    tokens, calls, start, index = 0, 0, time.process_time(), 0
    while time.process_time() - start < seconds:
        consumed, made = make_examples(documents[index % len(documents)])
        tokens, calls, index = tokens + consumed, calls + made, index + 1
    elapsed = time.process_time() - start
    return tokens / elapsed, elapsed / max(calls, 1)


def consume(pick_objective, ids: np.ndarray, rng: np.random.Generator, tokenizer: Tokenizer) -> tuple[int, int]:
    """Run objectives drawn by ``pick_objective()`` over ``ids`` chunk by chunk; ``(tokens consumed, calls)``."""
    rest, calls = ids, 0
    while len(rest):
        result = pick_objective()(rest, rng, BUDGET, tokenizer)
        calls += 1
        if len(result.leftover) == len(rest):
            break
        rest = result.leftover
    return len(ids) - len(rest), calls


def objective_throughput(entry: dict, tokenizer: Tokenizer, documents: list[np.ndarray], seconds: float,
                         objectives=current) -> tuple[float, float]:
    objective, rng = objectives.make_objective(entry), np.random.default_rng(0)
    return throughput(lambda ids: consume(lambda: objective, ids, rng, tokenizer), documents, seconds)


def objectives_at(revision: str, directory: Path):
    """``birdie.objectives`` as it stood at git ``revision``, imported as the package ``birdie_before.objectives``
    (its own imports of ``birdie.objectives`` rewritten; everything else, e.g. the tokenizers, is today's)."""
    files = subprocess.run(["git", "ls-tree", "--name-only", revision, "birdie/objectives/"], capture_output=True,
                           text=True, check=True).stdout.split()
    package = directory / "birdie_before" / "objectives"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    for name in files:
        source = subprocess.run(["git", "show", f"{revision}:{name}"], capture_output=True, text=True, check=True).stdout
        (package / Path(name).name).write_text(source.replace("birdie.objectives", "birdie_before.objectives"))
    sys.path.insert(0, str(directory))
    return importlib.import_module("birdie_before.objectives")


def best_of_alternating(measures: list, repeats: int) -> list[tuple[float, float]]:
    """Each measure's best ``(tokens/s, s/call)`` over ``repeats`` rounds, each round in another order (rotated)."""
    results: list[list[tuple[float, float]]] = [[] for _ in measures]
    for repeat in range(repeats):
        for offset in range(len(measures)):
            side = (repeat + offset) % len(measures)
            results[side].append(measures[side]())
    return [max(side) for side in results]


def numpy_path(measure):
    """``measure`` with today's objectives on their numpy path (compiled kernels switched off)."""

    def measured():
        saved, current_spans.use_kernels = current_spans.use_kernels, False
        try:
            return measure()
        finally:
            current_spans.use_kernels = saved

    return measured


def mixture_throughput(tokenizer: Tokenizer, documents: list[np.ndarray], seconds: float) -> tuple[float, float]:
    """The ``birdie`` mixture as the pipeline samples it: a configuration drawn per example."""
    configs = resolve_mixture("birdie")
    cdf, rng = np.cumsum(mixture_probabilities(configs)), np.random.default_rng(0)

    def pick():
        return configs[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(configs) - 1)]

    return throughput(lambda ids: consume(pick, ids, rng, tokenizer), documents, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--documents", type=int, default=200, help="documents of ~800 words each")
    parser.add_argument("--results", default=None, help="append a markdown section to this file")
    parser.add_argument("--compare-with", metavar="REV", help="also measure birdie/objectives at this git revision")
    parser.add_argument("--repeats", type=int, default=3, help="alternating before/after runs with --compare-with")
    parser.add_argument("--only", default="", help="measure only configurations whose key contains this text")
    args = parser.parse_args()

    texts = generated_text(args.documents, 800)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(generated_text(400, 800, seed=1)))
        bpe = train_bpe([corpus], vocab_size=8192)
        before = objectives_at(args.compare_with, Path(tmp)) if args.compare_with else None
        tokenizers = {"bytes": ByteTokenizer(), "bpe-8k": bpe}
        encoded = {name: [tok.encode(t) for t in texts] for name, tok in tokenizers.items()}
        call = numpy_call_seconds()
        table = (comparison_table(before, args, tokenizers, texts, encoded, call) if before is not None
                 else throughput_table(args, tokenizers, texts, encoded, call))
    print("\n" + table)

    if args.results:
        import torch

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        compared = f", before = {args.compare_with}, best of {args.repeats} alternating runs" if before else ""
        with open(args.results, "a") as f:
            f.write(
                f"\n## Objectives throughput (bench/objectives.py)\n\n"
                f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}{compared}, {platform.machine()} "
                f"({os.cpu_count()} cores, shared with other jobs while measured), one core, Python "
                f"{sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__}. Source tokens consumed "
                f"per CPU-second on pre-tokenized word-salad documents (~800 words), budget {BUDGET}.\n\n{table}\n"
            )


def selected(text: str) -> list[dict]:
    return [entry for entry in CONFIGS if text in make_objective(entry).key]


def encode_row(tokenizers: dict[str, Tokenizer], texts: list[str]) -> str:
    return "| tokenizer.encode (reference) | " + " | ".join(
        f"{encode_throughput(tok, texts) / 1e6:.2f}" for tok in tokenizers.values())


def throughput_table(args, tokenizers: dict[str, Tokenizer], texts: list[str], encoded: dict[str, list[np.ndarray]],
                     call: float) -> str:
    header = (f"| objective (budget {BUDGET}) | " + " | ".join(f"{n} Mtok/s" for n in tokenizers)
              + f" | bytes µs/call (in {call * 1e6:.2f} µs numpy calls) |")
    rows = [header, "|---|" + "---:|" * (len(tokenizers) + 1), encode_row(tokenizers, texts) + " | |"]

    def row(label: str, measured: list[tuple[float, float]]) -> str:
        per_call = measured[0][1]
        return (f"| {label} | " + " | ".join(f"{rate / 1e6:.2f}" for rate, _ in measured)
                + f" | {per_call * 1e6:.1f} (≈ {per_call / call:.0f}) |")

    for entry in selected(args.only):
        rows.append(row(make_objective(entry).key,
                        [objective_throughput(entry, tok, encoded[n], args.seconds) for n, tok in tokenizers.items()]))
        print(rows[-1], flush=True)
    rows.append(row("birdie mixture (104 configs, sampled)",
                    [mixture_throughput(tok, encoded[n], args.seconds) for n, tok in tokenizers.items()]))
    return "\n".join(rows)


def comparison_table(before, args, tokenizers: dict[str, Tokenizer], texts: list[str],
                     encoded: dict[str, list[np.ndarray]], call: float) -> str:
    """Before/after Mtok/s per tokenizer and configuration, today's numpy path beside the numba one when numba is
    installed (deshuffling and the mixture are left out: they are not this comparison's subject and the mixture's
    draws differ between versions)."""
    paths = ["numpy", "numba"] if current_spans.compiled_kernels() is not None else ["after"]
    header = (f"| objective (budget {BUDGET}) | " + " | ".join(
        " | ".join([f"{n} before"] + [f"{n} {p}" for p in paths] + ["×"]) for n in tokenizers)
        + f" | bytes µs/call before → {' / '.join(paths)} (numpy call {call * 1e6:.2f} µs) |")
    encode = [f"{encode_throughput(tok, texts) / 1e6:.2f}" for tok in tokenizers.values()]
    rows = [header, "|---|" + "---:|" * ((2 + len(paths)) * len(tokenizers) + 1),
            "| tokenizer.encode (reference) | " + " | ".join(
                " | ".join([rate] + [""] * (1 + len(paths))) for rate in encode) + " | |"]
    for entry in selected(args.only):
        if entry["name"] == "deshuffling":
            continue
        cells, per_call = [], None
        for name, tok in tokenizers.items():
            def measure(objectives=current, entry=entry, tok=tok, name=name):
                return lambda: objective_throughput(entry, tok, encoded[name], args.seconds, objectives)

            measures = [measure(before)] + ([numpy_path(measure())] if len(paths) == 2 else []) + [measure()]
            results = best_of_alternating(measures, args.repeats)
            cells += [f"{rate / 1e6:.2f}" for rate, _ in results] + [f"{results[-1][0] / results[0][0]:.2f}"]
            per_call = per_call or " → ".join([f"{results[0][1] * 1e6:.1f}",
                                               " / ".join(f"{r[1] * 1e6:.1f}" for r in results[1:])])
        rows.append(f"| {make_objective(entry).key} | " + " | ".join(cells) + f" | {per_call} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


if __name__ == "__main__":
    main()
