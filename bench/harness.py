"""The harness benchmarks, side by side in one run:

1. Loglikelihood requests/s of the scoring core on a multiple-choice workload, with and without state reuse.
2. Wall time of the same lm-eval task set (``birdie_smoke``) through both front-ends, in-process and served
   (``bench/harness_front_ends.py``), and rolling perplexity with and without state reuse.
3. ``birdie eval`` greedy generation on a phone-book set: each prompt decoded alone (``Scorer.generate``, the path
   before batching) vs. batched (``birdie.harness.decoding.greedy_batch``, now); outputs checked equal.

Section 1 in detail:

The workload looks like a 0-shot multiple-choice task: ``--docs`` documents, each a ~``--context-chars`` story
context and 4 short choices (one loglikelihood request per choice). Both settings score the same requests in the
same run, batch size ``--batch-size``; the results must agree (checked) and the ratio is the speed-up.

``--server``: ``birdie serve`` instead (the numpy ``tiny`` model in its own process, loopback): requests/s and
p50/p99 latency of echo completions (an lm-eval loglikelihood call) at 1, 16 and 100 concurrent clients, each on
its own kept-alive connection, all starting together; then the latency of ``/tokenize`` calls on one kept-alive
connection (lm-eval's remote tokenizer). Both with ``TCP_NODELAY`` on accepted sockets (the server's setting) and
without (Nagle's algorithm on: what the server did before), side by side.

    OMP_NUM_THREADS=1 .venv/bin/python bench/harness.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/harness.py --server
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
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


SERVER_SCRIPT = """
import sys
from birdie.harness.server import make_server
server = make_server({"tiny": "module=birdie.harness.numpy_example,tag=tiny"}, port=0, tcp_nodelay=sys.argv[1] == "1")
print(server.server_address[1], flush=True)
server.serve_forever()
"""
ECHO = {"model": "tiny", "prompt": [[104, 105, 32] * 10], "echo": True, "max_tokens": 1, "logprobs": 1}


def start_server(tcp_nodelay: bool) -> tuple[subprocess.Popen, int]:
    """``birdie serve``'s server in a child process (its own interpreter: no GIL shared with the clients)."""
    process = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, "1" if tcp_nodelay else "0"],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    port = int(process.stdout.readline())
    with socket.create_connection(("127.0.0.1", port), timeout=60) as probe:  # load the model before timing
        probe.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        probe.recv(1 << 16)
    return process, port


def client_run(port: int, clients: int, requests_each: int, path: str, body: dict) -> tuple[float, list[float]]:
    """``clients`` threads, each with one kept-alive connection sending ``requests_each`` requests after a common
    start; returns (requests/s over the wall-clock, per-request latencies in ms)."""
    start = threading.Barrier(clients + 1)
    latencies: list[float] = []
    lock = threading.Lock()
    data = json.dumps(body)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        own = []
        start.wait()
        for _ in range(requests_each):
            began = time.perf_counter()
            connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            own.append((time.perf_counter() - began) * 1000)
        connection.close()
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if len(latencies) != clients * requests_each:
        raise RuntimeError(f"{clients * requests_each - len(latencies)} requests failed")
    return len(latencies) / seconds, latencies


def server_bench(total_requests: int) -> None:
    print(f"python {platform.python_version()}, torch {torch.__version__}; numpy tiny model in a child process, "
          f"loopback; echo completions of {len(ECHO['prompt'][0])} tokens, ~{total_requests} per setting")
    rows: dict[bool, list[tuple[int, float, float, float]]] = {}
    keep_alive: dict[bool, tuple[float, float]] = {}
    for nodelay in (True, False):
        process, port = start_server(nodelay)
        try:
            rows[nodelay] = []
            for clients in (1, 16, 100):
                rate, latencies = client_run(port, clients, max(2, total_requests // clients), "/v1/completions", ECHO)
                rows[nodelay].append((clients, rate, *np.percentile(latencies, [50, 99])))
            _, latencies = client_run(port, 1, total_requests, "/tokenize", {"prompt": "the cat sat on the mat"})
            keep_alive[nodelay] = tuple(np.percentile(latencies, [50, 99]))
        finally:
            process.terminate()
            process.wait(10)
    print(f"{'':<10}{'TCP_NODELAY (now)':^30}{'Nagle on (before)':^30}")
    print(f"{'clients':<10}" + f"{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}" * 2)
    for (clients, *on), (_, *off) in zip(rows[True], rows[False]):
        print(f"{clients:<10}" + "".join(f"{v:>10.1f}" for v in (*on, *off)))
    on, off = keep_alive[True], keep_alive[False]
    print(f"keep-alive /tokenize, one connection: p50 {on[0]:.2f} ms, p99 {on[1]:.2f} ms with TCP_NODELAY; "
          f"p50 {off[0]:.2f} ms, p99 {off[1]:.2f} ms without")


def generation_bench(models: list[str], books: int, batch_size: int) -> None:
    """Section 3: the phone-book set decoded one prompt at a time vs. batched, same outputs."""
    from birdie.eval.phonebook import PhonebookConfig, generate_phonebooks
    from birdie.harness.decoding import greedy_batch
    from birdie.models import create

    tokenizer = ByteTokenizer()
    items = generate_phonebooks(PhonebookConfig(books, 10, 20, (1, 2, 4), "question-context-question", 0))
    prompts = [[int(t) for t in tokenizer.encode(item["prompt"])] for item in items]
    limits = [len(tokenizer.encode(item["answer"])) + 2 for item in items]
    print(f"\nbirdie eval phonebook generation: {books} prompts of ~{sum(map(len, prompts)) // books} tokens, "
          f"~{sum(limits) // books} new tokens each, prefix mode, batch {batch_size}; outputs equal\n")
    print("| model | one at a time s | batched s | speed-up |\n|---|---|---|---|")
    for name in models:
        torch.manual_seed(0)
        model = BirdieScoringModel(create(name, vocab_size=tokenizer.vocab_size, max_seq_len=2048), tokenizer,
                                   prefix_lm=True)
        start = time.perf_counter()
        alone = [Scorer(model).generate(p, n, prefix=True) for p, n in zip(prompts, limits)]
        middle = time.perf_counter()
        batched = greedy_batch(Scorer(model, ScorerConfig(batch_size=batch_size)), prompts, limits, prefix=True)
        end = time.perf_counter()
        assert batched == alone, f"{name}: batched decoding changed an output"
        print(f"| {name} | {middle - start:.2f} | {end - middle:.2f} | {(middle - start) / (end - middle):.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--context-chars", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", default="hawk-tiny,gated-ssm-tiny,transformer-tiny,numpy")
    parser.add_argument("--server", action="store_true", help="benchmark birdie serve instead (see above)")
    parser.add_argument("--requests", type=int, default=400, help="--server: requests per setting")
    parser.add_argument("--books", type=int, default=32, help="phone books decoded in section 3")
    args = parser.parse_args()
    if args.server:
        server_bench(args.requests)
        return
    print(f"load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
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
    import harness_front_ends  # beside this script; imports this module's workload

    harness_front_ends.main([])
    generation_bench(["hawk-tiny", "gated-ssm-tiny", "transformer-tiny"], args.books, 8)
    print(f"load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
