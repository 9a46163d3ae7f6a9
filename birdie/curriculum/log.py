"""The decision log: one JSON line per evaluation, readable by ``birdie plot mixture``.

Each line holds ``step``, ``agent``, ``decided``, ``explored``, ``mixture`` ({key: probability}),
``class_mixture`` ({class: probability}), ``losses`` ({key: validation loss}), ``class_losses`` ({class: mean
validation loss}), ``rewards`` ({key: reward} or
null at the first evaluation), ``class_rewards``, ``total_reward``, ``reward_model_loss`` and
``applies_from_batch`` (the training batch index from which the mixture is in force, when known).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from birdie.curriculum.agent import Decision
from birdie.curriculum.reward import class_rewards


def _per_class(values: np.ndarray, class_ids: np.ndarray, class_names: Sequence[str], reduce: str) -> dict[str, float]:
    """Sum (``reduce="sum"``) or mean (``"mean"``) of ``values`` over each class's configurations."""
    sums = np.bincount(class_ids, weights=values, minlength=len(class_names))
    totals = sums if reduce == "sum" else class_rewards(values, class_ids)
    return {name: float(total) for name, total in zip(class_names, totals)}


def decision_record(decision: Decision, kind: str, keys: Sequence[str], class_ids: np.ndarray,
                    class_names: Sequence[str], applies_from_batch: int | None = None) -> dict[str, Any]:
    """The log line for one evaluation (see the module docstring)."""
    rewards = decision.rewards
    return {
        "step": decision.step,
        "agent": kind,
        "decided": decision.decided,
        "explored": decision.explored,
        "mixture": dict(zip(keys, decision.action.tolist())),
        "class_mixture": _per_class(decision.action, class_ids, class_names, "sum"),
        "losses": dict(zip(keys, decision.losses.tolist())),
        "class_losses": _per_class(decision.losses, class_ids, class_names, "mean"),
        "rewards": None if rewards is None else dict(zip(keys, rewards.tolist())),
        "class_rewards": None if rewards is None else _per_class(rewards, class_ids, class_names, "mean"),
        "total_reward": decision.total_reward,
        "reward_model_loss": decision.reward_model_loss,
        "applies_from_batch": applies_from_batch,
    }


class DecisionLog:
    """Appends records to a JSONL file (created with its parent directories), flushing every line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a decision log; raises ``ValueError`` naming the line that is not a JSON object."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not valid JSON ({error.msg}); is this a birdie decision log?") from None
            if not isinstance(record, dict) or not {"step", "class_mixture", "class_losses"} <= set(record):
                raise ValueError(f"{path}:{number} is not a birdie decision record "
                                 "(needs 'step', 'class_mixture' and 'class_losses')")
            records.append(record)
    return records
