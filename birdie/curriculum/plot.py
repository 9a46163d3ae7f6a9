"""Drawing a decision log: the mixture per objective class and the validation losses per class over steps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def plot_mixture(records: Sequence[dict[str, Any]], out: str | os.PathLike) -> Path:
    """Write a PNG with the class mixture (stacked, piecewise constant from each evaluation on) and the mean
    validation loss per class, both against the training step. Returns the path written."""
    if not records:
        raise ValueError("the decision log has no records; nothing to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    class_names = list(records[0]["class_mixture"])
    steps = np.array([r["step"] for r in records])
    shares = np.array([[r["class_mixture"][name] for name in class_names] for r in records])
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    base = np.zeros(len(records))
    for index, name in enumerate(class_names):
        top.fill_between(steps, base, base + shares[:, index], step="post", label=name, alpha=0.85)
        base = base + shares[:, index]
    top.set(ylabel="share of the mixture", ylim=(0, 1), title="objective mixture per class")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    for name in class_names:
        bottom.plot(steps, [r["class_losses"][name] for r in records], marker=".", label=name)
    bottom.set(xlabel="training step", ylabel="mean validation loss", title="validation loss per class")
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
