"""``birdie experiment replicate``: the Birdie effect at a scale you can rerun (docs/results.md).

    birdie experiment replicate --seeds 3 --threads 1     # cpu scale, about 70 minutes on 2 cores (docs/results.md)
    birdie experiment replicate --budget-minutes 3 --seeds 1 --arms ntp,birdie --out runs/smoke
    birdie experiment replicate --scale gpu --out runs/gpu   # one GPU, the first rung of the ladder

Every arm trains the same model on the same number of tokens: the scale's fixed token budget, or, with
``--budget-minutes``, the number that budget buys at the throughput measured at the start (a short calibration
run), so a busy machine takes longer but trains the same tokens as the arms it is compared with. Rerunning the
same command on the same ``--out`` resumes it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from birdie.experiment.plan import ARM_HELP, ARMS, SCALES

CALIBRATION_STEPS = 12


def _arms(text: str) -> tuple[str, ...]:
    arms = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [arm for arm in arms if arm not in ARMS]
    if not arms or unknown or len(set(arms)) != len(arms):
        raise argparse.ArgumentTypeError(f"--arms {text!r}: give distinct arms among {', '.join(ARMS)}, "
                                         "comma-separated")
    return tuple(arm for arm in ARMS if arm in arms)


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be a {kind.__name__} > 0")
        return value

    return parse


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment", required=True)
    replicate = sub.add_parser("replicate", help="NTP vs UL2 vs Birdie at equal tokens: phone-book retrieval, "
                                                  "story infilling, per-objective losses",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    replicate.add_argument("--budget-minutes", type=_positive(float), default=None,
                           help="wall-clock budget of the whole run on this machine, turned into equal training "
                                "tokens per arm by a short calibration run (default: the scale's fixed token "
                                "budget, the same on any machine)")
    replicate.add_argument("--scale", choices=list(SCALES), default="cpu",
                           help="cpu: tiny Hawk, 2 cores; gpu, gpu-m, gpu-l: Hawk and Gated SSM on one GPU at "
                                "about 28M, 210M and 1.1B parameters (20 tokens per parameter)")
    replicate.add_argument("--seeds", type=_positive(int), default=2, help="seeds repeating every arm (default 2)")
    replicate.add_argument("--arms", type=_arms, default=ARMS,
                           help="comma-separated arms (default all): " + "; ".join(f"{a}: {h}" for a, h in
                                                                                 ARM_HELP.items()))
    replicate.add_argument("--data", nargs="+", metavar="FILE", default=None,
                           help="train on these text files (.txt/.jsonl/.json/.parquet) instead of the embedded "
                                "synthetic stories")
    replicate.add_argument("--out", default="runs/replicate", help="output directory (default runs/replicate)")
    replicate.add_argument("--threads", type=_positive(int), default=None,
                           help="torch CPU threads (default: torch's choice); on a machine shared with other jobs "
                                "1 thread avoids the thread contention that can make training many times slower")
    replicate.set_defaults(func=run)


def measure_throughput(plan_fields: dict[str, Any], out: Path) -> float:
    """Training tokens per second of a short Birdie-arm run on this machine (median over its later steps)."""
    from birdie.experiment import configs
    from birdie.experiment.plan import ExperimentPlan
    from birdie.train.metrics import read_metrics

    probe = ExperimentPlan(**{**plan_fields, "pretrain_steps": CALIBRATION_STEPS, "finetune_steps": 1})
    run_dir = out / "calibration"
    configs.train(configs.calibration_config(probe, probe.spec.models[0][0], CALIBRATION_STEPS, run_dir))
    speeds = [r["tokens_per_s"] for r in read_metrics(configs.metrics_path(run_dir)) if r["step"] > 2]
    return float(statistics.median(speeds))


def make_plan(args: argparse.Namespace, out: Path) -> Any:
    """The saved plan of a resumed run, or a new one (measuring the throughput when a budget decides tokens)."""
    from birdie.experiment import store
    from birdie.experiment.plan import ExperimentPlan, eval_sizes, steps_from_budget, steps_from_tokens

    scale = SCALES[args.scale]
    budget = args.budget_minutes
    data = tuple(str(Path(p).resolve()) for p in args.data) if args.data else None
    requested = {"scale": args.scale, "arms": args.arms, "seeds": args.seeds, "budget_minutes": budget, "data": data}
    saved = store.saved_plan(out, requested)
    if saved is not None:
        print(f"resuming {out} ({out / store.PLAN})")
        plan = ExperimentPlan(**saved)
        store.write_json(out / store.PLAN, plan.to_dict())
        return plan
    books, items = eval_sizes(scale, budget)
    fields = {**requested, "eval_books": books, "eval_infilling_items": items}
    if budget is None:
        pretrain, finetune = steps_from_tokens(scale)
        plan = ExperimentPlan(**fields, pretrain_steps=pretrain, finetune_steps=finetune)
    else:
        print(f"measuring throughput ({CALIBRATION_STEPS} steps) ...", flush=True)
        speed = measure_throughput(fields, out)
        runs = len(args.arms) * args.seeds * len(scale.models)
        pretrain, finetune = steps_from_budget(scale, budget, runs, speed)
        plan = ExperimentPlan(**fields, pretrain_steps=pretrain, finetune_steps=finetune, tokens_per_s=speed)
    store.write_json(out / store.PLAN, plan.to_dict())
    return plan


def command_line(args: argparse.Namespace) -> list[str]:
    """The options of ``args`` spelled out in full (what reproduces the run)."""
    words = ["--scale", args.scale, "--seeds", str(args.seeds), "--arms", ",".join(args.arms), "--out", args.out]
    if args.budget_minutes is not None:
        words += ["--budget-minutes", f"{args.budget_minutes:g}"]
    if args.data:
        words += ["--data", *args.data]
    return words


def run(args: argparse.Namespace) -> int:
    from birdie.experiment import store
    from birdie.experiment.plots import plot_all
    from birdie.experiment.report import run_context, write_report
    from birdie.experiment.runner import run_experiment
    from birdie.train.config import ConfigError

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    missing = [p for p in args.data or [] if not Path(p).is_file()]
    if missing:
        print(f"birdie experiment replicate: --data {missing[0]!r} is not a file; give existing text files",
              file=sys.stderr)
        return 2
    try:
        plan = make_plan(args, out)
    except (ValueError, ConfigError) as error:
        print(f"birdie experiment replicate: {error}", file=sys.stderr)
        return 2
    context_path = out / "context.json"
    context = run_context(plan, command_line(args))
    if context_path.is_file():  # a resume: the first start's time and machine, this invocation's command and plan
        first = store.read_json(context_path)
        context.update(started_at=first["started_at"], machine=first["machine"])
    store.write_json(context_path, context)
    print(f"birdie experiment replicate: scale {plan.scale}, arms {', '.join(plan.arms)}, {plan.seeds} seed(s); "
          f"{plan.pretrain_tokens:,} pretraining tokens ({plan.pretrain_steps} steps) + {plan.finetune_tokens:,} "
          f"fine-tuning tokens per arm; {', '.join(f'{k} {v:,} parameters' for k, v in context['model_parameters'].items())}",
          flush=True)

    def refresh(results: list[dict[str, Any]]) -> None:
        write_report(out, context, results)
        plot_all(results, out)

    run_experiment(plan, out, refresh, echo=lambda line: print(line, flush=True))
    print(f"results: {out / 'results.md'}, {out / 'results.json'}, {out / 'plots'}/")
    return 0
