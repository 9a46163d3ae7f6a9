"""Agents that choose the objective mixture from per-configuration validation losses.

Every agent sees only numbers: K objective configurations, each with a class id in ``0..C-1``. At each evaluation
the caller passes the K validation losses to :meth:`Agent.observe`; the agent computes the rewards of the mixture
it chose last time, and -- once the schedule lets it -- chooses the next mixture (:attr:`Agent.action`).

* :class:`BirdieAgent` -- the paper's learned curriculum: history of (losses, action) -> rewards, a Gated SSM reward
  model trained for a fixed number of steps per decision, thousands of candidate mixtures scored at the last real
  history position, the mean of the top 8 (see :mod:`birdie.curriculum.candidates`).
* :class:`FixedAgent` -- a constant mixture (uniform, UL2, NTP, user ratios) behind the same interface; it still
  reports rewards, so runs compare in one log format.

Under ``torch.distributed`` the losses are averaged over ranks and rank 0's decision is broadcast, so all ranks
always train on the same mixture; only rank 0 trains the reward model (save the agent state from rank 0).

An observation has two halves so that the decision can overlap training: :meth:`Agent.begin_observation` records
the losses and rewards and starts the choice (at once, or on an executor such as a background thread), and
:meth:`PendingDecision.finish` -- called on every rank at the same point -- waits for it and broadcasts it.
:meth:`Agent.observe` is both at once.
"""

from __future__ import annotations

import copy
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from birdie.checks import check, option
from birdie.curriculum import distributed
from birdie.curriculum.candidates import (
    class_proposals,
    score_candidates,
    simplex_candidates,
    top_k_mean,
    uniform_over_classes,
)
from birdie.curriculum.reward import RewardFn, compute_rewards, total_reward
from birdie.curriculum.reward_fit import fit_reward_model, make_optimizer
from birdie.curriculum.reward_model import RewardModel, RewardModelConfig
from birdie.curriculum.schedule import Schedule


@dataclass(frozen=True)
class Decision:
    """What happened at one evaluation.

    Attributes:
        step: training step of the evaluation.
        losses: (K,) validation losses (averaged over ranks).
        rewards: (K,) rewards of the previous mixture, or None at the first evaluation.
        total_reward: class-averaged rewards summed over classes, or None.
        action: (K,) the mixture to train on from now on.
        decided: True when the agent chose a new mixture at this evaluation.
        explored: True when that choice was an exploration proposal.
        reward_model_loss: the reward model's training MSE after this decision's fit, if it was trained.
    """

    step: int
    losses: np.ndarray
    rewards: np.ndarray | None
    total_reward: float | None
    action: np.ndarray
    decided: bool
    explored: bool
    reward_model_loss: float | None


#: Rank 0's choice at one evaluation: (action, explored, reward-model training loss).
Outcome = tuple[np.ndarray, bool, float | None]


