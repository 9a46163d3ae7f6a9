"""``Birdie``: the seeds' API -- a packed batch stream under a mixture that a reward-driven agent keeps choosing.

::

    birdie = Birdie({"tokenizer": tokenizer, "ds": data_generator, "batch_size": 8, "sequence_length": 2048,
                     "num_steps": 4096, "objectives": "birdie"})
    # or, typed: Birdie(BirdieConfig(tokenizer, ds=data_generator, ..., curriculum=CurriculumConfig(...)))
    for step_idx in range(4096):
        if birdie.time_for_eval(step_idx):
            model.eval()
            for objective_name, batch in birdie.measure_validation_losses():
                loss = model(**batch)
                birdie.log_validation_loss(key=objective_name, loss=loss, step_idx=step_idx)
            model.train()
        batch = birdie.get_next_training_sample()
        ...
    birdie.close()

Batches hold the seeds' four keys (``input_ids``, ``label_ids``, ``segment_ids``, ``attention_mask``), so a model
written for the seeds runs ``model(**batch)``; ``batch_keys`` adds ``position_ids``.

The agent updates by itself as soon as every validation loss of an evaluation has been logged: it computes the
rewards, chooses the next mixture (from the warm-up on), commands it to the pipeline and writes a decision record
(``log_path``, see :mod:`birdie.curriculum.log`).

Overlapping decisions with training. A decision (200 reward-model steps and the candidate scoring) takes about a
second of CPU. Its mixture takes effect ``decision_delay_batches`` batches later than it could at once, and when
training runs on an accelerator the decision is computed on a background thread meanwhile
(``background_decisions``), so training does not wait for it. The delay is a fixed number of batches, so the batch
stream, the decisions and a resumed run never depend on where or how fast a decision was computed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from birdie.checks import ConfigError
from birdie.curriculum import class_ids_of, make_agent
from birdie.curriculum.agent import decision_executor
from birdie.curriculum.birdie_config import SEED_BATCH_KEYS, BirdieConfig
from birdie.curriculum.config import CurriculumConfig, resolve_curriculum_mixture
from birdie.curriculum.log import DecisionLog, decision_record

#: The default decision delay in batches: ~1 s of decision at >= 35 ms per batch (capped at a quarter of the gap).
DEFAULT_DECISION_DELAY = 32


class Birdie:
    """Training batches under a mixture that the configured agent chooses from validation losses.

    Args:
        config: a seeds-style dict (:meth:`BirdieConfig.from_mapping`) or a :class:`BirdieConfig`, whose
            ``curriculum`` is the :class:`~birdie.curriculum.config.CurriculumConfig` that the training config's
            ``curriculum`` section holds.

    The seeds' older method names are kept as thin aliases: :meth:`get_validation_samples`, :meth:`update`,
    :meth:`get_validation_losses`, and :meth:`time_for_eval` without a step.
    """

    def __init__(self, config: Mapping[str, Any] | BirdieConfig) -> None:
        from birdie.data.pipeline import Pipeline
        from birdie.tokenizers import as_tokenizer

        self.config = cfg = BirdieConfig.from_mapping(config)
        curriculum = cfg.curriculum
        configs = resolve_curriculum_mixture(curriculum.mixture, curriculum.agent)
        rank, world_size = _rank_and_world_size(cfg.accelerator)
        self.agent = make_agent(curriculum.agent, configs, cfg.num_steps, schedule=curriculum.schedule,
                                birdie_agent=curriculum.birdie_agent, reward_model=curriculum.reward_model,
                                reward_fn=cfg.reward_fn, ratios=curriculum.ratios or None, seed=cfg.seed)
        #: The resolved objective configurations (``ObjectiveConfig``; ``prob`` = the starting mixture), in key order.
        self.objectives = configs
        self.keys = [c.key for c in configs]
        self.class_ids, self.class_names = class_ids_of(configs)
        self.device = torch.device(cfg.accelerator.device if cfg.accelerator is not None else cfg.device or "cpu")
        self.decision_delay = _decision_delay(curriculum.decision_delay_batches, self.agent)
        background = curriculum.background_decisions
        if background is None:
            background = self.device.type != "cpu" or cfg.move_to_gpu_fn is not None
        self._executor = (decision_executor() if background and self.decision_delay > 0 and self.agent.learns
                          else None)
        tokenizer = as_tokenizer(cfg.tokenizer)
        separator = (None if cfg.start_generating_paradigm is None
                     else _separator_ids(tokenizer, cfg.start_generating_paradigm))
        self.pipeline = Pipeline(
            tokenizer, configs, cfg.ds, validation_source=cfg.ds_validation,
            text_grabber_fn=cfg.text_grabber_fn, batch_size=cfg.batch_size, sequence_length=cfg.sequence_length,
            num_workers=cfg.num_workers, seed=cfg.seed, rank=rank, world_size=world_size,
            num_validation_batches=curriculum.num_validation_batches,
            validation_batch_size=curriculum.validation_batch_size,
            **({"start_generating_ids": separator} if separator is not None else {}), **cfg.pipeline_options,
        )
        self.pipeline.set_mixture(self.agent.action)
        #: The batch from which the agent's pending decision takes effect (None when nothing is pending).
        self._decision_batch: int | None = None
        #: Seconds ``get_next_training_sample`` has spent finishing delayed decisions: waiting for a decision still
        #: computing, and the broadcast. If it grows by more than a step's time per decision, raise
        #: ``decision_delay_batches``.
        self.decision_wait_s = 0.0
        self.records: list[dict[str, Any]] = []
        self._log = DecisionLog(cfg.log_path) if cfg.log_path and rank == 0 else None
        self._pending: dict[str, list[float]] = defaultdict(list)
        self._pending_step: int | None = None
        self._last_eval_step: int | None = None
        self._last_losses: dict[str, float] | None = None
        self._batches_taken = 0

    # -- evaluation ----------------------------------------------------------------------------------------

    def time_for_eval(self, step: int | None = None) -> bool:
        """True when the schedule measures validation losses before training step ``step`` (once per step).

        Without ``step`` (the seeds' older form) the step is the number of training batches taken so far, which
        is the training step of a loop that takes one batch per step.
        """
        if step is None:
            step = self._batches_taken
        return self.agent.schedule.is_eval_step(step) and step != self._last_eval_step

    def measure_validation_losses(self) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
        """Yield ``(objective_key, batch)`` for every held-out batch of every configuration, on the device.

        Log each batch's loss with :meth:`log_validation_loss`; after the last one the agent updates.
        """
        self._check_no_pending("measure_validation_losses")
        for key, batches in self.pipeline.validation_batches().items():
            for batch in batches:
                yield key, self._to_device(batch)

    def log_validation_loss(self, key: str, loss: float | torch.Tensor, step_idx: int) -> None:
        """Record the validation loss of one batch of configuration ``key`` measured at step ``step_idx``.

        ``loss`` is a float or a one-element tensor (any device). Once every batch of every configuration has a
        loss, the agent observes their per-configuration means and the next mixture is commanded.
        """
        if key not in self.keys:
            raise KeyError(f"unknown objective key {key!r}; keys come from measure_validation_losses()")
        if self._pending_step is not None and step_idx != self._pending_step:
            raise ValueError(f"log_validation_loss: step_idx {step_idx} differs from {self._pending_step} used earlier "
                             "in this evaluation; log every loss of one evaluation with the same step")
        expected = self.config.curriculum.num_validation_batches
        if len(self._pending[key]) >= expected:
            raise ValueError(f"log_validation_loss: {key!r} already has {expected} losses at step {step_idx} "
                             f"(num_validation_batches={expected})")
        self._pending[key].append(_as_float(loss))
        self._pending_step = step_idx
        if all(len(self._pending[k]) == expected for k in self.keys):
            self._update(step_idx)

    def _update(self, step: int) -> None:
        losses = np.array([np.mean(self._pending[key]) for key in self.keys])
        self._last_losses = dict(zip(self.keys, losses.tolist()))
        self._pending.clear()
        self._pending_step = None
        self._last_eval_step = step
        if self.agent.pending is not None:
            self._finish_decision()  # the observation below needs it (it normally finished many batches ago)
        if self._executor is not None:
            self.pipeline.start_workers()  # forked workers must not copy the decision thread's state
        pending = self.agent.begin_observation(step, losses, self._executor)
        if pending.decides and self.decision_delay > 0:
            self._decision_batch = self.pipeline.first_uncommitted + self.decision_delay
        else:
            self._finish_decision()

    def _finish_decision(self) -> None:
        """Finish the agent's pending decision (on every rank), command its mixture from the batch fixed when the
        evaluation ended, and record it."""
        decision = self.agent.pending.finish()
        applies_from = self.pipeline.set_mixture(decision.action, self._decision_batch) if decision.decided else None
        self._decision_batch = None
        record = decision_record(decision, self.config.curriculum.agent, self.keys, self.class_ids, self.class_names,
                                 applies_from)
        self.records.append(record)
        if self._log is not None:
            self._log.write(record)

    def _check_no_pending(self, caller: str) -> None:
        if self._pending:
            missing = {k: self.config.curriculum.num_validation_batches - len(self._pending[k]) for k in self.keys
                       if len(self._pending[k]) < self.config.curriculum.num_validation_batches}
            raise RuntimeError(f"{caller}: the evaluation at step {self._pending_step} is incomplete, losses still "
                               f"missing for {len(missing)} configuration(s) (e.g. {next(iter(missing))!r}); call "
                               "log_validation_loss for every (key, batch) that measure_validation_losses() yields")

    # -- the seeds' older names -----------------------------------------------------------------------------

    def get_validation_samples(self) -> list[tuple[str, dict[str, torch.Tensor]]]:
        """The seeds' name for the held-out batches: ``list(measure_validation_losses())``."""
        return list(self.measure_validation_losses())

    def update(self, step_idx: int | None = None) -> bool:
        """The seeds' explicit agent update (``update`` / ``_maybe_update_reward_model``). Birdie updates by
        itself once the last validation loss of an evaluation is logged, so this only reports whether the
        evaluation at ``step_idx`` (default: the latest) is complete and observed; it never decides twice."""
        if self._pending:
            return False
        return self._last_eval_step is not None and step_idx in (None, self._last_eval_step)

    def get_validation_losses(self) -> dict[str, float] | None:
        """The seeds' name for the latest evaluation's mean validation loss per objective key (None before the
        first complete evaluation)."""
        return None if self._last_losses is None else dict(self._last_losses)

    # -- training ------------------------------------------------------------------------------------------

    def get_next_training_sample(self) -> dict[str, torch.Tensor]:
        """The next packed training batch (dict of (batch_size, sequence_length) int64 tensors, on the device)."""
        self._check_no_pending("get_next_training_sample")
        if self._decision_batch is not None and self.pipeline.will_commit(self._decision_batch):
            started = time.perf_counter()
            self._finish_decision()
            self.decision_wait_s += time.perf_counter() - started
        batch = self._to_device(next(self.pipeline))
        self._batches_taken += 1
        return batch

    def get_current_action(self) -> dict[str, float]:
        """The latest commanded mixture (a pending decision's is not): ``{objective_key: probability}``."""
        return dict(zip(self.keys, self.agent.action.tolist()))

    def get_current_class_action(self) -> dict[str, float]:
        """The mixture in force summed per objective class: ``{class: probability}``."""
        totals = np.bincount(self.class_ids, weights=self.agent.action, minlength=len(self.class_names))
        return dict(zip(self.class_names, totals.tolist()))

    def _to_device(self, batch: dict[str, torch.Tensor]) -> Any:
        batch = {key: batch[key] for key in self.config.batch_keys}
        if self.config.move_to_gpu_fn is not None:
            return self.config.move_to_gpu_fn(batch)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    # -- state and shutdown --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Agent (history, reward model, optimizer, RNG, a pending decision) and pipeline state; call between
        evaluations. It waits for a decision still computing, but talks to no other rank (rank 0 alone may call it)."""
        return {**self.agent_state.state_dict(), **self.data_state.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a Birdie with the same configuration."""
        self.agent_state.load_state_dict(state)
        self.data_state.load_state_dict(state)

    @property
    def agent_state(self) -> "StatePart":
        """The agent's part of :meth:`state_dict`, identical on every rank (a checkpoint stores it once).

        Loaded alone (e.g. into a run with another number of processes), the agent's history, reward model and
        mixture carry on while the batch stream keeps its own position: the agent's mixture, and a decision still
        pending in the state, apply from the stream's first uncommitted batch. Load it on every rank."""
        return StatePart(self._agent_state_dict, self._load_agent_state_dict)

    @property
    def data_state(self) -> "StatePart":
        """This rank's batch-stream part of :meth:`state_dict` (its position, and the batch from which a pending
        decision applies); load it after :attr:`agent_state`."""
        return StatePart(self._data_state_dict, self._load_data_state_dict)

    def _agent_state_dict(self) -> dict[str, Any]:
        self._check_no_pending("state_dict")
        return {"agent": self.agent.state_dict(), "last_eval_step": self._last_eval_step}

    def _load_agent_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self._last_eval_step = state["last_eval_step"]
        self._pending.clear()
        self._pending_step = None
        self._decision_batch = self.pipeline.first_uncommitted if self.agent.pending is not None else None
        self.pipeline.set_mixture(self.agent.action)

    def _data_state_dict(self) -> dict[str, Any]:
        self._check_no_pending("state_dict")
        return {"pipeline": self.pipeline.state_dict(), "decision_batch": self._decision_batch}

    def _load_data_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pipeline.load_state_dict(state["pipeline"])
        self._decision_batch = state.get("decision_batch")

    def close(self) -> None:
        """Stop the pipeline's workers and the decision thread, close the decision log (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self.pipeline.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "Birdie":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _as_float(loss: float | torch.Tensor) -> float:
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ValueError(f"log_validation_loss needs a scalar loss, got a tensor of shape {tuple(loss.shape)}; "
                             "reduce it (e.g. loss.mean()) first")
        return float(loss.detach().float().cpu())
    if isinstance(loss, (tuple, list)):
        raise TypeError("log_validation_loss got a tuple/list; pass the loss itself (e.g. model(**batch)[1])")
    return float(loss)


def _separator_ids(tokenizer: Any, text: str) -> tuple[int, ...]:
    """The token ids of ``start_generating_paradigm``."""
    ids = tuple(int(i) for i in tokenizer.encode(text))
    if not ids:
        raise ConfigError(f"start_generating_paradigm={text!r} encodes to no tokens; give visible text or None")
    return ids


def _decision_delay(requested: int | None, agent: Any) -> int:
    """The decision delay in batches (see :class:`CurriculumConfig`), validated against the agent's schedule."""
    if not agent.learns:
        return requested or 0
    gap = agent.schedule.shortest_decision_gap()
    if requested is None:
        return min(DEFAULT_DECISION_DELAY, gap // 4)
    if requested >= gap:
        raise ConfigError(f"decision_delay_batches={requested} must be smaller than {gap}, the fewest steps between a "
                         "decision and the next evaluation (its mixture must train before it is judged); lower the "
                         "delay or evaluate less often")
    return requested


@dataclass(frozen=True)
class StatePart:
    """One owner's slice of a :class:`Birdie`'s state, with ``state_dict()`` / ``load_state_dict(state)``."""

    state_dict: Callable[[], dict[str, Any]]
    load_state_dict: Callable[[Mapping[str, Any]], None]


def _rank_and_world_size(accelerator: Any) -> tuple[int, int]:
    if accelerator is not None:
        return int(accelerator.process_index), int(accelerator.num_processes)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


__all__ = ["Birdie", "BirdieConfig", "CurriculumConfig", "DEFAULT_DECISION_DELAY", "SEED_BATCH_KEYS"]
