"""Loglikelihood requests/s of the harness scoring core on a multiple-choice workload, with and without state reuse.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--context-chars", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", default="hawk-tiny,gated-ssm-tiny,transformer-tiny,numpy")
    parser.add_argument("--server", action="store_true", help="benchmark birdie serve instead (see above)")
    parser.add_argument("--requests", type=int, default=400, help="--server: requests per setting")
    args = parser.parse_args()
    if args.server:
        server_bench(args.requests)
        return
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
