"""The ``birdie`` command line.

Each command lives in its own module with a ``build_parser(parser)`` function that adds its arguments (or
sub-commands) and sets ``func``, the callable run with the parsed arguments. Modules are imported only when their
command runs, so ``birdie --help`` stays fast and a command's heavy imports never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: command -> (module with build_parser, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "objectives": ("birdie.objectives.cli", "show the objectives applied to a sample story"),
    "tokenizer": ("birdie.tokenizer_cli", "train a byte-level BPE tokenizer"),
    "data": ("birdie.data.cli", "pre-tokenize a corpus into shards; inspect packed batches"),
    "models": ("birdie.models.cli", "list the model presets with their parameter counts"),
    "train": ("birdie.train.cli", "train a model with a curriculum over objectives"),
    "generate": ("birdie.train.generate_cli", "sample continuations from an exported checkpoint"),
    "demo": ("birdie.demo_cli", "train the tiny default model on synthetic stories (or: demo agent)"),
    "eval": ("birdie.eval.cli", "phone-book retrieval, story infilling and SQuAD v2 evaluations"),
    "serve": ("birdie.harness.serve_cli", "serve checkpoints over an OpenAI-compatible HTTP API"),
    "plot": ("birdie.curriculum.plot_cli", "plot the objective mixture and losses from a decision log"),
    "convert": ("birdie.convert.cli", "convert models from / to Hugging Face and open_lm formats"),
    "linearize": ("birdie.convert.linearize_cli", "turn a softmax Transformer export into SUPRA for uptraining"),
    "sft": ("birdie.finetune.sft_cli", "supervised chat fine-tuning of an export (Tulu format)"),
    "dpo": ("birdie.finetune.dpo_cli", "direct preference optimisation of an export (DPO, cDPO, IPO)"),
    "rm": ("birdie.finetune.rm_cli", "train a reward model (scalar head, Bradley-Terry loss) from an export"),
    "experiment": ("birdie.experiment.cli", "replicate the Birdie effect: NTP vs UL2 vs Birdie at equal tokens"),
    "ppo": ("birdie.finetune.ppo_cli", "PPO/GRPO/RLOO of an export against a reward model or reward function"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: birdie COMMAND [options]   (birdie COMMAND --help for a command's options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``birdie`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"birdie: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_text = COMMANDS[command]
    parser = argparse.ArgumentParser(prog=f"birdie {command}", description=help_text)
    importlib.import_module(module_name).build_parser(parser)
    args = parser.parse_args(rest)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
