"""``birdie sft``, ``birdie dpo`` and ``birdie rm``: fine-tune a birdie export on chat or preference data.

    birdie sft                                   # embedded story questions, runs/demo/export or a quick base
    birdie sft --pretrained runs/demo/export --data chat.jsonl --steps 500 --out runs/sft
    birdie dpo --pretrained runs/sft/export --data prefs.jsonl --dpo.beta 0.1 --dpo.reference live
    birdie rm  --pretrained runs/sft/export --data prefs.jsonl --rm.use_margin true
    birdie sft --data saved_dataset_dir --data.columns '{messages: conversations}'   # HF datasets too
    torchrun --nproc-per-node 2 -m birdie sft --pretrained EXPORT --mesh_dim 1,-1,1

Shortcuts (``--pretrained``, ``--data``, ``--steps``, ``--out``, ``--resume``, ``--save-every``) set the matching
fields; ``--section.field value`` sets any field (``--help`` lists them); ``--mesh_dim``, ``--num_epochs`` and
``--warmup_ratio`` are EasyLM's flags. See docs/finetuning.md.
"""

from __future__ import annotations

import argparse
import sys

from birdie.finetune.config import FinetuneConfig, add_arguments, build_finetune_config, dotted_overrides
from birdie.train.config import ConfigError
from birdie.train.config_io import merge, read_config_file

SHORTCUTS = {"pretrained": "model.pretrained", "data": "data.paths", "steps": "train.steps", "out": "train.out",
             "resume": "checkpoint.resume", "save_every": "checkpoint.save_every"}


def build_parser(parser: argparse.ArgumentParser, command: str) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.allow_abbrev = False
    parser.description = __doc__
    parser.add_argument("--config", help="YAML or TOML file with config sections")
    parser.add_argument("--pretrained", help="base export/checkpoint/run dir (= --model.pretrained)")
    parser.add_argument("--data", help="JSONL/JSON/parquet files, HF dataset directories or hub names, comma-separated "
                        "(= --data.paths)")
    parser.add_argument("--steps", help="optimizer steps (= --train.steps)")
    parser.add_argument("--out", help="output directory (= --train.out)")
    parser.add_argument("--resume", help="'latest' or a checkpoint directory (= --checkpoint.resume)")
    parser.add_argument("--save-every", dest="save_every", help="checkpoint every N steps")
    add_arguments(parser)
    parser.set_defaults(func=lambda args: run(args, command))


def config_from_args(args: argparse.Namespace, command: str) -> FinetuneConfig:
    """Command defaults < ``--config`` file < shortcuts, aliases and ``--section.field`` flags."""
    values = read_config_file(args.config) if args.config else {}
    overrides = {field: getattr(args, flag) for flag, field in SHORTCUTS.items() if getattr(args, flag) is not None}
    overrides.update(dotted_overrides(args))
    return build_finetune_config(command, merge(values, overrides))


def run(args: argparse.Namespace, command: str) -> int:
    from birdie.finetune.datasets import DataError
    from birdie.finetune.engine import finetune

    try:
        summary = finetune(config_from_args(args, command))
    except (ConfigError, DataError) as error:
        print(f"birdie {command}: {error}", file=sys.stderr)
        return 2
    for key, before in summary.eval_before.items():
        print(f"held-out {key}: {before:.3f} before -> {summary.eval_after[key]:.3f} after")
    print(f"done: step {summary.step}; metrics {summary.out / 'metrics.jsonl'}; checkpoint {summary.checkpoint}; "
          f"export {summary.export}")
    return 0
