"""End-of-run PNG plots: losses (training and per-configuration validation, from ``OUT/metrics.jsonl``) and the
mixture per objective class over time (the curriculum's own plot of ``OUT/decisions.jsonl``). matplotlib is
imported lazily with the non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path

from birdie.curriculum.log import read_log
from birdie.curriculum.plot import plot_mixture
from birdie.train.metrics import read_metrics


def plot_run(out_dir: str | Path) -> list[Path]:
    """Write ``OUT/plots/losses.png`` and ``OUT/plots/mixture.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    records = read_metrics(out_dir / "metrics.jsonl")
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([r["step"] for r in records], [r["loss"] for r in records], label="train", color="black", lw=1.5)
    evaluations = [r for r in records if r.get("val_loss")]
    for key in sorted({k for r in evaluations for k in r["val_loss"]}):
        points = [(r["step"], r["val_loss"][key]) for r in evaluations if key in r["val_loss"]]
        ax.plot(*zip(*points), marker=".", lw=0.8, label=f"val {key}")
    ax.set(xlabel="step", ylabel="loss (nats/token)", title="losses")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    losses_path = plots / "losses.png"
    fig.savefig(losses_path, dpi=120)
    plt.close(fig)

    mixture_path = plot_mixture(read_log(out_dir / "decisions.jsonl"), plots / "mixture.png")
    return [losses_path, mixture_path]
