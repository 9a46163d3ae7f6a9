"""``birdie train``: a YAML/TOML config plus command-line overrides of any field.

    birdie train --config configs/demo.yaml --steps 500 --optimizer.lr 1e-3 --out runs/x
    torchrun --nproc-per-node 4 -m birdie train --config run.yaml --distributed.mesh 1,-1,1

Shortcuts (``--model``, ``--steps``, ``--out``, ``--save-every``, ``--resume``, ``--pretrained``,
``--load-not-strict``, ``--overwrite``, ``--trust-checkpoint``) set the matching fields; ``--section.field value`` sets any field (``--help`` lists them).
"""

from __future__ import annotations

import argparse
import sys

from birdie.train.config import ConfigError, TrainConfig
from birdie.train.config_io import add_config_arguments, build_config, dotted_overrides, merge, read_config_file

#: shortcut flag -> the field it sets
SHORTCUTS = {
    "model": "model.preset",
    "steps": "train.steps",
    "out": "train.out",
    "save_every": "checkpoint.save_every",
    "resume": "checkpoint.resume",
    "pretrained": "model.pretrained",
}


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.allow_abbrev = False  # a mistyped field must be an error, not a prefix match of another
    parser.description = __doc__
    parser.add_argument("--config", help="YAML or TOML file with config sections (see configs/demo.yaml)")
    parser.add_argument("--model", help="model preset (= --model.preset)")
    parser.add_argument("--steps", help="optimizer steps (= --train.steps)")
    parser.add_argument("--out", help="output directory (= --train.out)")
    parser.add_argument("--save-every", dest="save_every", help="checkpoint every N steps (= --checkpoint.save_every)")
    parser.add_argument("--resume", help="'latest' or a checkpoint directory (= --checkpoint.resume)")
    parser.add_argument("--pretrained", help="initialise weights from an export/checkpoint (= --model.pretrained)")
    parser.add_argument("--load-not-strict", dest="load_not_strict", action="store_true",
                        help="with --pretrained: load matching keys, report missing/unexpected (= --model.strict "
                             "false)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out holds another run: delete its checkpoints, logs and export and start afresh "
                             "(= --train.overwrite true)")
    parser.add_argument("--trust-checkpoint", dest="trust_checkpoint", action="store_true",
                        help="let --pretrained/--resume read a checkpoint directory this run did not write (its "
                             "DCP .metadata is a pickle) (= --checkpoint.trust_checkpoint true)")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < ``--config`` file < shortcuts and ``--section.field`` flags."""
    values = read_config_file(args.config) if args.config else {}
    overrides = {field: getattr(args, flag) for flag, field in SHORTCUTS.items() if getattr(args, flag) is not None}
    if args.load_not_strict:
        overrides["model.strict"] = False
    if args.overwrite:
        overrides["train.overwrite"] = True
    if args.trust_checkpoint:
        overrides["checkpoint.trust_checkpoint"] = True
    overrides.update(dotted_overrides(args))
    return build_config(merge(values, overrides))


def run(args: argparse.Namespace) -> int:
    from birdie.train.checkpoint import CheckpointError
    from birdie.train.integrity import IntegrityError, UntrustedCheckpointError
    from birdie.train.trainer import train

    try:
        summary = train(config_from_args(args))
    except (ConfigError, CheckpointError, IntegrityError, UntrustedCheckpointError, FileNotFoundError) as error:
        print(f"birdie train: {error}", file=sys.stderr)
        return 2
    if summary.export is not None:
        print(f"done: step {summary.step}; metrics {summary.out / 'metrics.jsonl'}; checkpoint {summary.checkpoint}; "
              f"export {summary.export}")
    return 0
