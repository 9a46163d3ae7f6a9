"""The training loop: model, optimizer, curriculum, evaluation, logging, checkpoints, export.

:func:`train` runs a whole :class:`~birdie.train.config.TrainConfig` (in one process, or on every rank under
torchrun) and returns a :class:`RunSummary`. Each optimizer step takes ``train.grad_accum`` micro-batches of
``batch_size / (data ranks * grad_accum)`` rows from this rank's curriculum; before a step the curriculum says
whether to evaluate, and then every objective configuration's validation loss is measured and logged to the agent,
which may change the mixture.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from birdie.train import checkpoint as ckpt
from birdie.train.config import ConfigError, TrainConfig
from birdie.train.config_io import save_config
from birdie.train.curriculum_setup import build_curriculum
from birdie.train.distributed import Runtime, apply_parallelism, joined_runtime
from birdie.train.export import export_model, load_weights, model_files, read_weights
from birdie.train.memory import check_step_memory
from birdie.train.metrics import MetricsLogger
from birdie.train.optim import build_optimizer, build_scheduler
from birdie.train.rundir import LogPositions, prepare_run_dir
from birdie.train.stateful import ModelState, OptimizerState, RngState, TrainingState
from birdie.train.step import train_step, validation_loss
from birdie.tokenizers import load_tokenizer


@dataclass
class RunSummary:
    """What a run did: the last step, the loss per step it trained, and where things went."""

    out: Path
    step: int
    losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    export: Path | None = None


def train(config: TrainConfig) -> RunSummary:
    """Run ``config`` to completion (joining the process group under torchrun)."""
    with joined_runtime(config.distributed, config.train.device) as runtime:
        trainer = Trainer(config, runtime)
        try:
            return trainer.fit()
        finally:
            trainer.close()


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


class Trainer:
    """One run's state. Build it, call :meth:`fit`, then :meth:`close`."""

    def __init__(self, config: TrainConfig, runtime: Runtime) -> None:
        self.config, self.runtime = config, runtime
        self.out = Path(config.train.out)
        # every rank checks, rank 0 alone deletes (--overwrite) and clears what a killed save left
        prepare_run_dir(self.out, bool(config.checkpoint.resume), config.train.overwrite, delete=runtime.is_main)
        if runtime.is_main:
            ckpt.remove_partial_saves(self.out / "checkpoints")
        self.micro_batch = self._micro_batch_size()
        self.bf16 = use_bf16(config.train.precision, runtime.device)
        torch.manual_seed(config.train.seed)  # identical initial weights on every rank
        self.tokenizer = load_tokenizer(config.data.tokenizer)
        model = self._build_model()
        self.model_config = model.config.to_dict()
        if config.train.check_memory:
            check_step_memory(self.model_config, sum(p.numel() for p in model.parameters()), self.micro_batch,
                              config.train.sequence_length, self.bf16, runtime.device, runtime.fsdp, runtime.tp)
        self.model = apply_parallelism(model.to(runtime.device), runtime)
        if config.model.compile:
            self.model.compile()
        self.optimizer = build_optimizer(self.model, config.optimizer)
        self.scheduler = build_scheduler(self.optimizer, config.train.steps, config.schedule)
        if runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(config, self.out / "config.yaml")
        runtime.barrier()
        self.curriculum = build_curriculum(config, self.tokenizer, runtime, self.micro_batch,
                                           str(self.out / "decisions.jsonl"))
        self.training_record = self._training_record()
        self.step = 0
        self.val_losses: dict[str, float] | None = None
        try:
            if config.checkpoint.resume:
                self._resume()
            self.metrics = MetricsLogger(self.out, config.logging, config.to_dict(), runtime.is_main,
                                         resume=bool(config.checkpoint.resume))
        except BaseException:
            self.curriculum.close()  # its pipeline workers and decision log must not outlive a failed start
            raise

    def _micro_batch_size(self) -> int:
        train, world = self.config.train, self.runtime.data_world
        if train.batch_size % (world * train.grad_accum):
            raise ConfigError(f"train.batch_size={train.batch_size} must be divisible by data ranks ({world}) x "
                              f"train.grad_accum ({train.grad_accum})")
        return train.batch_size // (world * train.grad_accum)

    def _build_model(self) -> torch.nn.Module:
        from birdie.models import create

        overrides = {"vocab_size": self.tokenizer.vocab_size, **self.config.model.overrides}
        try:
            model = create(self.config.model.preset, **overrides)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model.preset={self.config.model.preset!r} / model.overrides: {error}") from None
        if self.config.model.pretrained:
            try:
                weights = read_weights(self.config.model.pretrained, self.config.checkpoint.trust_checkpoint)
                report = load_weights(model, weights, self.config.model.strict)
            except ValueError as error:
                raise ConfigError(f"model.pretrained={self.config.model.pretrained!r}: {error}; pass "
                                  "--load-not-strict (model.strict: false) to load the matching keys only") from None
            if self.runtime.is_main:
                print(f"loaded {self.config.model.pretrained}: " + ", ".join(
                    f"{kind} {len(keys)} key(s)" + (f" ({', '.join(keys)})" if keys else "")
                    for kind, keys in report.items()))
        return model

    # -- resume and checkpoints ------------------------------------------------------------------------------

    def _training_record(self) -> dict[str, Any]:
        """How this run trains (the export's ``training.json``): the mixture it starts from, the agent, the length."""
        objectives = [{"name": o.name, "key": o.key, "objective_class": o.objective_class, "prob": float(p)}
                      for o, p in zip(self.curriculum.pipeline.objectives, self.curriculum.agent.action)]
        return {"sequence_length": self.config.train.sequence_length, "objectives": objectives,
                "agent": self.config.curriculum.agent,
                "prefix_lm": any(o["objective_class"] != "next_token_prediction" for o in objectives),
                "source": "birdie train"}

    def state_dict(self) -> dict[str, Any]:
        """The loop's own progress (a checkpoint owner): the step and the last validation losses."""
        return {"step": self.step, "val_losses": self.val_losses}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.val_losses = int(state["step"]), state["val_losses"]

    def _states(self, own_logs: bool = True) -> TrainingState:
        """The owners of this run's state, by where a checkpoint keeps them; ``own_logs`` False leaves the logs
        out (a checkpoint of another run directory says nothing about this directory's logs)."""
        logs = {"logs": LogPositions(self.out, self.runtime.is_main)} if own_logs else {}
        return TrainingState(
            sharded={"model": ModelState(self.model), "optim": OptimizerState(self.model, self.optimizer)},
            shared={"progress": self, "schedule": self.scheduler, "agent": self.curriculum.agent_state, **logs},
            per_rank={"data": self.curriculum.data_state, "rng": RngState()},
        )

    def _resume(self) -> None:
        path = ckpt.resolve_checkpoint(self.config.checkpoint.resume, self.out)
        # DCP's .metadata is a pickle: a checkpoint of this run directory is the run's own, any other needs trust
        own = path.resolve().is_relative_to((self.out / "checkpoints").resolve())
        restored = ckpt.load_checkpoint(path, self._states(own_logs=own), self.runtime,
                                        trusted=own or self.config.checkpoint.trust_checkpoint)
        if not self.runtime.is_main:
            return
        if restored.per_rank:
            print(f"resumed from {path} at step {self.step}")
        else:
            print(f"resumed from {path} at step {self.step}: it was written by {restored.world_size} process(es) "
                  f"and this run has {self.runtime.world_size}, so weights, optimizer, schedule and the curriculum "
                  "agent continue while the data stream restarts from its beginning")

    def save(self) -> Path:
        return ckpt.save_checkpoint(self.out / "checkpoints", self.step, self._states(), self.runtime,
                                    self.config.checkpoint.milestone_every,
                                    files=model_files(self.model_config, self.tokenizer, self.training_record))

    # -- the loop --------------------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Measure and log every configuration's validation loss at the current step; returns the means."""
        self.model.eval()
        per_key: dict[str, list[float]] = {}
        for key, batch in self.curriculum.measure_validation_losses():
            loss = validation_loss(self.model, batch, self.bf16, self.runtime.device)
            self.curriculum.log_validation_loss(key=key, loss=loss, step_idx=self.step)
            per_key.setdefault(key, []).append(loss)
        self.model.train()
        return {key: sum(v) / len(v) for key, v in per_key.items()}

    def fit(self) -> RunSummary:
        cfg = self.config
        summary = RunSummary(self.out, self.step)
        progress = _progress_bar(cfg, self.runtime, self.step)
        tokens_per_step = cfg.train.batch_size * cfg.train.sequence_length
        reported = len(self.curriculum.records)
        self.model.train()
        while self.step < cfg.train.steps:
            evaluated = self.curriculum.time_for_eval(self.step)
            if evaluated:
                self.val_losses = self.evaluate()
            started = time.perf_counter()
            micro_batches = [self.curriculum.get_next_training_sample() for _ in range(cfg.train.grad_accum)]
            reported = self._report_decisions(progress, reported)
            result = train_step(self.model, self.optimizer, micro_batches, self.runtime, z_loss=cfg.optimizer.z_loss,
                                grad_clip=cfg.optimizer.grad_clip, bf16=self.bf16)
            if not math.isfinite(result.loss):
                raise FloatingPointError(
                    f"the training loss is {result.loss} at step {self.step + 1}; the last checkpoint is intact. "
                    "Resume from it with a lower optimizer.lr, gradient clipping (optimizer.grad_clip) or more "
                    "schedule.warmup_steps")
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            self.step += 1
            tokens_per_s = tokens_per_step / max(time.perf_counter() - started, 1e-9)
            summary.losses.append(result.loss)
            if self.step % cfg.logging.log_every == 0 or evaluated or self.step == cfg.train.steps:
                self.metrics.log({"step": self.step, "loss": result.loss, "lr": lr, "grad_norm": result.grad_norm,
                                  "tokens_per_s": tokens_per_s, "target_tokens": result.target_tokens,
                                  "mixture": self.curriculum.get_current_action(),
                                  "decision_wait_s": self.curriculum.decision_wait_s,
                                  **({"val_loss": self.val_losses} if evaluated else {})})
            if progress is not None:
                progress.set_postfix(loss=f"{result.loss:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
                progress.update(1)
            every = cfg.checkpoint.save_every
            if every and self.step % every == 0 and self.step < cfg.train.steps:
                summary.checkpoint = self.save()
        if progress is not None:
            progress.close()
        summary.step = self.step
        summary.checkpoint = self.save()
        if cfg.checkpoint.export:
            summary.export = export_model(self.out / "export", self.model, self.model_config, self.tokenizer,
                                          self.runtime.is_main, training_record=self.training_record)
        if cfg.logging.plots and self.runtime.is_main:
            from birdie.train.plots import plot_run

            plot_run(self.out)
        return summary

    def _report_decisions(self, progress: Any, reported: int) -> int:
        """Print the mixture of every evaluation the curriculum recorded after the first ``reported`` (a decision
        is recorded when it takes effect, some batches after its evaluation); returns the new count."""
        records = self.curriculum.records
        for record in records[reported:]:
            line = _mixture_line(record["step"], record["class_mixture"])
            if progress is not None:
                progress.write(line)
            elif self.runtime.is_main:
                print(line, flush=True)
        return len(records)

    def close(self) -> None:
        self.curriculum.close()
        self.metrics.close()


def _progress_bar(config: TrainConfig, runtime: Runtime, start: int) -> Any:
    if not (config.logging.progress and runtime.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.train.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _mixture_line(step: int, class_mixture: dict[str, float]) -> str:
    shares = "  ".join(f"{name} {share:.2f}" for name, share in sorted(class_mixture.items(), key=lambda kv: -kv[1]))
    return f"step {step:>5} mixture: {shares}"

