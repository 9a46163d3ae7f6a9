"""The training configs of a replication: the one module that knows :class:`birdie.train.config.TrainConfig`.

Every config is built from nested ``{section: {field: value}}`` through :func:`birdie.train.config_io.build_config`,
so it is validated exactly as ``birdie train --config`` would validate it. Arms differ only in who weights the
scale's objective mixture:

* ``ntp``: fixed ratios, all weight on ``next_token_prediction``;
* ``ul2``: fixed ratios, 0.8 on the span-corruption class (``infilling``: R and X denoisers) and 0.2 on
  ``prefix_language_modeling`` (UL2's S denoiser), the paper's UL2 weights;
* ``birdie``: the reward-driven agent;
* ``second_stage``: stage 1 as ``ntp`` for half the steps (exported), stage 2 as ``birdie`` from that export for
  the other half: a finished NTP model continued with the curriculum, at the same total tokens.

All arms measure the validation loss of every configuration of the mixture at the same steps, so their
per-objective losses compare directly and their wall times include the same evaluation overhead.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path
from typing import Any

from birdie.experiment.plan import ExperimentPlan, Scale

#: curriculum.agent and curriculum.ratios per single-stage arm
ARM_WEIGHTING: dict[str, tuple[str, dict[str, float]]] = {
    "ntp": ("fixed", {"next_token_prediction": 1.0}),
    "ul2": ("fixed", {"infilling": 0.8, "prefix_language_modeling": 0.2}),
    "birdie": ("birdie", {}),
}


def stages(arm: str) -> list[str]:
    """The pretraining stages of ``arm``, each a single-stage arm name run in order."""
    return ["ntp", "birdie"] if arm == "second_stage" else [arm]


def stage_steps(plan: ExperimentPlan, arm: str) -> list[int]:
    """Steps of each of ``arm``'s stages; they add up to ``plan.pretrain_steps`` (equal tokens per arm)."""
    if arm == "second_stage":
        first = plan.pretrain_steps // 2
        return [first, plan.pretrain_steps - first]
    return [plan.pretrain_steps]


def _data_section(plan: ExperimentPlan) -> dict[str, Any]:
    if plan.data:
        return {"source": "files", "paths": list(plan.data), "tokenizer": "bytes"}
    return {"source": "synthetic", "tokenizer": "bytes"}


def _common(scale: Scale, model: str, out: Path, seed: int, steps: int) -> dict[str, dict[str, Any]]:
    return {
        "model": {"preset": scale.preset(model), "overrides": scale.model_overrides(model)},
        # overwrite: a stage restarted without a checkpoint replaces its own partial run directory
        "train": {"steps": steps, "seed": seed, "out": str(out), "overwrite": True},
        # A checkpoint each quarter: a killed run loses at most a quarter of a stage.
        "checkpoint": {"save_every": max(1, steps // 4), "export": True},
        "logging": {"log_every": max(1, steps // 100), "progress": False, "plots": True},
    }


def pretrain_config(plan: ExperimentPlan, model: str, stage: str, steps: int, seed: int, out: Path,
                    pretrained: Path | None = None, resume: bool = False) -> Any:
    """The ``TrainConfig`` of one pretraining stage (``stage`` in :data:`ARM_WEIGHTING`), written to ``out``.

    ``pretrained``: the export a second stage continues from. ``resume``: continue from ``out``'s latest checkpoint.
    """
    from birdie.train.config_io import build_config

    scale = plan.spec
    agent, ratios = ARM_WEIGHTING[stage]
    every = max(1, steps // scale.evaluations)
    values = _common(scale, model, out, seed, steps)
    values["train"].update(sequence_length=scale.sequence_length, batch_size=scale.batch_size,
                           grad_accum=scale.grad_accum)
    values["data"] = _data_section(plan)
    values["curriculum"] = {
        "mixture": scale.mixture, "agent": agent, "ratios": ratios,
        # 8 validation rows per configuration: the GPU mixture has 104 configurations, and full batches at every
        # evaluation would cost as much compute as the training itself.
        "num_validation_batches": 1, "validation_batch_size": min(scale.batch_size, 8),
        "schedule": {"warmup_steps": every, "steps_between_evaluations": every},
    }
    values["optimizer"] = {"lr": scale.lr, "weight_decay": 0.1, "grad_clip": 1.0}
    values["schedule"] = {"warmup_steps": min(50, max(1, steps // 10)), "decay": "cosine", "final_lr_ratio": 0.1}
    if pretrained is not None:
        values["model"]["pretrained"] = str(pretrained)
    if resume:
        values["checkpoint"]["resume"] = "latest"
        values["train"]["overwrite"] = False
    return build_config(values)


def finetune_config(plan: ExperimentPlan, model: str, seed: int, pretrained: Path, out: Path,
                    resume: bool = False) -> Any:
    """The phone-book fine-tuning of ``configs/phonebook_finetune.yaml`` (paper A.9), sized by the scale:
    supervised prompt/answer pairs (prompt = bidirectional prefix, loss on the answer), fixed LR after a short
    warm-up, no weight decay."""
    from birdie.train.config_io import build_config

    scale = plan.spec
    steps = plan.finetune_steps
    values = _common(scale, model, out, seed, steps)
    values["model"]["pretrained"] = str(pretrained)
    values["train"].update(sequence_length=scale.finetune_sequence_length, batch_size=scale.finetune_batch_size,
                           grad_accum=scale.finetune_grad_accum)
    values["data"] = {"source": "callable", "callable": scale.books, "prompt_key": "prefix",
                      "completion_key": "target", "tokenizer": "bytes"}
    # One validation measurement (at step 0) is all the supervised mixture needs: there is nothing to re-weight.
    values["curriculum"] = {"mixture": "supervised", "agent": "fixed",
                            "schedule": {"steps_between_evaluations": steps}}
    values["optimizer"] = {"lr": scale.finetune_lr, "weight_decay": 0.0, "grad_clip": 1.0}
    values["schedule"] = {"warmup_steps": min(20, max(1, steps // 10)), "decay": "constant"}
    values["logging"]["plots"] = False
    if resume:
        values["checkpoint"]["resume"] = "latest"
        values["train"]["overwrite"] = False
    return build_config(values)


def calibration_config(plan: ExperimentPlan, model: str, steps: int, out: Path) -> Any:
    """A short Birdie-arm pretraining run (no checkpoint, export or plots) whose step times measure throughput."""
    config = pretrain_config(plan, model, "birdie", steps, 0, out)
    config.curriculum.schedule = dataclasses.replace(config.curriculum.schedule, warmup_steps=steps,
                                                     steps_between_evaluations=steps)
    config.checkpoint.save_every = 0
    config.checkpoint.export = False
    config.logging.plots = False
    config.logging.log_every = 1
    return config


def has_checkpoint(out: Path) -> bool:
    """True when ``out`` holds a complete checkpoint a run can resume from."""
    from birdie.train.checkpoint import resolve_checkpoint

    try:
        resolve_checkpoint("latest", out)
    except FileNotFoundError:
        return False
    return True


def export_dir(out: Path) -> Path:
    """Where a finished run in ``out`` exported its model."""
    return out / "export"


def metrics_path(out: Path) -> Path:
    return out / "metrics.jsonl"


def decisions_path(out: Path) -> Path:
    return out / "decisions.jsonl"


def train(config: Any) -> Any:
    """Run ``config`` with the trainer; returns its ``RunSummary``."""
    from birdie.train.trainer import train as run

    return run(config)
