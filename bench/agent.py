"""Agent overhead: one Birdie decision (200 reward-model steps + candidate scoring) for the ``birdie`` action space
(104 configurations) with a 40-evaluation history, against the training step of the demo model.

    python bench/agent.py [--repeats 3] [--preset hawk-tiny] [--batch-size 16] [--sequence-length 256]

Prints the decision's cost split into fitting and scoring, the model's step time (forward + backward + AdamW at
the demo's batch shape), and the agent's share of a run's wall time at the paper's default schedule:
``decisions(N) * decision_time / (N * step_time)`` for run lengths N. A decision with a 40-evaluation history is
the most expensive one of a 40k-step run, so the share is an upper bound for runs up to that length.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from birdie.curriculum import make_agent
from birdie.objectives import resolve_mixture


def agent_with_history(num_evaluations: int, seed: int = 0):
    """A default Birdie agent over the ``birdie`` mixture holding ``num_evaluations`` random history rows."""
    configs = resolve_mixture("birdie")
    agent = make_agent("birdie", configs, total_steps=50_000, seed=seed)
    rng = np.random.default_rng(seed)
    losses = rng.uniform(3.0, 6.0, agent.num_configs)
    for _ in range(num_evaluations):
        action = agent.candidates()[0]
        rewards = rng.uniform(-1.0, 1.0, agent.num_configs)
        agent._remember(losses, action, rewards)
        losses = losses * rng.uniform(0.97, 1.0, agent.num_configs)
    return agent, losses


def time_decision(repeats: int) -> tuple[float, float]:
    """Median seconds of (reward-model fit, candidate generation + scoring) over ``repeats`` decisions."""
    from birdie.curriculum.reward_model import fit_reward_model

    fits, scores = [], []
    for repeat in range(repeats):
        agent, losses = agent_with_history(40, seed=repeat)
        rows = torch.as_tensor(np.stack(agent.history_rows), dtype=torch.float32)
        rewards = torch.as_tensor(np.stack(agent.history_rewards), dtype=torch.float32)
        start = time.perf_counter()
        fit_reward_model(agent.model, agent.optimizer, rows, rewards, agent.model_config)
        fits.append(time.perf_counter() - start)
        start = time.perf_counter()
        candidates = agent.candidates()
        agent.score(losses, candidates)
        scores.append(time.perf_counter() - start)
    return float(np.median(fits)), float(np.median(scores))


def time_training_step(preset: str, batch_size: int, sequence_length: int, repeats: int) -> float:
    """Median seconds of one forward + backward + AdamW step of ``preset`` on random tokens."""
    from birdie.models import create

    model = create(preset, max_seq_len=sequence_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    vocab = model.config.vocab_size
    batch = {"input_ids": torch.randint(0, vocab, (batch_size, sequence_length)),
             "label_ids": torch.randint(0, vocab, (batch_size, sequence_length))}
    times = []
    for index in range(repeats + 2):  # two warm-up steps
        start = time.perf_counter()
        _, loss = model(**batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if index >= 2:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="hawk-tiny", help="the demo model")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=256)
    args = parser.parse_args()

    fit, score = time_decision(args.repeats)
    decision = fit + score
    step = time_training_step(args.preset, args.batch_size, args.sequence_length, max(args.repeats, 5))
    print(f"torch {torch.__version__}, python {platform.python_version()}, threads {torch.get_num_threads()}")
    print(f"agent decision (104 configs, 40-eval history): {decision:.3f} s "
          f"= fit {fit:.3f} s (200 steps, {fit / 200 * 1e3:.1f} ms/step) + candidates & scoring {score:.3f} s")
    print(f"{args.preset} training step at ({args.batch_size}, {args.sequence_length}): {step * 1e3:.1f} ms")
    print(f"one decision = {decision / step:.0f} training steps")
    agent = make_agent("birdie", resolve_mixture("birdie"), 1)
    for total in (16_384, 50_000, 100_000):
        schedule = type(agent.schedule)(total_steps=total)
        decisions = sum(schedule.agent_in_control(s) for s in schedule.evaluation_steps())
        share = decisions * decision / (total * step)
        print(f"run of {total:>7} steps: {decisions:>3} decisions, agent share of wall time {100 * share:.2f}% "
              f"(target <= 1%)")


if __name__ == "__main__":
    main()
