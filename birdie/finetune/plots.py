"""End-of-run plot of a fine-tuning run: the loss and every accuracy-like metric per step (``OUT/plots``)."""

from __future__ import annotations

from pathlib import Path

from birdie.train.metrics import read_metrics


def plot_finetune(out_dir: str | Path) -> Path:
    """Write ``OUT/plots/finetune.png`` from ``OUT/metrics.jsonl``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    records = [r for r in read_metrics(out_dir / "metrics.jsonl") if "loss" in r]
    keys = sorted({k for r in records for k in r if "accurac" in k})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot([r["step"] for r in records], [r["loss"] for r in records], color="black")
    axes[0].set(xlabel="step", ylabel="loss", title="training loss")
    for key in keys:
        axes[1].plot([r["step"] for r in records if key in r], [r[key] for r in records if key in r], label=key)
    axes[1].set(xlabel="step", ylabel="accuracy", title="accuracy")
    if keys:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "plots" / "finetune.png"
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
