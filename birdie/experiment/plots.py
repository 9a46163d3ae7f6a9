"""The replication's figures from ``results.json`` arms (matplotlib, lazily imported, Agg backend).

* ``plots/losses.png`` -- pretraining loss against training tokens, one colour per arm, one line per seed.
* ``plots/mixture.png`` -- the Birdie agent's share per objective class against training tokens (seed 0 of every
  arm that ran the agent; ``second_stage`` starts halfway).
* ``plots/retrieval.png`` -- phone-book digit accuracy against the number of numbers asked for, per arm, mean
  over seeds with the spread as error bars, and the random baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from birdie.experiment.aggregate import mean_spread


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _rows(results: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        rows.setdefault(f"{result['model']} {result['arm']}", []).append(result)
    return rows


def plot_losses(results: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for colour, (row, members) in enumerate(_rows(results).items()):
        for number, result in enumerate(members):
            tokens, losses = zip(*result["loss_curve"]) if result["loss_curve"] else ((), ())
            ax.plot(tokens, losses, color=f"C{colour}", lw=1, alpha=0.8, label=row if number == 0 else None)
    ax.set(xlabel="training tokens", ylabel="training loss (nats/token)",
           title="pretraining loss per arm (each arm's own objectives)")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_mixture(results: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    agents = [r for r in results if r["mixture"] and r["seed"] == min(x["seed"] for x in results)]
    fig, axes = plt.subplots(max(1, len(agents)), 1, figsize=(8, 3.2 * max(1, len(agents))), squeeze=False)
    for ax, result in zip(axes[:, 0], agents):
        classes = sorted({name for point in result["mixture"] for name in point["class_mixture"]})
        tokens = [point["tokens"] for point in result["mixture"]]
        shares = [[point["class_mixture"].get(name, 0.0) for point in result["mixture"]] for name in classes]
        ax.stackplot(tokens, shares, labels=classes, step="post")
        ax.set(xlabel="training tokens", ylabel="share", ylim=(0, 1),
               title=f"Birdie mixture: {result['model']} {result['arm']} seed {result['seed']}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if not agents:
        axes[0, 0].text(0.5, 0.5, "no arm ran the Birdie agent", ha="center", va="center")
    return _save(plt, fig, path)


def plot_retrieval(results: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row, members in _rows(results).items():
        ks = sorted({int(k) for r in members for k in r["phonebook"]["by_num_queries"]})
        stats = [mean_spread([r["phonebook"]["by_num_queries"][str(k)]["digit_accuracy"] for r in members
                              if str(k) in r["phonebook"]["by_num_queries"]]) for k in ks]
        ax.errorbar(ks, [s["mean"] for s in stats], yerr=[s["spread"] or 0.0 for s in stats], marker="o",
                    capsize=3, label=row)
    if results:  # every arm answers the same books, so they share one baseline
        ax.axhline(results[0]["phonebook"]["random_digit_accuracy"], color="grey", ls="--", lw=1,
                   label="random digits")
    counts = sorted({int(k) for r in results for k in r["phonebook"]["by_num_queries"]})
    ax.set_xticks(counts)  # whole numbers of queries (a scale that asks one has a single tick)
    ax.set(xlabel="numbers asked for at once", ylabel="digit accuracy", ylim=(0, 1),
           title="phone-book retrieval after fine-tuning (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_all(results: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Write the three figures under ``out/plots``; returns their paths."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    return [plot_losses(results, plots / "losses.png"), plot_mixture(results, plots / "mixture.png"),
            plot_retrieval(results, plots / "retrieval.png")]
