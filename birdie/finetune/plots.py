"""End-of-run plot of a fine-tuning run: the loss and every accuracy-like metric per step (``OUT/plots``)."""

from __future__ import annotations

from pathlib import Path

from birdie.train.metrics import read_metrics


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (imported lazily: plotting is optional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (creating its folder), close it, return ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_finetune(out_dir: str | Path) -> Path:
    """Write ``OUT/plots/finetune.png`` from ``OUT/metrics.jsonl``; returns its path."""
    plt = _pyplot()
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
    return _save(fig, out_dir / "plots" / "finetune.png")


PPO_PANELS = (
    ("reward", ("objective/scores",)),
    ("KL to the reference (nats per response)", ("objective/kl",)),
    ("entropy (nats per token)", ("objective/entropy",)),
    ("losses", ("loss/policy_avg", "loss/value_avg")),
)


def plot_ppo(out_dir: str | Path) -> Path:
    """Write ``OUT/plots/ppo.png`` from a ``birdie ppo`` run's ``OUT/metrics.jsonl``: the mean reward (± its
    standard deviation over rollouts), the KL to the reference, the entropy and the policy/value losses per step;
    returns its path."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    records = read_metrics(out_dir / "metrics.jsonl")
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (title, keys) in zip(axes.flat, PPO_PANELS):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if key in r]
            if points:
                ax.plot(*zip(*points), label=key)
        if title == "reward" and records:
            steps = [r["step"] for r in records]
            mean = [r["objective/scores"] for r in records]
            spread = [r.get("objective/scores_std", 0.0) for r in records]
            ax.fill_between(steps, [m - s for m, s in zip(mean, spread)], [m + s for m, s in zip(mean, spread)],
                            alpha=0.2)
        ax.set(xlabel="step", title=title)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    return _save(fig, out_dir / "plots" / "ppo.png")
