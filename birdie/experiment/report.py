"""``OUT/results.json`` and ``OUT/results.md``: the run's context, one table per metric, the retrieval gap.

The context (:func:`run_context`) is what a reader needs to rerun or discount the numbers: the command, the
commit, the machine and its load, the budget, the tokens per arm and the model size.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from birdie.experiment import store
from birdie.experiment.aggregate import aggregate, retrieval_gap
from birdie.experiment.plan import ARM_HELP, ExperimentPlan


def _commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" (with uncommitted changes)" if dirty else "")


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _machine() -> dict[str, Any]:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({_cpu_name()})"
    return {"device": device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def run_context(plan: ExperimentPlan, argv: Sequence[str]) -> dict[str, Any]:
    """The run's context: command, commit, machine, start time, plan, tokens and model sizes."""
    from birdie.models.presets import count_parameters, preset_config

    scale = plan.spec
    return {
        "command": "birdie experiment replicate " + " ".join(shlex.quote(a) for a in argv),
        "commit": _commit(), "machine": _machine(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "plan": plan.to_dict(),
        "pretrain_tokens_per_arm": plan.pretrain_tokens, "finetune_tokens_per_arm": plan.finetune_tokens,
        "model_parameters": {label: count_parameters(preset_config(preset, **scale.model_overrides(label)))
                             for label, preset, _ in scale.models},
        "python_executable": sys.executable,
    }


def _cell(stat: dict[str, Any]) -> str:
    digits = 0 if abs(stat["mean"]) >= 100 else 3  # seconds need no decimals; accuracies and losses do
    if stat["spread"] is None:
        return f"{stat['mean']:.{digits}f} (1 seed)"
    return f"{stat['mean']:.{digits}f} ± {stat['spread']:.{digits}f}"


def _table(rows: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    columns = list(dict.fromkeys(column for row in rows.values() for column in row))
    lines = ["| arm | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row[c]) if c in row else "–" for c in columns) + " |")
    return lines


def _gap_lines(results: Sequence[dict[str, Any]], models: Sequence[str]) -> list[str]:
    lines = []
    for model in models:
        for arm in ("birdie", "second_stage", "ul2"):
            gap = retrieval_gap(results, model, arm)
            if gap is None:
                continue
            stat = gap["gap"]
            verdict = {None: "one seed: no spread to judge it against",
                       True: "beyond the seed spread (paired t-test, 95%)",
                       False: "within the seed spread (paired t-test, 95%)"}[gap["beyond_spread"]]
            spread = "" if stat["spread"] is None else f" ± {stat['spread']:.3f}"
            lines.append(f"- {model}: {arm} − ntp phone-book digit accuracy = {stat['mean']:+.3f}{spread} over "
                         f"{stat['n']} paired seed(s): {verdict}.")
    return lines


def build_report(context: dict[str, Any], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``results.json`` content: context, aggregate tables, gaps and every arm's full result."""
    models = list(context["model_parameters"])
    gaps = {f"{model} {arm}": retrieval_gap(results, model, arm) for model in models
            for arm in ("birdie", "second_stage", "ul2")}
    return {"context": context, "aggregate": aggregate(results), "gaps": gaps, "arms": list(results)}


def markdown(report: dict[str, Any]) -> str:
    """``results.md`` from a :func:`build_report` value."""
    context, plan = report["context"], report["context"]["plan"]
    machine = context["machine"]
    loads = [r["load_average"][0] for r in report["arms"]]
    total = len(plan["arms"]) * plan["seeds"] * len(context["model_parameters"])
    budget = (f"{plan['budget_minutes']:g} minutes (throughput measured at {plan['tokens_per_s']:,.0f} tokens/s)"
              if plan["budget_minutes"] is not None else "the scale's fixed token budget")
    lines = [
        "# Birdie replication results", "",
        f"- command: `{context['command']}`",
        f"- commit: `{context['commit']}`",
        f"- machine: {machine['device']}, {machine['cpu_count']} CPUs, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), Python {machine['python']}; 1-minute load average "
        f"{machine['load_average_at_start'][0]} at start"
        + (f", {min(loads):.1f}–{max(loads):.1f} at the arms' ends" if loads else ""),
        f"- started: {context['started_at']}; arms finished: {len(report['arms'])} of {total}",
        f"- scale `{plan['scale']}`, budget {budget}",
        f"- tokens per arm: {context['pretrain_tokens_per_arm']:,} pretraining ({plan['pretrain_steps']} steps) + "
        f"{context['finetune_tokens_per_arm']:,} phone-book fine-tuning ({plan['finetune_steps']} steps), equal "
        "for every arm",
        "- model size: " + ", ".join(f"{label} {n:,} parameters" for label, n in context["model_parameters"].items()),
        f"- seeds: {plan['seeds']}; evaluation: {plan['eval_books']} phone books per seed, "
        f"{plan['eval_infilling_items']} story-infilling items per seed",
        "- arms: " + "; ".join(f"`{arm}` {ARM_HELP[arm]}" for arm in plan["arms"]),
        "", "Cells are mean ± sample standard deviation over seeds. "
        + (f"Phone-book random digit accuracy ≈ {report['arms'][0]['phonebook']['random_digit_accuracy']:.3f}; "
           if report["arms"] else "") + "story-infilling chance = 0.25.", "", "## Retrieval gap", "",
    ]
    lines += _gap_lines(report["arms"], list(context["model_parameters"])) or ["- not measured yet (arms missing)"]
    for table, rows in report["aggregate"]["tables"].items():
        lines += ["", f"## {table}", ""] + _table(rows)
    lines += ["", "Plots: `plots/losses.png`, `plots/mixture.png`, `plots/retrieval.png`.", ""]
    return "\n".join(lines)


def write_report(out: Path, context: dict[str, Any], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Write ``OUT/results.json`` and ``OUT/results.md`` (atomically); returns the report."""
    report = build_report(context, results)
    store.write_json(out / "results.json", report)
    tmp = out / ".results.md.tmp"
    tmp.write_text(markdown(report), encoding="utf-8")
    os.replace(tmp, out / "results.md")
    return report
