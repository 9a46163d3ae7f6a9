"""Wall time of the same lm-eval task set through both front-ends, and rolling perplexity with and without state reuse.

1. ``birdie_smoke`` (all four request types) on a tiny NTP-trained transformer export: in-process
   (``--model birdie``, defaults) vs. ``birdie serve`` (in a thread of this process) + stock ``local-completions``
   given the advertised ``model_max_length``. The per-sample outputs must agree (checked); the times include
   lm-eval's own overhead (task building, metrics), not its CLI start-up.
2. Rolling perplexity (lm-eval's disjoint windows) over ``--docs`` documents of ``--doc-chars`` characters, windows
   of ``--window`` tokens: plain batched forward passes (the default) vs. state reuse (each window's first token read
   as a context, its continuation run token by token from the state). Totals must agree (checked).

    OMP_NUM_THREADS=1 .venv/bin/python bench/harness_front_ends.py
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import urllib.request

import numpy as np
import torch

from birdie.harness.adapters import BirdieScoringModel, load_scoring_model
from birdie.harness.core import Scorer, ScorerConfig
from birdie.tokenizers import ByteTokenizer
from harness import CHOICES, workload  # bench/harness.py, beside this script


def _export(directory: str) -> str:
    from birdie.models import create
    from birdie.train.export import export_model, write_training_record

    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    model = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    export_model(directory, model, model.config.to_dict(), tokenizer)
    write_training_record(directory, {"prefix_lm": False, "agent": "ntp"})
    return directory


def front_ends(checkpoint: str, tasks: list[str]) -> dict[str, float]:
    """Seconds for ``tasks`` in-process and through the server (per-sample outputs checked equal)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from birdie.harness.evaluation import evaluate
    from birdie.harness.server import make_server, serve_in_thread
    from birdie.harness.tasks import TASKS_DIR

    start = time.perf_counter()
    local = evaluate(f"checkpoint={checkpoint}", tasks=tasks, builtin_tasks=False, log_samples=True)
    in_process = time.perf_counter() - start
    server = make_server({"birdie": f"checkpoint={checkpoint}"}, port=0)
    serve_in_thread(server)
    try:
        with urllib.request.urlopen(f"{server.url}/tokenizer_info") as response:
            advertised = json.loads(response.read())["model_max_length"]
        start = time.perf_counter()
        remote = lm_eval.simple_evaluate(
            model="local-completions", tasks=tasks, log_samples=True,
            task_manager=TaskManager(include_path=TASKS_DIR, include_defaults=False),
            model_args=f"base_url={server.url}/v1/completions,model=birdie,max_length={advertised}")
        served = time.perf_counter() - start
    finally:
        server.shutdown()
        server.server_close()
    for task, rows in local["samples"].items():
        by_doc = {s["doc_id"]: s["resps"] for s in remote["samples"][task]}
        for sample in rows:
            for mine, theirs in zip(sample["resps"], by_doc[sample["doc_id"]]):
                if isinstance(mine[0], str):
                    assert mine[0] == theirs[0], task
                else:
                    assert np.allclose(np.asarray(mine[0], float), np.asarray(theirs[0], float), rtol=1e-5), task
    return {"in-process": in_process, "served": served}


def documents(tokenizer, count: int, chars: int) -> list[list[int]]:
    """``count`` story-like documents of about ``chars`` characters (``bench/harness.py``'s contexts)."""
    return [context for context, _ in workload(tokenizer, count, chars)[:: len(CHOICES)]]


def rolling(model, docs: list[list[int]], window: int, batch_size: int) -> dict[bool, float]:
    """Seconds of rolling perplexity without and with state reuse (totals checked equal)."""
    eos = model.tokenizer.specials.eos
    seconds, totals = {}, {}
    for reuse in (False, True):
        scorer = Scorer(model, ScorerConfig(batch_size=batch_size, rolling_state_reuse=reuse))
        start = time.perf_counter()
        totals[reuse] = scorer.loglikelihood_rolling(docs, eos, window)
        seconds[reuse] = time.perf_counter() - start
    assert np.allclose(totals[False], totals[True], rtol=1e-4), "state reuse changed the perplexity"
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="birdie_smoke")
    parser.add_argument("--docs", type=int, default=8)
    parser.add_argument("--doc-chars", type=int, default=2000)
    parser.add_argument("--window", type=int, default=254, help="tokens per perplexity window (lm-eval: max_length - 2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", default="hawk-tiny,transformer-tiny,numpy")
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as directory:
        times = front_ends(_export(directory), args.tasks.split(","))
    print(f"\n{args.tasks} on transformer-tiny (NTP), per-sample outputs equal on both paths\n")
    print("| front-end | seconds |\n|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.1f} |")
    tokenizer = ByteTokenizer()
    docs = documents(tokenizer, args.docs, args.doc_chars)
    print(f"\nrolling perplexity: {args.docs} docs x ~{len(docs[0])} tokens, windows of {args.window}, "
          f"batch {args.batch_size}; totals equal with and without state reuse\n")
    print("| model | plain s | state reuse s | state reuse / plain |\n|---|---|---|---|")
    for name in args.models.split(","):
        torch.manual_seed(0)
        if name == "numpy":
            model = load_scoring_model(module="birdie.harness.numpy_example", tag="tiny", scoring="causal")
        else:
            from birdie.models import create

            model = BirdieScoringModel(create(name, vocab_size=tokenizer.vocab_size), tokenizer, prefix_lm=False)
        seconds = rolling(model, docs, args.window, args.batch_size)
        print(f"| {name} | {seconds[False]:.2f} | {seconds[True]:.2f} | {seconds[True] / seconds[False]:.1f}x |")


if __name__ == "__main__":
    main()
