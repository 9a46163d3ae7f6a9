"""Run a replication: every (model, arm, seed) one after another, each saved when done, the aggregate refreshed.

An arm is: its pretraining stage(s) with the trainer, the phone-book fine-tuning of its export, the evaluations
(:mod:`birdie.experiment.evaluate`), then ``result.json``. Arms already saved are skipped, so a killed run
continues where it stopped (:mod:`birdie.experiment.store`). Arms run sequentially in this process; running
them in parallel under torchrun is not supported (each arm's trainer would need its own process group).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from birdie.experiment import configs, evaluate, store
from birdie.experiment.plan import ExperimentPlan

#: loss-curve points kept per arm in result.json (the curve is thinned evenly beyond that)
CURVE_POINTS = 200


def _train_stage(run_dir: Path, build: Callable[[bool], Any]) -> dict[str, Any]:
    """Run (or resume, or skip when done) one trainer run in ``run_dir``; returns its done record."""
    marker = store.done_marker(run_dir)
    if marker.is_file():
        return store.read_json(marker)
    resumed = configs.has_checkpoint(run_dir)
    started = time.perf_counter()
    configs.train(build(resumed))
    record = {"wall_s": round(time.perf_counter() - started, 2), "resumed": resumed}
    store.write_json(marker, record)
    return record


def _thin(points: list[Any], limit: int) -> list[Any]:
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    return [points[int(i * stride)] for i in range(limit)] + [points[-1]]


def _mixture_over_time(decision_files: list[tuple[Path, int]], tokens_per_step: int,
                       total_tokens: int) -> list[dict[str, Any]]:
    """``[{"tokens", "class_mixture"}]`` from the Birdie stages' decision logs (``(path, first step)`` pairs); the
    last mixture is repeated at ``total_tokens`` so that it, too, spans the tokens it was in force for."""
    from birdie.curriculum.log import read_log

    points = []
    for path, offset in decision_files:
        if path.is_file():
            points += [{"tokens": (offset + r["step"]) * tokens_per_step, "class_mixture": r["class_mixture"]}
                       for r in read_log(path)]
    if points:
        points.append({"tokens": total_tokens, "class_mixture": points[-1]["class_mixture"]})
    return points


def run_arm(plan: ExperimentPlan, out: Path, model: str, arm: str, seed: int) -> dict[str, Any]:
    """Train, fine-tune and evaluate one arm; writes and returns its ``result.json`` record."""
    scale = plan.spec
    arm_path = store.arm_dir(out, model, arm, seed)
    tokens_per_step = scale.batch_size * scale.sequence_length
    stage_records, metrics_files, decision_files = [], [], []
    previous_export: Path | None = None
    offset = 0
    for index, (stage, steps) in enumerate(zip(configs.stages(arm), configs.stage_steps(plan, arm))):
        run_dir = store.stage_dir(arm_path, stage, index)
        pretrained = previous_export

        def build(resume: bool, stage: str = stage, steps: int = steps, run_dir: Path = run_dir,
                  pretrained: Path | None = pretrained) -> Any:
            return configs.pretrain_config(plan, model, stage, steps, seed, run_dir, pretrained, resume)

        record = _train_stage(run_dir, build)
        stage_records.append({"stage": stage, "steps": steps, **record})
        metrics_files.append(configs.metrics_path(run_dir))
        if stage == "birdie":
            decision_files.append((configs.decisions_path(run_dir), offset))
        offset += steps
        previous_export = configs.export_dir(run_dir)
    pretrained_export = previous_export
    finetune_dir = arm_path / "finetune"
    finetune = _train_stage(finetune_dir, lambda resume: configs.finetune_config(
        plan, model, seed, pretrained_export, finetune_dir, resume))
    started = time.perf_counter()
    phonebook = evaluate.evaluate_phonebook_model(plan, configs.export_dir(finetune_dir), seed)
    infilling = evaluate.evaluate_infilling_model(plan, pretrained_export, seed)
    result = {
        "model": model, "arm": arm, "seed": seed,
        "pretrain": {"steps": plan.pretrain_steps, "tokens": plan.pretrain_tokens,
                     "wall_s": round(sum(r["wall_s"] for r in stage_records), 2),
                     "resumed": any(r["resumed"] for r in stage_records), "stages": stage_records},
        "finetune": {"steps": plan.finetune_steps, "tokens": plan.finetune_tokens, **finetune,
                     "final_loss": evaluate.final_training_loss(configs.metrics_path(finetune_dir))},
        "phonebook": phonebook,
        "infilling": infilling,
        "val_loss": evaluate.final_validation_losses(metrics_files[-1]),
        "loss_curve": _thin(evaluate.loss_curve(metrics_files, tokens_per_step), CURVE_POINTS),
        "mixture": _mixture_over_time(decision_files, tokens_per_step, plan.pretrain_tokens),
        "eval_wall_s": round(time.perf_counter() - started, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    store.write_json(arm_path / store.RESULT, result)
    return result


def progress_line(index: int, total: int, result: dict[str, Any], saved: bool) -> str:
    """One line per arm: what it trained, how long it took, and its headline numbers."""
    phonebook, pretrain = result["phonebook"], result["pretrain"]
    wall = pretrain["wall_s"] + result["finetune"]["wall_s"] + result["eval_wall_s"]
    state = "saved earlier" if saved else f"{wall:.0f} s"
    return (f"[{index}/{total}] {result['model']} {result['arm']} seed {result['seed']}: "
            f"{pretrain['tokens']:,} pretraining tokens, {state}; phone-book digit acc "
            f"{phonebook['digit_accuracy']:.3f}, number EM {phonebook['number_exact_match']:.3f}; infilling "
            f"{result['infilling']['prefix']:.3f} (prefix) / {result['infilling']['causal']:.3f} (causal); "
            f"load {result['load_average'][0]:.1f}")


def run_experiment(plan: ExperimentPlan, out: Path, on_arm: Callable[[list[dict[str, Any]]], None],
                   echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every arm of ``plan`` not yet saved under ``out``; after each, ``on_arm(all results so far)``."""
    runs = plan.runs()
    results: list[dict[str, Any]] = []
    for index, (model, arm, seed) in enumerate(runs, 1):
        saved = store.saved_result(out, model, arm, seed)
        if saved is None:
            echo(f"[{index}/{len(runs)}] {model} {arm} seed {seed}: training ({plan.pretrain_steps} steps, then "
                 f"{plan.finetune_steps} fine-tuning steps)")
        result = saved if saved is not None else run_arm(plan, out, model, arm, seed)
        results.append(result)
        echo(progress_line(index, len(runs), result, saved is not None))
        on_arm(results)
    return results