class PendingDecision:
    """An evaluation the agent has recorded (losses, rewards) whose new mixture may still be computing.

    Made by :meth:`Agent.begin_observation`. While it is pending the agent's reward model, optimizer and random
    generator belong to the computation: do not call the agent's ``predict``/``score``/``candidates`` meanwhile.
    """

    def __init__(self, agent: "Agent", step: int, losses: np.ndarray, rewards: np.ndarray | None, decides: bool,
                 outcome: "Future[Outcome] | Outcome | None") -> None:
        self.agent = agent
        self.step = step
        self.losses = losses
        self.rewards = rewards
        #: Whether this evaluation chooses a new mixture (the same on every rank).
        self.decides = decides
        self._outcome = outcome

    def ready(self) -> bool:
        """True when :meth:`finish` would not wait for the agent's computation."""
        return not isinstance(self._outcome, Future) or self._outcome.done()

    def outcome(self) -> Outcome | None:
        """Rank 0's choice, waiting for it if it is still computing (re-raises its error); None on other ranks
        and when this evaluation does not decide."""
        if isinstance(self._outcome, Future):
            self._outcome = self._outcome.result()
        return self._outcome

    def finish(self) -> Decision:
        """Complete the evaluation on every rank at the same point: rank 0's choice becomes every rank's
        ``agent.action``. If rank 0's computation failed, rank 0 re-raises its error and the other ranks raise
        ``RuntimeError`` (nobody waits on a broadcast that never comes)."""
        agent = self.agent
        if agent.pending is not self:
            raise RuntimeError(f"the decision of step {self.step} is not the agent's pending one (finished twice?)")
        agent.pending = None
        explored, fit_loss = False, None
        if self.decides:
            proposal = np.zeros(agent.num_configs + 1)
            failure = None
            if distributed.rank() == 0:
                try:
                    action, explored, fit_loss = self.outcome()
                    proposal = np.append(action, float(explored))
                except Exception as error:  # re-raised below, once the other ranks know
                    failure, proposal = error, np.full(agent.num_configs + 1, np.nan)
            proposal = distributed.broadcast_from_rank0(proposal)
            if failure is not None:
                raise failure
            if not np.all(np.isfinite(proposal)):
                raise RuntimeError(f"rank 0's agent failed to choose the mixture at step {self.step}; its error is "
                                   "in rank 0's output")
            agent.action, explored = proposal[:-1], bool(proposal[-1])
        total = None if self.rewards is None else total_reward(self.rewards, agent.class_ids)
        return Decision(self.step, self.losses, self.rewards, total, agent.action.copy(), self.decides, explored,
                        fit_loss)

    def state_dict(self) -> dict[str, Any]:
        """The evaluation with rank 0's finished choice (waits for it)."""
        outcome = self.outcome()
        if outcome is not None:
            outcome = (outcome[0].copy(), outcome[1], outcome[2])
        return {"step": self.step, "losses": self.losses.copy(), "decides": self.decides, "outcome": outcome,
                "rewards": None if self.rewards is None else self.rewards.copy()}

    @classmethod
    def from_state(cls, agent: "Agent", state: dict[str, Any]) -> "PendingDecision":
        rewards = None if state["rewards"] is None else np.asarray(state["rewards"], dtype=np.float64)
        outcome = state["outcome"]
        if outcome is not None:
            outcome = (np.asarray(outcome[0], dtype=np.float64), bool(outcome[1]), outcome[2])
        return cls(agent, state["step"], np.asarray(state["losses"], dtype=np.float64), rewards, state["decides"],
                   outcome)


def _run_now(function: Callable[..., Outcome], *args: Any) -> Future[Outcome]:
    """``function(*args)`` run here, as a finished future: an error reaches :meth:`PendingDecision.finish`, which
    tells the other ranks before raising it."""
    future: Future[Outcome] = Future()
    try:
        future.set_result(function(*args))
    except Exception as error:  # re-raised by finish()
        future.set_exception(error)
    return future


def decision_executor() -> ThreadPoolExecutor:
    """A one-thread pool for :meth:`Agent.begin_observation`. Its thread runs torch ops on one intra-op thread: a
    second thread with its own multi-threaded pool of torch (OpenMP) workers slows multi-threaded CPU training in
    the main thread by ~50% for as long as it lives (measured on 2 cores), and the reward model's small matrices
    gain little from more threads anyway."""
    return ThreadPoolExecutor(1, thread_name_prefix="birdie-agent", initializer=torch.set_num_threads, initargs=(1,))


def check_class_ids(class_ids: Any) -> np.ndarray:
    """Validate K class ids (every id in 0..C-1 used at least once) and return them as an int64 array."""
    ids = np.asarray(class_ids)
    if ids.ndim != 1 or len(ids) == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"class_ids must be a non-empty 1-D integer sequence, got {class_ids!r}")
    if ids.min() < 0 or set(np.unique(ids)) != set(range(int(ids.max()) + 1)):
        raise ValueError(f"class_ids must use every class id 0..C-1 at least once, got {sorted(set(ids.tolist()))}")
    return ids.astype(np.int64)


