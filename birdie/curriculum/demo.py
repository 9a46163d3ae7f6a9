"""``birdie demo agent``: the Birdie agent on a synthetic problem where one objective class helps most.

The environment has the paper's action space (the ``birdie`` mixture: 104 configurations in 7 classes). Every
configuration's validation loss decays exponentially at a rate that grows with the share of the helpful class in
the mixture being trained on::

    loss_k <- loss_k * exp(-decay * steps * (base_rate + helpful_share))       (measured with 0.2% noise)

So the best mixture puts its mass on the helpful class, and the only way to find that out is from rewards. The
agent runs with its real defaults (2048 candidates, 200 reward-model steps, the paper schedule); the printout shows
its share of the helpful class rising from the uniform 1/7.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from birdie.curriculum import BirdieAgentConfig, RewardModelConfig, class_ids_of, make_agent
from birdie.curriculum.log import DecisionLog, decision_record


@dataclass(frozen=True)
class ToyEnvironment:
    """Validation losses as a function of the mixtures trained on (see the module docstring).

    Attributes:
        class_ids: (K,) class of each configuration; helpful: the class id whose share speeds up learning.
        decay: log-loss decay per step and unit of rate; base_rate: rate with none of the helpful class.
        noise: relative standard deviation of the measured losses.
    """

    class_ids: np.ndarray
    helpful: int
    decay: float = 8e-5
    base_rate: float = 0.2
    noise: float = 0.002

    def initial_losses(self, rng: np.random.Generator) -> np.ndarray:
        """(K,) losses before training."""
        return rng.uniform(4.0, 6.0, len(self.class_ids))

    def train(self, losses: np.ndarray, mixture: np.ndarray, steps: int) -> np.ndarray:
        """The true losses after ``steps`` training steps on ``mixture``."""
        share = mixture[self.class_ids == self.helpful].sum()
        return losses * np.exp(-self.decay * steps * (self.base_rate + share))

    def measure(self, losses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy validation losses, (K,)."""
        return losses * (1.0 + self.noise * rng.standard_normal(len(losses)))


def run_agent_demo(total_steps: int = 8192, helpful_class: str = "selective_copying", seed: int = 0,
                   log_path: str | None = None, report: Callable[[dict[str, Any]], None] | None = None,
                   birdie_agent: BirdieAgentConfig | None = None,
                   reward_model: RewardModelConfig | None = None) -> list[dict[str, Any]]:
    """Run the Birdie agent against :class:`ToyEnvironment` and return one decision record per evaluation.

    ``report`` is called with every record as it is made; ``birdie_agent`` and ``reward_model`` configure the agent
    (:func:`make_agent`).
    """
    from birdie.objectives import resolve_mixture

    configs = resolve_mixture("birdie")
    class_ids, class_names = class_ids_of(configs)
    if helpful_class not in class_names:
        raise ValueError(f"unknown class {helpful_class!r}; classes: {', '.join(class_names)}")
    environment = ToyEnvironment(class_ids, class_names.index(helpful_class))
    agent = make_agent("birdie", configs, total_steps, birdie_agent=birdie_agent, reward_model=reward_model,
                       seed=seed)
    rng = np.random.default_rng(seed + 1)
    losses = environment.initial_losses(rng)
    keys = [c.key for c in configs]
    log = DecisionLog(log_path) if log_path else None
    records, previous = [], 0
    try:
        for step in agent.schedule.evaluation_steps():
            losses = environment.train(losses, agent.action, step - previous)
            previous = step
            decision = agent.observe(step, environment.measure(losses, rng))
            record = decision_record(decision, "birdie", keys, class_ids, class_names)
            records.append(record)
            if log is not None:
                log.write(record)
            if report is not None:
                report(record)
    finally:
        if log is not None:
            log.close()
    return records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``birdie demo agent``."""
    parser.add_argument("--steps", type=int, default=8192, help="training steps of the simulated run")
    parser.add_argument("--helpful", default="selective_copying", help="the objective class that helps most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="also write the decision log (JSONL) here")
    parser.add_argument("--candidates", type=int, default=2048, help="random candidate mixtures per decision")
    parser.add_argument("--train-steps", type=int, default=200, help="reward-model AdamW steps per decision")


def run(args: argparse.Namespace) -> int:
    """Print the agent's mixture per evaluation; return 0 (2, with the reason on stderr, for a bad option)."""
    helpful = args.helpful
    print(f"birdie demo agent: {helpful!r} helps every validation loss most; uniform share would be 1/7 = 0.143")
    print(f"{'step':>6} {'mean loss':>9} {'reward':>7} {helpful + ' share':>24}  {'':<8} class mixture")
    start = time.perf_counter()

    def show(record: dict[str, Any]) -> None:
        mean_loss = np.mean(list(record["losses"].values()))
        reward = "" if record["total_reward"] is None else f"{record['total_reward']:+.3f}"
        how = "explore" if record["explored"] else ("decide" if record["decided"] else "")
        classes = " ".join(f"{name[:4]}={share:.2f}" for name, share in record["class_mixture"].items())
        print(f"{record['step']:>6} {mean_loss:>9.4f} {reward:>7} {record['class_mixture'][helpful]:>24.3f}  "
              f"{how:<8} {classes}", flush=True)

    try:
        records = run_agent_demo(args.steps, helpful, args.seed, args.log, report=show,
                                 birdie_agent=BirdieAgentConfig(num_candidates=args.candidates),
                                 reward_model=RewardModelConfig(train_steps=args.train_steps))
    except ValueError as error:
        print(f"birdie demo agent: {error}", file=sys.stderr)
        return 2
    final = records[-1]["class_mixture"][helpful]
    print(f"final share of {helpful!r}: {final:.3f} (uniform: 0.143) after {len(records)} evaluations "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
