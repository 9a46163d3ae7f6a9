"""``birdie demo``: train the tiny Hawk model with the Birdie curriculum on the synthetic stories, on the CPU.

It runs ``birdie/train/demo.yaml`` (also ``configs/demo.yaml``): the progress bar and, at each evaluation, the
mixture the agent chose; then the validation losses, a few sampled continuations, and where the metrics, decision
log, plots, checkpoint and export went.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from birdie.curriculum.config import AGENT_KINDS, SELF_MIXTURE_AGENTS

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
PROMPTS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the demo config's)")
    parser.add_argument("--model", default=None, help="model preset (default: hawk-tiny; try gated-ssm-tiny)")
    parser.add_argument("--agent", default=None, choices=AGENT_KINDS,
                        help="who sets the mixture (default: birdie)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out (deletes its "
                                                                 "checkpoints, logs and export)")


def demo_config(args: argparse.Namespace):
    from birdie.train.config_io import build_config, merge, read_config_file

    overrides = {"train.out": args.out, "train.device": "cpu"}
    for flag, field in (("steps", "train.steps"), ("model", "model.preset"), ("agent", "curriculum.agent")):
        if getattr(args, flag) is not None:
            overrides[field] = getattr(args, flag)
    if args.agent in SELF_MIXTURE_AGENTS:
        overrides["curriculum.mixture"] = None  # the agent is its own mixture, not the demo's
    if args.no_progress:
        overrides["logging.progress"] = False
    if args.overwrite:
        overrides["train.overwrite"] = True
    return build_config(merge(read_config_file(DEMO_CONFIG), overrides))


def _prompts() -> list[str]:
    """Openings of held-out stories (the first eight words)."""
    from birdie.data.stories import story_texts

    openings = dict.fromkeys(" ".join(text.split()[:8]) for text in itertools.islice(story_texts(1, "validation"), 50))
    return list(openings)[:PROMPTS]


def _mean(record: dict) -> float:
    return sum(record["val_loss"].values()) / len(record["val_loss"])


def run(args: argparse.Namespace) -> int:
    from birdie.train.config import ConfigError
    from birdie.train.export import load
    from birdie.train.generate_cli import sample
    from birdie.train.metrics import read_metrics
    from birdie.train.trainer import train

    try:
        config = demo_config(args)
        print(f"birdie demo: {config.model.preset} on synthetic stories, {config.curriculum.agent} curriculum, "
              f"{config.train.steps} steps of {config.train.batch_size} x {config.train.sequence_length} tokens")
        started = time.perf_counter()
        summary = train(config)
    except ConfigError as error:
        print(f"birdie demo: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    out = summary.out
    evaluations = [r for r in read_metrics(out / "metrics.jsonl") if r.get("val_loss")]
    if evaluations:
        first, last = evaluations[0], evaluations[-1]
        print(f"\nmean validation loss: {_mean(first):.3f} (step {first['step'] - 1}) -> {_mean(last):.3f} "
              f"(step {last['step'] - 1}); final training loss {summary.losses[-1]:.3f}")
    model, tokenizer = load(summary.export)
    print("\nsamples (temperature 0.8):")
    for index, prompt in enumerate(_prompts()):
        text = sample(model, tokenizer, prompt, max_new_tokens=120, seed=index)[0]
        print(f"  > {prompt}{' '.join(text.split())}")
    print(f"\ntrained in {elapsed:.0f} s. Everything is in {out}/:")
    print(f"  metrics     {out / 'metrics.jsonl'} (one JSON line per logged step)")
    print(f"  decisions   {out / 'decisions.jsonl'} (the agent's mixture and validation losses)")
    print(f"  plots       {out / 'plots' / 'losses.png'}, {out / 'plots' / 'mixture.png'}")
    print(f"  checkpoint  {summary.checkpoint} (resume: birdie train --config configs/demo.yaml --out {out} "
          "--resume latest --steps N)")
    print(f"  export      {summary.export} (birdie.load('{summary.export}'); "
          f"birdie generate --checkpoint {summary.export} --prompt ...)")
    print(f"  config      {out / 'config.yaml'}")
    return 0