class Agent:
    """The common interface: :meth:`observe` at every evaluation, :attr:`action` the current mixture."""

    kind = "agent"
    #: Whether this agent ever changes its mixture (static agents do not).
    learns = False

    def __init__(self, class_ids: Any, schedule: Schedule, reward_fn: RewardFn | None = None,
                 initial_action: np.ndarray | None = None) -> None:
        self.class_ids = check_class_ids(class_ids)
        self.schedule = schedule
        self.reward_fn = reward_fn
        start = uniform_over_classes(self.class_ids) if initial_action is None else initial_action
        self.action = check_mixture(start, len(self.class_ids))
        self.last_losses: np.ndarray | None = None
        self.last_step: int | None = None
        #: The objective configurations behind the K numbers, when known (set by ``make_agent``).
        self.configs: list[Any] | None = None
        #: The evaluation begun but not yet finished, if any.
        self.pending: PendingDecision | None = None

    @property
    def num_configs(self) -> int:
        return len(self.class_ids)

    def observe(self, step: int, losses: Any) -> Decision:
        """Record the K validation losses measured at ``step``; maybe choose a new mixture; return the decision."""
        return self.begin_observation(step, losses).finish()

    def begin_observation(self, step: int, losses: Any, executor: Executor | None = None) -> PendingDecision:
        """The first half of :meth:`observe`: average ``losses`` over ranks, compute and remember the rewards of
        the mixture in force, and -- when the schedule lets the agent decide -- start choosing the next mixture on
        rank 0: on ``executor`` (e.g. a one-thread pool, so training goes on meanwhile) or here. The mixture in
        force (:attr:`action`) changes only when the returned decision is finished."""
        if self.pending is not None:
            raise RuntimeError(f"the decision of the evaluation at step {self.pending.step} is still pending; "
                               "finish() it before the next observation")
        losses = distributed.mean_over_ranks(np.asarray(losses, dtype=np.float64))
        if losses.shape != (self.num_configs,):
            raise ValueError(f"expected {self.num_configs} validation losses (one per configuration), got shape {losses.shape}")
        if self.last_step is not None and step <= self.last_step:
            raise ValueError(f"evaluation steps must increase: got step {step} after step {self.last_step}")
        rewards = None
        if self.last_losses is not None:
            rewards = compute_rewards(self.last_losses, losses, self.reward_fn)
            self._remember(self.last_losses, self.action, rewards)
        decides = self.learns and self.schedule.agent_in_control(step) and self._can_decide()
        outcome: Future[Outcome] | Outcome | None = None
        if decides and distributed.rank() == 0:
            outcome = (_run_now(self._decide, step, losses) if executor is None
                       else executor.submit(self._decide, step, losses))
        self.last_losses, self.last_step = losses, step
        self.pending = PendingDecision(self, step, losses, rewards, decides, outcome)
        return self.pending

    def _remember(self, losses: np.ndarray, action: np.ndarray, rewards: np.ndarray) -> None:
        """Hook: the mixture ``action`` trained from losses ``losses`` earned ``rewards``."""

    def _can_decide(self) -> bool:
        return False

    def _decide(self, step: int, losses: np.ndarray) -> Outcome:
        raise TypeError(f"{type(self).__name__} does not choose mixtures")

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to decide exactly as an uninterrupted one (waits for a pending choice,
        which is saved finished but not yet in force)."""
        return {"kind": self.kind, "action": self.action.copy(), "last_step": self.last_step,
                "last_losses": None if self.last_losses is None else self.last_losses.copy(),
                "pending": None if self.pending is None else self.pending.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"agent state is for kind {state.get('kind')!r}, this agent is {self.kind!r}")
        self.action = check_mixture(state["action"], self.num_configs)
        self.last_step = state["last_step"]
        self.last_losses = None if state["last_losses"] is None else np.asarray(state["last_losses"], dtype=np.float64)
        pending = state.get("pending")
        self.pending = None if pending is None else PendingDecision.from_state(self, pending)


def check_mixture(mixture: Any, num_configs: int) -> np.ndarray:
    """Validate a mixture of ``num_configs`` non-negative weights (sum > 0) and return it normalized (float64)."""
    weights = np.asarray(mixture, dtype=np.float64)
    if weights.shape != (num_configs,):
        raise ValueError(f"a mixture needs {num_configs} weights (one per configuration), got shape {weights.shape}")
    if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
        raise ValueError(f"mixture weights must be finite, >= 0 and not all 0, got {weights.tolist()}")
    return weights / weights.sum()


class FixedAgent(Agent):
    """A constant mixture (normalized ``ratios``; default: uniform over classes)."""

    kind = "fixed"

    def __init__(self, class_ids: Any, schedule: Schedule, ratios: Any = None, reward_fn: RewardFn | None = None) -> None:
        super().__init__(class_ids, schedule, reward_fn, initial_action=ratios)


@dataclass(frozen=True)
class BirdieAgentConfig:
    """Action-selection settings of :class:`BirdieAgent`.

    Attributes:
        num_candidates: random simplex candidates per decision (paper: 2048).
        num_proposals: class-concentrated proposals added to them (also the exploration actions).
        top_k: the action is the mean of this many best-scoring candidates (paper: 8).
        proposal_floor: mass left to the classes a proposal does not focus on.
        seed: seeds the reward model's initialization and the agent's random generator; None: the run's seed
            (``Birdie``'s ``seed``, ``train.seed``), 0 when the agent is built alone.
    """

    num_candidates: int = option(2048, "random simplex candidates scored per decision (paper: 2048)")
    num_proposals: int = option(256, "class-concentrated proposals added to them (also the exploration actions)")
    top_k: int = option(8, "the new mixture is the mean of this many best-scoring candidates (paper: 8)")
    proposal_floor: float = option(0.05, "mass a proposal leaves to the classes it does not focus on")
    seed: int | None = option(None, "seed of the reward model's init and the agent's generator (default: the "
                                    "run's seed)")

    def __post_init__(self) -> None:
        check(self, "num_candidates", self.num_candidates >= 1, "must be >= 1")
        check(self, "num_proposals", self.num_proposals >= 1, "must be >= 1")
        check(self, "top_k", 1 <= self.top_k <= self.num_candidates + self.num_proposals,
              f"must be in [1, num_candidates + num_proposals = {self.num_candidates + self.num_proposals}]")
        check(self, "proposal_floor", 0.0 <= self.proposal_floor < 1.0, "must be in [0, 1)")


class BirdieAgent(Agent):
    """The paper's reward-driven curriculum (see the module docstring and ``docs/curriculum.md``)."""

    kind = "birdie"
    learns = True

    def __init__(self, class_ids: Any, schedule: Schedule, reward_fn: RewardFn | None = None,
                 config: BirdieAgentConfig = BirdieAgentConfig(),
                 model_config: RewardModelConfig = RewardModelConfig()) -> None:
        super().__init__(class_ids, schedule, reward_fn)
        self.config = config
        self.model_config = model_config
        self.seed = 0 if config.seed is None else config.seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model = RewardModel(self.num_configs, model_config).eval()
        self.optimizer = make_optimizer(self.model, model_config)
        self.rng = np.random.default_rng(self.seed)
        self.history_rows: list[np.ndarray] = []
        self.history_rewards: list[np.ndarray] = []

    def _remember(self, losses: np.ndarray, action: np.ndarray, rewards: np.ndarray) -> None:
        self.history_rows.append(np.concatenate([losses, action]))
        self.history_rewards.append(rewards)

    def _can_decide(self) -> bool:
        return len(self.history_rows) > 0

    def _decide(self, step: int, losses: np.ndarray) -> Outcome:
        rows = torch.as_tensor(np.stack(self.history_rows), dtype=torch.float32)
        rewards = torch.as_tensor(np.stack(self.history_rewards), dtype=torch.float32)
        fit_loss = fit_reward_model(self.model, self.optimizer, rows, rewards, self.model_config)
        candidates = self.candidates()
        if self.rng.random() < self.schedule.explore_probability(step):
            proposals = candidates[self.config.num_candidates:]
            return proposals[self.rng.integers(len(proposals))], True, fit_loss
        return top_k_mean(candidates, self.score(losses, candidates), self.config.top_k), False, fit_loss

    def candidates(self) -> np.ndarray:
        """(num_candidates + num_proposals, K): random simplex points, then class proposals."""
        return np.concatenate([
            simplex_candidates(self.rng, self.class_ids, self.config.num_candidates),
            class_proposals(self.rng, self.class_ids, self.config.num_proposals, self.config.proposal_floor),
        ])

    def predict(self, losses: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(N, K) predicted rewards of training on each candidate from validation losses ``losses``."""
        next_rows = np.concatenate([np.broadcast_to(losses, candidates.shape), candidates], axis=1)
        history = (np.stack(self.history_rows) if self.history_rows else np.zeros((0, 2 * self.num_configs)))
        prediction = self.model.predict_next(torch.as_tensor(history, dtype=torch.float32),
                                             torch.as_tensor(next_rows, dtype=torch.float32))
        return prediction.double().numpy()

    def score(self, losses: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(N,) predicted total reward (class-averaged, summed over classes) of each candidate."""
        return score_candidates(self.predict(losses, candidates), self.class_ids)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()  # first: it waits for a pending fit, which changes everything below
        state.update(
            history_rows=[row.copy() for row in self.history_rows],
            history_rewards=[reward.copy() for reward in self.history_rewards],
            model={k: v.clone() for k, v in self.model.state_dict().items()},
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            rng=copy.deepcopy(self.rng.bit_generator.state),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history_rows = [np.asarray(row, dtype=np.float64) for row in state["history_rows"]]
        self.history_rewards = [np.asarray(reward, dtype=np.float64) for reward in state["history_rewards"]]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
