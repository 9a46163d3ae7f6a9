"""``birdie linearize SRC OUT``: a softmax Transformer export -> a SUPRA export to uptrain (see
:mod:`birdie.convert.linearize`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="birdie export of a softmax Transformer")
    parser.add_argument("out", help="new export directory for the SUPRA model")
    parser.add_argument("--qk-norm", action="store_true", help="normalise the feature-mapped q and k (linear_tiny)")
    parser.add_argument("--decay", choices=("alibi", "retnet", "none"), default="alibi",
                        help="per-head decay (default: alibi, open_lm's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new weights' initialisation")
    parser.set_defaults(func=_linearize)


def _linearize(args: argparse.Namespace) -> int:
    from birdie.convert.linearize import REPORT, linearize

    report = linearize(args.source, args.out, args.qk_norm, args.decay, args.seed)
    print(f"reused {len(report.reused)} weights from {args.source}: {', '.join(report.reused)}")
    print(f"new {len(report.new)} weights (PyTorch's nn.Linear init): {', '.join(report.new)}")
    for field, (before, after) in report.changed.items():
        print(f"config {field}: {before!r} -> {after!r}")
    print(f"wrote {args.out} ({REPORT}); uptrain it with:\n  birdie train --pretrained {args.out} --model supra-tiny "
          f"--model.overrides '{overrides_for(Path(args.out) / 'config.json')}' "
          f"--data.tokenizer {Path(args.out) / 'tokenizer.json'}")
    return 0


def overrides_for(config_path: Path, preset: str = "supra-tiny") -> str:
    """A YAML flow mapping of the fields where ``config_path``'s model differs from ``preset``: with ``--model
    preset`` it rebuilds that model exactly (floats keep a decimal point, which YAML 1.1 needs to read a float)."""
    from birdie.models.presets import preset_config

    wanted = json.loads(config_path.read_text())
    base = preset_config(preset).to_dict()
    return "{" + ", ".join(f"{key}: {_yaml(value)}" for key, value in wanted.items() if base[key] != value) + "}"


def _yaml(value) -> str:
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    return json.dumps(value)
