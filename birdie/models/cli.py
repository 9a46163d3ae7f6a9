"""``birdie models list``: the presets with their family, shape and parameter count (counted on the meta device,
so even the 7B presets cost no memory)."""

from __future__ import annotations

import argparse

from birdie.models.presets import count_parameters, presets
from birdie.models.registry import available_families


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list the model presets with their parameter counts")
    listing.set_defaults(func=_list)


def format_count(count: int) -> str:
    """Three significant digits (whole units from 100 up): 1_439_795_200 -> '1.44B', 11_010_000 -> '11M',
    172_352 -> '172K', 123_456_789_000 -> '123B'."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}" if count < 100 * scale else f"{count / scale:.0f}{suffix}"
    return str(count)


def preset_rows() -> list[tuple[str, str, str, str]]:
    """(name, family, shape, parameters) per preset; parameters read 'family not available' when it is not."""
    available = set(available_families())
    rows = []
    for name, config in presets().items():
        shape = f"d={config.d_model} L={config.n_layers} vocab={config.vocab_size}"
        params = format_count(count_parameters(config)) if config.family in available else "family not available"
        rows.append((name, config.family, shape, params))
    return rows


def _list(args: argparse.Namespace) -> int:
    rows = [("preset", "family", "shape", "parameters")] + preset_rows()
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    return 0
