"""The fine-tuning loop shared by ``birdie sft``, ``birdie dpo`` and ``birdie rm``.

It reuses ``birdie train``'s machinery -- the runtime and mesh (:mod:`birdie.train.distributed`), AdamW and the
schedule (:mod:`birdie.train.optim`), DCP checkpoints (:mod:`birdie.train.checkpoint`), metrics and export -- and
leaves what differs to an :class:`Objective`: the data, the loss, its metrics, the held-out evaluation and the
export. Each optimizer step reads the global batch of :func:`birdie.finetune.batches.global_batch`; every data rank
takes its share, and the loss is ``sum over the rank's micro-batches / global normaliser`` (target tokens for SFT,
pairs for DPO and RM), all-reduced, so data-parallel runs compute the gradient of one process holding the whole
batch. The data order depends only on ``(seed, step)``, so a resumed run continues bit-exactly.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from torch import Tensor, nn

from birdie.finetune.batches import global_batch, rank_micro_batches, steps_per_epoch
from birdie.finetune.config import FinetuneConfig
from birdie.train import checkpoint as ckpt
from birdie.train.config import ConfigError
from birdie.train.distributed import Runtime, apply_parallelism, gradient_sync, joined_runtime
from birdie.train.metrics import MetricsLogger
from birdie.train.optim import build_optimizer, build_scheduler
from birdie.train.stateful import ModelState, OptimizerState, TrainingState
from birdie.train.step import autocast


class Objective(Protocol):
    """What a fine-tuning command adds to the loop."""

    num_examples: int

    def model(self) -> nn.Module:
        """The (unwrapped) model to train."""

    def count(self, indices: list[int]) -> int:
        """This micro-batch's share of the normaliser (target tokens or pairs)."""

    def loss_sum(self, model: nn.Module, indices: list[int]) -> tuple[Tensor, dict[str, Tensor]]:
        """The summed loss of the micro-batch ``indices`` and summed statistics (divided by the global
        normaliser when logged)."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Held-out metrics (every rank calls this: sharded models need all ranks in the forward)."""

    def export(self, directory: Path, model: nn.Module, is_main: bool) -> Path:
        """Write the trained model (every rank calls this)."""


@dataclass
class FinetuneSummary:
    """What a run did: steps, per-step losses, the metrics at the first and last evaluation, where files went."""

    out: Path
    step: int
    losses: list[float] = field(default_factory=list)
    eval_before: dict[str, float] = field(default_factory=dict)
    eval_after: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    export: Path | None = None


def total_steps(config: FinetuneConfig, num_examples: int) -> int:
    """``train.steps``, or ``train.num_epochs`` full passes (drop-last) when set."""
    if config.train.num_epochs:
        return config.train.num_epochs * max(steps_per_epoch(num_examples, config.train.batch_size), 1)
    return config.train.steps


def step_on(model: nn.Module, optimizer: torch.optim.Optimizer, objective: Objective, micro: list[list[int]],
            runtime: Runtime, grad_clip: float, bf16: bool) -> tuple[float, float, dict[str, float]]:
    """One optimizer step over this rank's micro-batches: ``(mean loss, grad norm before clipping, metrics)``,
    each a global mean over the normaliser."""
    local = torch.tensor(float(sum(objective.count(mb) for mb in micro)), dtype=torch.float64, device=runtime.device)
    normaliser = runtime.sum(local).clamp(min=1)
    scale = runtime.data_world / normaliser.item()  # DDP/FSDP average gradients over the data ranks
    sums: dict[str, Tensor] = {}
    for index, indices in enumerate(micro):
        with gradient_sync(model, index == len(micro) - 1):
            with autocast(runtime.device, bf16):
                loss_sum, stats = objective.loss_sum(model, indices)
            (loss_sum * scale).backward()
        for key, value in {"loss": loss_sum, **stats}.items():
            sums[key] = sums.get(key, 0) + value.detach().double()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    means = {key: float(runtime.sum(value) / normaliser) for key, value in sums.items()}
    means |= {alias: means[key] for key, alias in getattr(objective, "aliases", {}).items()}
    return means.pop("loss"), float(norm), means


