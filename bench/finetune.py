"""Fine-tuning throughput: SFT tokens/s with packing vs padding, and DPO pairs/s with a live vs cached reference.

    python bench/finetune.py [--preset transformer-tiny] [--examples 64] [--batch-size 16] [--steps 6]
    python bench/finetune.py --trl [--steps 6]     # the same side by side with TRL (bench/finetune_trl.py)

SFT: the same embedded story questions trained both ways (each conversation padded to ``--sequence-length`` as
EasyLM does, or packed with per-conversation resets); the rate counts the conversations' real tokens, so padding's
waste shows as a lower rate, and the fill (real tokens / row positions) is printed. DPO: steps with a frozen
reference forward per step against steps reading precomputed reference log-probs (the cache's one-off pass is
timed separately). The two modes of each pair run interleaved, step by step, so load changes move both alike.
Random-weight tiny model, byte tokenizer.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from birdie.finetune.batches import global_batch, pack, pad  # noqa: E402
from birdie.finetune.config import build_finetune_config  # noqa: E402
from birdie.finetune.engine import FinetuneTrainer, step_on  # noqa: E402
from birdie.finetune.objectives import DPO, SFT  # noqa: E402
from birdie.models import create  # noqa: E402
from birdie.tokenizers import ByteTokenizer  # noqa: E402
from birdie.train.distributed import init_runtime  # noqa: E402
from birdie.train.export import export_model  # noqa: E402


def trainer(command: str, base: Path, out: Path, args: argparse.Namespace, **sections) -> FinetuneTrainer:
    values = {"model": {"pretrained": str(base)},
              "train": {"out": str(out), "batch_size": args.batch_size, "sequence_length": args.sequence_length,
                        "device": "cpu"},
              "data": {"embedded_examples": args.examples, "heldout_examples": 0, **sections.pop("data", {})},
              "logging": {"progress": False, "plots": False}, **sections}
    config = build_finetune_config(command, values)
    runtime = init_runtime(config.distributed, "cpu")
    objective = {"sft": SFT, "dpo": DPO}[command](config, runtime)
    return FinetuneTrainer(config, runtime, objective)


def timed_step(t: FinetuneTrainer, step: int) -> float:
    indices = global_batch(t.objective.num_examples, t.config.train.batch_size, step, 0)
    started = time.perf_counter()
    step_on(t.model, t.optimizer, t.objective, [indices], t.runtime, 1.0, False)
    return time.perf_counter() - started


def interleaved_seconds(trainers: dict[str, FinetuneTrainer], steps: int) -> dict[str, float]:
    """Seconds of steps 1..``steps`` of each trainer, run interleaved step by step (step 0 warms up, untimed)."""
    seconds = {mode: 0.0 for mode in trainers}
    for step in range(steps + 1):
        for mode, t in trainers.items():
            elapsed = timed_step(t, step)
            seconds[mode] += elapsed if step else 0.0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="transformer-tiny")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--trl", action="store_true",
                        help="birdie vs TRL's SFTTrainer and DPOTrainer on the same model and data (needs trl)")
    args = parser.parse_args()
    if args.trl:
        from finetune_trl import side_by_side

        side_by_side(args, trainer, interleaved_seconds)
        return
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"{args.preset}, batch {args.batch_size}, rows of {args.sequence_length}, {args.steps} timed steps each")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokenizer = ByteTokenizer()
        torch.manual_seed(0)
        model = create(args.preset, vocab_size=tokenizer.vocab_size)
        base = export_model(tmp / "base", model, model.config.to_dict(), tokenizer)

        sft = {mode: trainer("sft", base, tmp / mode, args, data={"packing": mode == "packing"})
               for mode in ("packing", "padding")}
        seconds = interleaved_seconds(sft, args.steps)
        tokens: dict[str, int] = {}
        for mode, t in sft.items():
            examples = [t.objective.items[i] for step in range(1, args.steps + 1)
                        for i in global_batch(t.objective.num_examples, args.batch_size, step, 0)]
            real = sum(len(e.ids) - 1 for e in examples)
            rows = (pack if mode == "packing" else pad)(examples, args.sequence_length, 0)["input_ids"].numel()
            tokens[mode] = real
            print(f"SFT {mode:<8} {real / seconds[mode]:9.0f} real tokens/s   fill {real / rows:.2f}")
        rates = {mode: tokens[mode] / seconds[mode] for mode in sft}
        print(f"SFT packing speed-up: {rates['packing'] / rates['padding']:.2f}x")

        started = time.perf_counter()
        dpo = {"cached": trainer("dpo", base, tmp / "cached", args, dpo={"reference": "cached"})}
        cache_s = time.perf_counter() - started
        dpo["live"] = trainer("dpo", base, tmp / "live", args, dpo={"reference": "live"})
        seconds = interleaved_seconds(dpo, args.steps)
        pairs = args.steps * args.batch_size
        for mode in ("live", "cached"):
            print(f"DPO {mode:<8} {pairs / seconds[mode]:9.1f} pairs/s")
        print(f"DPO cached speed-up: {seconds['live'] / seconds['cached']:.2f}x (plus a one-off cache build of "
              f"{args.examples} pairs with the data load: {cache_s:.1f} s)")


if __name__ == "__main__":
    main()
