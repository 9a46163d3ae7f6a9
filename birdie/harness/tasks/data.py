"""Dataset loader for the task pack's YAML files (``custom_dataset: !function data.load``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load(file: str, **_: Any) -> dict[str, Any]:
    """The JSONL file ``file`` next to this module as lm-eval's ``{"test": Dataset}``."""
    import datasets

    path = Path(__file__).resolve().parent / file
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"test": datasets.Dataset.from_list(rows)}
