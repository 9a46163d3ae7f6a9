"""The on-disk layout of a replication run and its atomic writes.

::

    OUT/plan.json                         the plan (scale, arms, seeds, steps): a resumed run must match it
                                          (it may add arms or seeds, which then train the same steps)
    OUT/arms/MODEL-ARM-seedS/             one arm of one seed
        pretrain-STAGE/                   a trainer run per pretraining stage (checkpoints, metrics, export)
        finetune/                         the phone-book fine-tuning run
        STAGE.done.json                   written when a training stage finished (its wall time)
        result.json                       written last, atomically: the arm is done
    OUT/results.json, results.md, plots/  the aggregate, rewritten after every arm

A killed run restarts every arm without ``result.json``: finished stages are kept, an interrupted stage resumes
from its latest checkpoint (or restarts when it had none).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PLAN = "plan.json"
RESULT = "result.json"


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON so that ``path`` is either absent, the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def arm_dir(out: Path, model: str, arm: str, seed: int) -> Path:
    return out / "arms" / f"{model}-{arm}-seed{seed}"


def stage_dir(arm_path: Path, stage: str, index: int) -> Path:
    return arm_path / f"pretrain{index}-{stage}"


def done_marker(run_dir: Path) -> Path:
    return run_dir.with_name(f"{run_dir.name}.done.json")


def saved_result(out: Path, model: str, arm: str, seed: int) -> dict[str, Any] | None:
    """The saved result of a finished arm, or None."""
    path = arm_dir(out, model, arm, seed) / RESULT
    return read_json(path) if path.is_file() else None


PLAN_KEYS = ("scale", "budget_minutes", "data")


def saved_plan(out: Path, requested: dict[str, Any]) -> dict[str, Any] | None:
    """The plan ``out`` already holds, for a resume, or None for a directory without a plan.

    A resume may add arms or seeds: the saved plan comes back with the requested ``arms`` and ``seeds`` and keeps
    its steps, so the new arms train the same tokens as the saved ones. Raises ValueError naming the option when
    ``out`` holds another run's plan (another scale, budget or data, or fewer arms or seeds than it holds).
    """
    path = out / PLAN
    if not path.is_file():
        return None
    saved = read_json(path)
    differing = [key for key in PLAN_KEYS if _normal(saved.get(key)) != _normal(requested.get(key))]
    dropped = sorted(set(saved["arms"]) - set(requested["arms"]))
    if dropped:
        differing.append("arms")
    if requested["seeds"] < saved["seeds"]:
        differing.append("seeds")
    if differing:
        raise ValueError(f"{path} holds a run with other options ("
                         + ", ".join(f"{k}={saved.get(k)!r}, asked {requested.get(k)!r}" for k in differing)
                         + "); rerun with its options (more arms or seeds may be added) to resume it, or give "
                         "another --out")
    return {**saved, "arms": list(requested["arms"]), "seeds": requested["seeds"]}


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
