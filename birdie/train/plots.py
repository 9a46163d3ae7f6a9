"""End-of-run PNG plots from ``OUT/metrics.jsonl``: losses (training and per-objective validation) and the
objective mixture over time. matplotlib is imported lazily with the non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path

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

    fig, ax = plt.subplots(figsize=(8, 4.5))
    keys = list(records[0]["mixture"]) if records else []
    steps = [r["step"] for r in records]
    ax.stackplot(steps, [[r["mixture"].get(k, 0.0) for r in records] for k in keys], labels=keys)
    ax.set(xlabel="step", ylabel="probability", title="objective mixture", ylim=(0, 1))
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    mixture_path = plots / "mixture.png"
    fig.savefig(mixture_path, dpi=120)
    plt.close(fig)
    return [losses_path, mixture_path]
