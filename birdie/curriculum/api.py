"""``Birdie``: the seeds' API -- a packed batch stream under a mixture that a reward-driven agent keeps choosing.

::

    birdie = Birdie({"tokenizer": tokenizer, "ds": data_generator, "batch_size": 8, "sequence_length": 2048,
                     "num_steps": 4096, "objectives": "birdie"})
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

import dataclasses
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from birdie.curriculum import class_ids_of, make_agent
from birdie.curriculum.agent import decision_executor
from birdie.curriculum.log import DecisionLog, decision_record
from birdie.curriculum.reward import RewardFn

#: The default decision delay in batches: ~1 s of decision at >= 35 ms per batch (capped at a quarter of the gap).
DEFAULT_DECISION_DELAY = 32

#: Seeds' alternative spellings -> the canonical key.
ALIASES = {"pretraining_objectives": "objectives", "dataset": "ds", "max_sequence_length": "sequence_length",
           "total_steps": "num_steps"}


@dataclass
class BirdieConfig:
    """The configuration keys of :class:`Birdie` (seeds' names; aliases in :data:`ALIASES`).

    Attributes:
        tokenizer: any tokenizer with ``encode``/``decode`` or a birdie tokenizer spec such as ``"bytes"``.
        objectives: a mixture name (``birdie``, ``ul2``, ``ul2_decoder``, ``ntp``) or a list of objective entries;
            default ``birdie``, or the agent's own mixture for ``agent="ul2"``/``"ntp"``.
        ds: training documents: ``ds(split, worker_id, num_workers, rng_seed) -> iterable``, paths, a HF dataset;
            default the embedded synthetic stories. ``ds_validation``: validation documents (default ``ds``).
        text_grabber_fn: ``item -> text`` (default ``item["text"]`` or the item itself).
        batch_size, sequence_length: batch shape. num_workers: pipeline worker processes (0 = in-process).
        num_steps: training steps in the run (the schedule's and the exploration's horizon).
        steps_between_evaluations: evaluate every this many steps; None = the paper schedule.
        warmup_steps: the mixture stays uniform over classes before this step.
        reward_fn: ``reward_fn(old_losses, new_losses) -> rewards`` (numpy (K,) arrays); default the paper's.
        agent: ``birdie``, ``uniform``, ``fixed``, ``ul2`` or ``ntp``. agent_options: extra ``make_agent`` options.
        accelerator: optional HF ``accelerate.Accelerator``: gives the device, rank and world size.
        device: where batches go when there is no accelerator (default CPU). move_to_gpu_fn: custom
            ``batch -> batch`` transfer, used instead of ``.to(device)``.
        seed: fixes the batch stream, the validation set and the agent.
        num_validation_batches, validation_batch_size: the held-out set per objective configuration.
        pipeline_options: extra :class:`birdie.data.PipelineConfig` fields (``num_streams``, ``prefetch``, ...).
        log_path: JSONL decision log (written on rank 0); None = no file.
        decision_delay_batches: a new mixture takes effect this many training batches after it could at once (on
            top of the pipeline's ``prefetch``), so that training need not wait for the decision. None: ``min(32,
            gap // 4)`` for the schedule's shortest gap between a decision and the next evaluation; 0: at once (the
            paper's timing). Must be smaller than that gap.
        background_decisions: compute delayed decisions on a background thread (True) or at the evaluation
            (False). None: in the background when batches go to an accelerator (training leaves CPU cores free), at
            the evaluation when training runs on the CPU (training uses every core; a background decision would
            only compete with it). The decisions are identical either way.
    """

    tokenizer: Any
    objectives: Any = None
    ds: Any = None
    ds_validation: Any = None
    text_grabber_fn: Callable[[Any], Any] | None = None
    batch_size: int = 8
    sequence_length: int = 2048
    num_workers: int = 1
    num_steps: int = 16384
    steps_between_evaluations: int | None = None
    warmup_steps: int = 250
    reward_fn: RewardFn | None = None
    agent: str = "birdie"
    agent_options: dict[str, Any] = field(default_factory=dict)
    accelerator: Any = None
    device: Any = None
    move_to_gpu_fn: Callable[[dict[str, torch.Tensor]], Any] | None = None
    seed: int = 0
    num_validation_batches: int = 2
    validation_batch_size: int | None = None
    pipeline_options: dict[str, Any] = field(default_factory=dict)
    log_path: str | None = None
    decision_delay_batches: int | None = None
    background_decisions: bool | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> "BirdieConfig":
        """Build from a seeds-style dict; unknown keys (or a key given under two names) raise ``ValueError``."""
        if isinstance(config, BirdieConfig):
            return config
        valid = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in config.items():
            name = ALIASES.get(key, key)
            if name not in valid:
                names = sorted(valid | set(ALIASES))
                raise ValueError(f"unknown Birdie config key {key!r}; valid keys: {', '.join(names)}")
            if name in values:
                raise ValueError(f"Birdie config gives {name!r} twice (as {key!r} and another spelling); keep one")
            values[name] = value
        if "tokenizer" not in values:
            raise ValueError("Birdie config needs 'tokenizer' (any object with encode/decode, or 'bytes')")
        return cls(**values)


class Birdie:
    """Training batches under a mixture that the configured agent chooses from validation losses.

    Args:
        config: a dict with the keys of :class:`BirdieConfig` (or a ``BirdieConfig``).
    """

    def __init__(self, config: Mapping[str, Any] | BirdieConfig) -> None:
        from birdie.data.pipeline import Pipeline
        from birdie.objectives import resolve_mixture

        self.config = cfg = BirdieConfig.from_mapping(config)
        if cfg.num_validation_batches < 1:
            raise ValueError("Birdie needs num_validation_batches >= 1: the agent learns from validation losses")
        objectives = cfg.objectives
        if objectives is None:
            objectives = cfg.agent if cfg.agent in ("ul2", "ntp") else "birdie"
        configs = resolve_mixture(objectives)
        rank, world_size = _rank_and_world_size(cfg.accelerator)
        self.agent = make_agent(cfg.agent, configs, cfg.num_steps, reward_fn=cfg.reward_fn,
                                steps_between_evaluations=cfg.steps_between_evaluations,
                                warmup_steps=cfg.warmup_steps, **{"seed": cfg.seed, **cfg.agent_options})
        self.keys = [c.key for c in configs]
        self.class_ids, self.class_names = class_ids_of(configs)
        self.device = torch.device(cfg.accelerator.device if cfg.accelerator is not None else cfg.device or "cpu")
        self.decision_delay = _decision_delay(cfg.decision_delay_batches, self.agent)
        background = cfg.background_decisions
        if background not in (None, True, False):
            raise ValueError(f"background_decisions must be True, False or None (automatic), got {background!r}")
        if background is None:
            background = self.device.type != "cpu" or cfg.move_to_gpu_fn is not None
        self._executor = (decision_executor() if background and self.decision_delay > 0 and self.agent.learns
                          else None)
        self.pipeline = Pipeline(
            cfg.tokenizer, configs, cfg.ds, validation_source=cfg.ds_validation,
            text_grabber_fn=cfg.text_grabber_fn, batch_size=cfg.batch_size, sequence_length=cfg.sequence_length,
            num_workers=cfg.num_workers, seed=cfg.seed, rank=rank, world_size=world_size,
            num_validation_batches=cfg.num_validation_batches, validation_batch_size=cfg.validation_batch_size,
            **cfg.pipeline_options,
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

    # -- evaluation ----------------------------------------------------------------------------------------

    def time_for_eval(self, step: int) -> bool:
        """True when the schedule measures validation losses before training step ``step`` (once per step)."""
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
        expected = self.config.num_validation_batches
        if len(self._pending[key]) >= expected:
            raise ValueError(f"log_validation_loss: {key!r} already has {expected} losses at step {step_idx} "
                             f"(num_validation_batches={expected})")
        self._pending[key].append(_as_float(loss))
        self._pending_step = step_idx
        if all(len(self._pending[k]) == expected for k in self.keys):
            self._update(step_idx)

    def _update(self, step: int) -> None:
        losses = np.array([np.mean(self._pending[key]) for key in self.keys])
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
        record = decision_record(decision, self.config.agent, self.keys, self.class_ids, self.class_names,
                                 applies_from)
        self.records.append(record)
        if self._log is not None:
            self._log.write(record)

    def _check_no_pending(self, caller: str) -> None:
        if self._pending:
            missing = {k: self.config.num_validation_batches - len(self._pending[k]) for k in self.keys
                       if len(self._pending[k]) < self.config.num_validation_batches}
            raise RuntimeError(f"{caller}: the evaluation at step {self._pending_step} is incomplete, losses still "
                               f"missing for {len(missing)} configuration(s) (e.g. {next(iter(missing))!r}); call "
                               "log_validation_loss for every (key, batch) that measure_validation_losses() yields")

    # -- training ------------------------------------------------------------------------------------------

    def get_next_training_sample(self) -> dict[str, torch.Tensor]:
        """The next packed training batch (dict of (batch_size, sequence_length) int64 tensors, on the device)."""
        self._check_no_pending("get_next_training_sample")
        if self._decision_batch is not None and self.pipeline.will_commit(self._decision_batch):
            started = time.perf_counter()
            self._finish_decision()
            self.decision_wait_s += time.perf_counter() - started
        return self._to_device(next(self.pipeline))

    def get_current_action(self) -> dict[str, float]:
        """The latest commanded mixture (a pending decision's is not): ``{objective_key: probability}``."""
        return dict(zip(self.keys, self.agent.action.tolist()))

    def get_current_class_action(self) -> dict[str, float]:
        """The mixture in force summed per objective class: ``{class: probability}``."""
        totals = np.bincount(self.class_ids, weights=self.agent.action, minlength=len(self.class_names))
        return dict(zip(self.class_names, totals.tolist()))

    def _to_device(self, batch: dict[str, torch.Tensor]) -> Any:
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


def _decision_delay(requested: int | None, agent: Any) -> int:
    """The decision delay in batches (see :class:`BirdieConfig`), validated against the agent's schedule."""
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 0):
        raise ValueError(f"decision_delay_batches must be an int >= 0 (or None for the default), got {requested!r}")
    if not agent.learns:
        return requested or 0
    gap = agent.schedule.shortest_decision_gap()
    if requested is None:
        return min(DEFAULT_DECISION_DELAY, gap // 4)
    if requested >= gap:
        raise ValueError(f"decision_delay_batches={requested} must be smaller than {gap}, the fewest steps between a "
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
