"""Loglikelihood requests/s of the harness scoring core on a multiple-choice workload, with and without state reuse.

The workload looks like a 0-shot multiple-choice task: ``--docs`` documents, each a ~``--context-chars`` story
context and 4 short choices (one loglikelihood request per choice). Both settings score the same requests in the
same run, batch size ``--batch-size``; the results must agree (checked) and the ratio is the speed-up.

    OMP_NUM_THREADS=1 .venv/bin/python bench/harness.py
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from birdie.harness.core import Scorer, ScorerConfig
from birdie.harness.adapters import BirdieScoringModel, load_scoring_model
from birdie.tokenizers import ByteTokenizer

WORDS = ("the little dog ran to the park and saw a red ball near the old tree while the sun was warm "
         "and the children laughed as they played with their friends all day long").split()
CHOICES = ("mat", "ball", "sky blue", "tree house")


def workload(tokenizer, docs: int, context_chars: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    rng = np.random.default_rng(seed)
    requests = []
    for _ in range(docs):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < context_chars:
            words.append(str(rng.choice(WORDS)))
        context = [int(t) for t in tokenizer.encode(" ".join(words))]
        requests += [(context, [int(t) for t in tokenizer.encode(" " + c)]) for c in CHOICES]
    return requests


def measure(model, requests, batch_size: int, state_reuse: bool) -> tuple[float, list[float], int]:
    scorer = Scorer(model, ScorerConfig(batch_size=batch_size, state_reuse=state_reuse, prefix_cache_size=0))
    start = time.perf_counter()
    scores = scorer.loglikelihood(requests)
    seconds = time.perf_counter() - start
    return len(requests) / seconds, [s.logprob for s in scores], scorer.stats["context_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--context-chars", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", default="hawk-tiny,gated-ssm-tiny,transformer-tiny,numpy")
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    requests = workload(tokenizer, args.docs, args.context_chars)
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"{args.docs} docs x {len(CHOICES)} choices = {len(requests)} requests, "
          f"context ~{len(requests[0][0])} tokens, batch {args.batch_size}")
    print(f"{'model':<18}{'mode':<8}{'plain req/s':>12}{'reuse req/s':>12}{'speed-up':>10}{'ctx tokens plain/reuse':>26}")
    for name in args.models.split(","):
        if name == "numpy":
            model = load_scoring_model(module="birdie.harness.numpy_example", tag="tiny")
        else:
            from birdie.models import create

            model = BirdieScoringModel(create(name, vocab_size=tokenizer.vocab_size), tokenizer)
        measure(model, requests[:8], args.batch_size, True)  # warm-up
        plain, plain_scores, plain_tokens = measure(model, requests, args.batch_size, False)
        reuse, reuse_scores, reuse_tokens = measure(model, requests, args.batch_size, True)
        np.testing.assert_allclose(reuse_scores, plain_scores, rtol=1e-4)
        mode = "prefix" if model.prefix_lm else "causal"
        print(f"{name:<18}{mode:<8}{plain:>12.1f}{reuse:>12.1f}{reuse / plain:>9.2f}x"
              f"{f'{plain_tokens}/{reuse_tokens}':>26}")


if __name__ == "__main__":
    main()
