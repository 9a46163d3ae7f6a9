"""Per-arm results over seeds: mean ± spread of every metric, and the Birdie-vs-NTP retrieval gap.

The spread is the sample standard deviation over seeds (``ddof=1``); with one seed it is None (no spread can be
measured, and the report says so rather than printing ± 0).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

#: two-sided 95% quantiles of Student's t for 1..10 degrees of freedom (1.96 beyond: the normal limit is close)
T_95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def mean_spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "spread", "n", "values"}`` of ``values`` (spread: sample standard deviation, None for n < 2)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_spread: no values")
    mean = sum(values) / len(values)
    spread = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None)
    return {"mean": mean, "spread": spread, "n": len(values), "values": values}


def metric_columns(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The tabulated metrics of one arm result: ``{table: {column: value}}``."""
    phonebook = result["phonebook"]
    by_k = phonebook["by_num_queries"]
    return {
        "phone-book digit accuracy": {**{f"k={k}": v["digit_accuracy"] for k, v in by_k.items()},
                                      "all": phonebook["digit_accuracy"]},
        "phone-book number exact match": {**{f"k={k}": v["number_exact_match"] for k, v in by_k.items()},
                                          "all": phonebook["number_exact_match"]},
        "story infilling accuracy": {f"{mode} prompt": value for mode, value in result["infilling"].items()},
        "validation loss per objective (end of pretraining)": dict(result["val_loss"]),
        "phone-book fine-tuning": {"final answer loss": result["finetune"]["final_loss"]},
        "wall time (s)": {"pretrain": result["pretrain"]["wall_s"], "fine-tune": result["finetune"]["wall_s"],
                          "evaluate": result["eval_wall_s"]},
    }


def aggregate(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"tables": {table: {"model arm": {column: mean_spread}}}, "seeds": {"model arm": [seeds]}}``.

    Rows keep the order arms first appear in; a column missing in some seed averages the seeds that have it.
    """
    collected: dict[str, dict[str, dict[str, list[float]]]] = {}
    seeds: dict[str, list[int]] = {}
    for result in results:
        row = f"{result['model']} {result['arm']}"
        seeds.setdefault(row, []).append(result["seed"])
        for table, columns in metric_columns(result).items():
            for column, value in columns.items():
                collected.setdefault(table, {}).setdefault(row, {}).setdefault(column, []).append(value)
    tables = {table: {row: {column: mean_spread(values) for column, values in columns.items()}
                      for row, columns in rows.items()}
              for table, rows in collected.items()}
    return {"tables": tables, "seeds": seeds}


def retrieval_gap(results: Sequence[dict[str, Any]], model: str, arm: str = "birdie",
                  baseline: str = "ntp") -> dict[str, Any] | None:
    """Phone-book digit accuracy of ``arm`` minus ``baseline`` for ``model``, paired by seed.

    Returns ``{"gap": mean_spread of the per-seed differences, "beyond_spread": bool | None}`` (None when one of
    the arms has no result); ``beyond_spread`` is a paired t-test at 95%: True when the mean gap exceeds
    ``t(n-1) * sd / sqrt(n)`` (with two seeds t = 12.7: two seeds rarely settle anything), None with one seed.
    """
    by_seed: dict[str, dict[int, float]] = {arm: {}, baseline: {}}
    for result in results:
        if result["model"] == model and result["arm"] in by_seed:
            by_seed[result["arm"]][result["seed"]] = result["phonebook"]["digit_accuracy"]
    common = sorted(set(by_seed[arm]) & set(by_seed[baseline]))
    if not common:
        return None
    gap = mean_spread([by_seed[arm][s] - by_seed[baseline][s] for s in common])
    beyond = None
    if gap["spread"] is not None:
        quantile = T_95[gap["n"] - 2] if gap["n"] - 1 <= len(T_95) else 1.96
        beyond = abs(gap["mean"]) > quantile * gap["spread"] / math.sqrt(gap["n"])
    return {"gap": gap, "beyond_spread": beyond}