class FinetuneTrainer:
    """One run: build with a config, a runtime and its objective; call :meth:`fit`, then :meth:`close`."""

    def __init__(self, config: FinetuneConfig, runtime: Runtime, objective: Objective) -> None:
        self.config, self.runtime, self.objective = config, runtime, objective
        self.out = Path(config.train.out)
        train = config.train
        if train.batch_size % (runtime.data_world * train.grad_accum):
            raise ConfigError(f"train.batch_size={train.batch_size} must be divisible by data ranks "
                              f"({runtime.data_world}) x train.grad_accum ({train.grad_accum})")
        self.steps = total_steps(config, objective.num_examples)
        schedule = config.schedule
        if schedule.warmup_ratio > 0:
            schedule = dataclasses.replace(schedule, warmup_steps=math.ceil(schedule.warmup_ratio * self.steps))
        self.bf16 = train.precision == "bf16" or (train.precision == "auto" and runtime.device.type == "cuda"
                                                  and torch.cuda.is_bf16_supported())
        self.model = apply_parallelism(objective.model().to(runtime.device), runtime)
        self.optimizer = build_optimizer(self.model, config.optimizer)
        self.scheduler = build_scheduler(self.optimizer, self.steps, schedule)
        if runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        runtime.barrier()
        self.step = 0
        resume_step = self._resume() if config.checkpoint.resume else None
        self.metrics = MetricsLogger(self.out, config.logging, config.to_dict(), runtime.is_main, resume_step)

    def state_dict(self) -> dict[str, Any]:
        """The loop's progress (a shared checkpoint owner): the step; the data position follows from it."""
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])

    def _states(self) -> TrainingState:
        return TrainingState(
            sharded={"model": ModelState(self.model), "optim": OptimizerState(self.model, self.optimizer)},
            shared={"progress": self, "schedule": self.scheduler})

    def _resume(self) -> int:
        path = ckpt.resolve_checkpoint(self.config.checkpoint.resume, self.out)
        # DCP's .metadata is a pickle: a checkpoint of this run directory is the run's own, any other needs trust
        own = path.resolve().is_relative_to((self.out / "checkpoints").resolve())
        ckpt.load_checkpoint(path, self._states(), self.runtime, trusted=own or self.config.checkpoint.trust_checkpoint)
        if self.runtime.is_main:
            print(f"resumed from {path} at step {self.step}")
        return self.step

    def save(self) -> Path:
        """Checkpoint the model, optimizer, schedule and step."""
        return ckpt.save_checkpoint(self.out / "checkpoints", self.step, self._states(), self.runtime,
                                    self.config.checkpoint.milestone_every)

    def fit(self) -> FinetuneSummary:
        cfg, runtime = self.config, self.runtime
        summary = FinetuneSummary(self.out, self.step)
        summary.eval_before = self.objective.evaluate(self.model)
        if summary.eval_before:
            self.metrics.log({"step": self.step, **{f"eval/{k}": v for k, v in summary.eval_before.items()}})
        progress = None
        if cfg.logging.progress and runtime.is_main:
            from tqdm.auto import tqdm

            progress = tqdm(total=self.steps, initial=self.step, desc=cfg.command, unit="step", dynamic_ncols=True)
        per_epoch = max(steps_per_epoch(self.objective.num_examples, cfg.train.batch_size), 1)
        self.model.train()
        while self.step < self.steps:
            started = time.perf_counter()
            indices = global_batch(self.objective.num_examples, cfg.train.batch_size, self.step, cfg.train.seed)
            micro = rank_micro_batches(indices, runtime.data_world, runtime.data_rank, cfg.train.grad_accum)
            loss, grad_norm, means = step_on(self.model, self.optimizer, self.objective, micro, runtime,
                                             cfg.optimizer.grad_clip, self.bf16)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the {cfg.command} loss is {loss} at step {self.step + 1}; resume from the "
                                         "last checkpoint with a lower optimizer.lr or more warm-up")
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            self.step += 1
            summary.losses.append(loss)
            if self.step % cfg.logging.log_every == 0 or self.step == self.steps:
                self.metrics.log({"step": self.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                                  "epoch": self.step / per_epoch, "samples_seen": self.step * cfg.train.batch_size,
                                  "step_time": time.perf_counter() - started, **means})
            if progress is not None:
                progress.set_postfix(loss=f"{loss:.3f}", refresh=False)
                progress.update(1)
            every = cfg.checkpoint.save_every
            if every and self.step % every == 0 and self.step < self.steps:
                summary.checkpoint = self.save()
        if progress is not None:
            progress.close()
        summary.step = self.step
        summary.eval_after = self.objective.evaluate(self.model)
        if summary.eval_after:
            self.metrics.log({"step": self.step, **{f"eval/{k}": v for k, v in summary.eval_after.items()}})
        summary.checkpoint = self.save()
        if cfg.checkpoint.export:
            summary.export = self.objective.export(self.out / "export", self.model, runtime.is_main)
        if cfg.logging.plots and runtime.is_main:
            from birdie.finetune.plots import plot_finetune

            plot_finetune(self.out)
        return summary

    def close(self) -> None:
        self.metrics.close()


def finetune(config: FinetuneConfig) -> FinetuneSummary:
    """Run ``config`` (``config.command`` is sft, dpo or rm) to completion, under torchrun or in one process."""
    from birdie.finetune.objectives import build_objective

    with joined_runtime(config.distributed, config.train.device) as runtime:
        torch.manual_seed(config.train.seed)  # identical fresh heads on every rank
        trainer = FinetuneTrainer(config, runtime, build_objective(config, runtime))
        try:
            return trainer.fit()
        finally:
            trainer.close()
