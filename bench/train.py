"""Trainer overhead: tokens/s of birdie's train_step against a plain PyTorch loop on the same batches, and of a
whole `birdie train` run (pipeline, curriculum evaluations and agent decisions included).

    OMP_NUM_THREADS=2 .venv/bin/python bench/train.py [--preset hawk-tiny] [--steps 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from birdie.data.pipeline import Pipeline
from birdie.models import create
from birdie.objectives import resolve_mixture
from birdie.tokenizers import ByteTokenizer
from birdie.train.config import OptimizerConfig
from birdie.train.config_io import build_config, merge, read_config_file
from birdie.curriculum.config import DEMO_MIXTURE, mixture_spec
from birdie.train.demo import DEMO_CONFIG
from birdie.train.distributed import Runtime
from birdie.train.optim import build_optimizer
from birdie.train.step import train_step
from birdie.train.trainer import train


def plain_loop(model, batches):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for batch in batches:
        model(**batch)[1].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def birdie_loop(model, batches):
    optimizer = build_optimizer(model, OptimizerConfig())
    runtime = Runtime(0, 1, 0, torch.device("cpu"), 1, 1, 1, None)
    for batch in batches:
        train_step(model, optimizer, [batch], runtime, grad_clip=1.0)


def timed(fn, preset, batches):
    torch.manual_seed(0)
    model = create(preset, vocab_size=ByteTokenizer().vocab_size)
    fn(model, batches[:3])  # warm-up
    started = time.perf_counter()
    fn(model, batches)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="hawk-tiny")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    tokens = args.steps * 8 * 256
    with Pipeline(ByteTokenizer(), resolve_mixture(mixture_spec("demo", "birdie")), batch_size=8,
                  sequence_length=256) as pipeline:
        batches = [next(pipeline) for _ in range(args.steps)]
    plain = timed(plain_loop, args.preset, batches)
    ours = timed(birdie_loop, args.preset, batches)
    with tempfile.TemporaryDirectory() as out:
        config = build_config(merge(read_config_file(DEMO_CONFIG), {
            "model.preset": args.preset, "train.steps": args.steps, "train.out": out, "logging.progress": False,
            "logging.plots": False, "checkpoint.export": False, "train.device": "cpu"}))
        started = time.perf_counter()
        train(config)
        whole = time.perf_counter() - started
    print(f"{args.preset}, {args.steps} steps of 8 x 256 tokens ({DEMO_MIXTURE.name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"plain PyTorch loop        {tokens / plain:10,.0f} tok/s")
    print(f"birdie train_step         {tokens / ours:10,.0f} tok/s   ratio to plain {plain / ours:.2f}")
    print(f"whole `birdie train` run  {tokens / whole:10,.0f} tok/s   ratio to plain {plain / whole:.2f} "
          "(startup, data, evaluations, agent decisions, one checkpoint)")


if __name__ == "__main__":
    main()
