"""Agent overhead: one Birdie decision (200 reward-model steps + candidate scoring) for the ``birdie`` action space
(104 configurations) with a 40-evaluation history, against the training step of the demo model.

    python bench/agent.py [--repeats 5] [--preset hawk-tiny] [--batch-size 16] [--sequence-length 256]
                          [--compare-with GIT_REV] [--whole-runs 16384 50000] [--overlap]

Prints the decision's cost split into fitting and scoring, the model's step time (forward + backward + AdamW at
the demo's batch shape) and the time of one evaluation, and the agent's share of a run at the paper's default
schedule for run lengths N: of the training steps' time, ``decisions(N) * decision_time / (N * step_time)``, and of
the run's wall time with its evaluations (each forwards 2 validation batches of every configuration, timed as
no-grad forwards at the training shape; every agent kind runs them). A decision with a 40-evaluation history is the
most expensive one of a 40k-step run, so the shares are upper bounds for runs up to that length.

``--whole-runs N ...`` also measures the agent's actual time over an N-step run: a fresh agent observes synthetic
validation losses at every evaluation of the default schedule, so each update runs with the history it really has
at that point (1, 2, ... evaluations), and the summed update time (plus the kernels' once-per-process cost) is
divided by ``N * step_time`` (the step time measured interleaved with the decisions above). Past ~33k steps the
history outgrows 40 evaluations, so long runs cost more per decision than the 40-evaluation figure.

Decisions and training steps are timed interleaved (one decision, then a few steps, per repeat), so load changes
on a shared machine move both alike. ``--compare-with REV`` also times, in the same loop, the 200-step fit of the
reward model as ``birdie/curriculum/reward_model.py`` stood at git revision REV (before/after side by side), and
the fit on the torch path (what runs without numba).

``--overlap`` measures what a decision costs the training loop when it overlaps training (the default
``decision_delay_batches`` = 32 with ``background_decisions``): per repeat, the wall time of 32 training steps
alone, after a decision made inline, and while the agent decides on a background thread (``Agent.begin_observation``
with a one-thread executor, then ``finish()`` -- the code path of ``Birdie``), interleaved. The differences are a
decision's cost to the run either way (run it with ``OMP_NUM_THREADS`` = 1, training leaving a core free as on
an accelerator run, and = the number of cores).

With numba installed the fit runs compiled kernels. Their one-time cost per training process (numba's import and
loading the kernels from numba's on-disk cache; compiling them the first time on a machine) is measured in fresh
processes and added to the share once per run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable

import numpy as np
import torch

from birdie.curriculum import Schedule, make_agent
from birdie.curriculum.agent import decision_executor
from birdie.curriculum.api import DEFAULT_DECISION_DELAY
from birdie.curriculum.reward_fit import fit_reward_model, make_optimizer
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


def decisions_in(total_steps: int) -> int:
    """Decisions of a ``total_steps`` run at the paper's default schedule."""
    schedule = Schedule(total_steps=total_steps)
    return sum(schedule.agent_in_control(step) for step in schedule.evaluation_steps())


def whole_run_seconds(total_steps: int, seed: int = 0) -> tuple[float, int]:
    """Summed time of every agent update (``observe``) over a ``total_steps`` run at the default schedule, with
    synthetic losses that fall a little at every evaluation; returns (seconds, decisions)."""
    agent = make_agent("birdie", resolve_mixture("birdie"), total_steps=total_steps, seed=seed)
    rng = np.random.default_rng(seed)
    losses = rng.uniform(3.0, 6.0, agent.num_configs)
    seconds, decisions = 0.0, 0
    for step in agent.schedule.evaluation_steps():
        start = time.perf_counter()
        decisions += agent.observe(step, losses).decided
        seconds += time.perf_counter() - start
        losses = losses * rng.uniform(0.97, 1.0, agent.num_configs)
    return seconds, decisions


def _source_at(revision: str, path: str) -> str | None:
    """The text of ``path`` at git ``revision``, or None when the file did not exist there."""
    shown = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def reward_model_at(revision: str) -> types.ModuleType:
    """The reward model and its fit as they stood at git ``revision``, imported as one separate module:
    ``birdie/curriculum/reward_model.py``, plus ``reward_fit.py`` where the fit had moved there."""
    # The scan kernel's module path before it moved under birdie/models/kernels/.
    sys.modules.setdefault("birdie.models.scan", importlib.import_module("birdie.models.kernels.scan"))
    module = types.ModuleType(f"reward_model_at_{revision}")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the source runs
    exec(compile(_source_at(revision, "birdie/curriculum/reward_model.py"), f"{revision}:reward_model.py", "exec"),
         module.__dict__)
    fit_source = _source_at(revision, "birdie/curriculum/reward_fit.py")
    if fit_source is not None:
        # The fit imports the model module by name: give it the revision's, not the working tree's.
        current = sys.modules.get("birdie.curriculum.reward_model")
        sys.modules["birdie.curriculum.reward_model"] = module
        try:
            exec(compile(fit_source, f"{revision}:reward_fit.py", "exec"), module.__dict__)
        finally:
            if current is None:
                del sys.modules["birdie.curriculum.reward_model"]
            else:
                sys.modules["birdie.curriculum.reward_model"] = current
    return module


def before_fit(before: types.ModuleType, agent, rows: torch.Tensor, rewards: torch.Tensor) -> Callable[[], float]:
    """The 200-step fit of a fresh reward model from module ``before`` (see :func:`reward_model_at`)."""
    config = before.RewardModelConfig(**dataclasses.asdict(agent.model_config))
    model = before.RewardModel(agent.num_configs, config)
    optimizer = before.make_optimizer(model, config)
    return lambda: before.fit_reward_model(model, optimizer, rows, rewards, config)


FIRST_FIT = """
import time, torch
from birdie.curriculum.reward_fit import fit_reward_model, make_optimizer
from birdie.curriculum.reward_model import RewardModel, RewardModelConfig
config = RewardModelConfig(train_steps=1)
model = RewardModel(104, config)
optimizer = make_optimizer(model, config)
rows, rewards = torch.rand(40, 208), torch.rand(40, 104)
times = []
for _ in range(2):
    start = time.perf_counter()
    fit_reward_model(model, optimizer, rows, rewards, config)
    times.append(time.perf_counter() - start)
print(times[0] - times[1])
"""


def setup_seconds(cold_cache: bool) -> float:
    """A fresh process's first fit step minus its second: the compiled kernels' one-time cost (numba import and
    cache load; with ``cold_cache``, an empty numba cache, so also compiling)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, **({"NUMBA_CACHE_DIR": cache} if cold_cache else {})}
        result = subprocess.run([sys.executable, "-c", FIRST_FIT], env=env, check=True, capture_output=True, text=True)
    return float(result.stdout)


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def training_step(preset: str, batch_size: int, sequence_length: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """One forward + backward + AdamW step of ``preset`` on fixed random tokens (warmed up twice), and one
    validation forward (no gradients) at the same shape."""
    from birdie.models import create

    model = create(preset, max_seq_len=sequence_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    vocab = model.config.vocab_size
    batch = {"input_ids": torch.randint(0, vocab, (batch_size, sequence_length)),
             "label_ids": torch.randint(0, vocab, (batch_size, sequence_length))}

    def step() -> None:
        _, loss = model(**batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def forward() -> None:
        with torch.no_grad():
            model(**batch)

    step(), step(), forward()
    return step, forward


def overlap_costs(step: Callable[[], None], repeats: int,
                  delay: int = DEFAULT_DECISION_DELAY) -> tuple[float, float, float]:
    """Medians of (``delay`` training steps alone, the same steps after a decision made inline, the same steps
    while a decision runs on a background thread) in seconds; each decision by an agent that has decided once
    before, at a 40-evaluation history. The three are timed interleaved, in rotating order."""
    alone, inline, overlapped = [], [], []

    def steps() -> None:
        for _ in range(delay):
            step()

    with decision_executor() as executor:
        def decide(agent, losses, background: bool) -> Callable[[], None]:
            def run() -> None:
                pending = agent.begin_observation(10_000, losses, executor if background else None)
                assert pending.decides
                steps()
                pending.finish()  # waits here if the decision is not done yet, as the training loop would
            return run

        def warm_agent(seed: int):
            """An agent that has decided once (as every decision of a run but the first) and now holds a
            39-evaluation history; the timed observation adds the 40th row. Built before timing."""
            agent, losses = agent_with_history(38, seed=seed)
            agent.observe(9_000, losses)
            return agent, losses

        for repeat in range(repeats):
            runs = [(alone, steps), (inline, decide(*warm_agent(repeat), background=False)),
                    (overlapped, decide(*warm_agent(repeat), background=True))]
            for times, run in runs[repeat % 3:] + runs[:repeat % 3]:
                times.append(timed(run))
    return float(np.median(alone)), float(np.median(inline)), float(np.median(overlapped))


def decision_floor(agent, history_length: int, num_candidates: int) -> Callable[[], None]:
    """The part of a decision no implementation can skip: every GEMM of the fit and of the scoring, and AdamW.

    Per fit step: each reward-model Linear's forward, weight-gradient and (except the first, whose input needs no
    gradient) input-gradient matmul on ``history_length`` rows, then one fused AdamW step over all parameters as one
    flat tensor; scoring adds each Linear's forward on ``num_candidates`` rows. Everything else (norms, gates, the
    scan, clipping, candidate generation) is left out, so this is a lower bound.
    """
    linears = [module for module in agent.model.modules() if isinstance(module, torch.nn.Linear)]
    gemms = []
    for index, linear in enumerate(linears):
        width_in, width_out = linear.in_features, linear.out_features
        rows, grad = torch.randn(history_length, width_in), torch.randn(history_length, width_out)
        weight = linear.weight.detach()
        gemms += [(rows, weight.T), (grad.T, rows)] + ([(grad, weight)] if index else [])
    scoring = [(torch.randn(num_candidates, linear.in_features), linear.weight.detach().T) for linear in linears]
    flat = torch.randn(sum(parameter.numel() for parameter in agent.model.parameters()), requires_grad=True)
    flat.grad = torch.randn_like(flat)
    config = agent.model_config
    adamw = torch.optim.AdamW([flat], lr=config.lr, weight_decay=config.weight_decay, fused=True)

    def floor() -> None:
        for _ in range(config.train_steps):
            for left, right in gemms:
                torch.mm(left, right)
            adamw.step()
        for left, right in scoring:
            torch.mm(left, right)

    return floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="hawk-tiny", help="the demo model")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--compare-with", metavar="REV", help="also time the reward-model fit at this git revision")
    parser.add_argument("--whole-runs", type=int, nargs="*", default=[], metavar="N",
                        help="also time every agent update of an N-step run at the default schedule")
    parser.add_argument("--overlap", action="store_true",
                        help="also time a decision overlapping 32 training steps on a background thread")
    args = parser.parse_args()

    before = reward_model_at(args.compare_with) if args.compare_with else None
    step, forward = training_step(args.preset, args.batch_size, args.sequence_length)
    fits, scores, steps, forwards, before_fits, torch_fits, floors = [], [], [], [], [], [], []
    for repeat in range(args.repeats):
        agent, losses = agent_with_history(40, seed=repeat)
        rows = torch.as_tensor(np.stack(agent.history_rows), dtype=torch.float32)
        rewards = torch.as_tensor(np.stack(agent.history_rewards), dtype=torch.float32)
        fit_now = lambda: fit_reward_model(agent.model, agent.optimizer, rows, rewards, agent.model_config)
        runs = [(fits, fit_now)]
        if before is not None:
            fallback = copy.deepcopy(agent.model)
            fallback_optimizer = make_optimizer(fallback, agent.model_config)
            fit_torch = lambda: fit_reward_model(fallback, fallback_optimizer, rows, rewards, agent.model_config,
                                                 compiled=False)
            # The variants rotate which goes first, so none always meets the same point of a load change.
            runs = [*runs, (before_fits, before_fit(before, agent, rows, rewards)), (torch_fits, fit_torch)]
            runs = runs[repeat % 3:] + runs[:repeat % 3]
        for times, run in runs:
            times.append(timed(run))
        scores.append(timed(lambda: agent.score(losses, agent.candidates())))
        num_candidates = agent.config.num_candidates + agent.config.num_proposals
        floors.append(timed(decision_floor(agent, len(rows), num_candidates)))
        steps.extend(timed(step) for _ in range(5))
        forwards.extend(timed(forward) for _ in range(5))

    fit, score, step_time = float(np.median(fits)), float(np.median(scores)), float(np.median(steps))
    decision = fit + score
    train_steps = agent.model_config.train_steps
    compiled = importlib.util.find_spec("numba") is not None
    setup, cold_setup = (setup_seconds(False), setup_seconds(True)) if compiled else (0.0, 0.0)
    path = "numba kernels" if compiled else "torch (numba not installed)"
    print(f"torch {torch.__version__}, python {platform.python_version()}, threads {torch.get_num_threads()}, "
          f"{args.repeats} repeats (medians), fit path: {path}")
    print(f"agent decision (104 configs, 40-eval history): {decision:.3f} s = fit {fit:.3f} s ({train_steps} steps, "
          f"{fit / train_steps * 1e3:.1f} ms/step) + candidates & scoring {score:.3f} s")
    if compiled:
        print(f"compiled kernels, once per training process: {setup:.2f} s (numba import + cache load); "
              f"{cold_setup:.2f} s the first time on a machine (compiling)")
    if before is not None:
        then, torch_path = float(np.median(before_fits)), float(np.median(torch_fits))
        print(f"fit at {args.compare_with}: {then:.3f} s ({then / train_steps * 1e3:.1f} ms/step); "
              f"now {then / fit:.2f}x as fast; on the torch path {torch_path:.3f} s "
              f"({torch_path / train_steps * 1e3:.1f} ms/step, {then / torch_path:.2f}x as fast)")
    print(f"{args.preset} training step at ({args.batch_size}, {args.sequence_length}): {step_time * 1e3:.1f} ms")
    # An evaluation forwards num_validation_batches (Birdie's default 2) batches of every configuration.
    evaluation = 2 * agent.num_configs * float(np.median(forwards))
    print(f"one evaluation (2 validation batches x {agent.num_configs} configurations, no-grad forwards at the same "
          f"shape): {evaluation:.2f} s")
    floor = float(np.median(floors))
    print(f"one decision = {decision / step_time:.1f} training steps; its floor (GEMMs + AdamW only) {floor:.3f} s "
          f"= {floor / step_time:.1f} steps")
    run_lengths = (16_384, 50_000, 100_000)

    def shares(total: int, agent_seconds: float) -> str:
        """The agent's share of an N-step run: of its training steps' time, and of its wall time with the
        evaluations (which every agent kind runs)."""
        evaluations = len(Schedule(total_steps=total).evaluation_steps())
        steps_only = agent_seconds / (total * step_time)
        whole = agent_seconds / (total * step_time + evaluations * evaluation + agent_seconds)
        return (f"{100 * steps_only:.2f}% of the training steps' time, {100 * whole:.2f}% of the run's wall time "
                f"with its {evaluations} evaluations")

    for total in run_lengths:
        decisions = decisions_in(total)
        others = "" if before is None else (
            f"; with the fit at {args.compare_with} {100 * decisions * (then + score) / (total * step_time):.2f}%, "
            f"on the torch path {100 * decisions * (torch_path + score) / (total * step_time):.2f}%")
        print(f"run of {total:>7} steps, {decisions:>3} decisions at once: {shares(total, decisions * decision + setup)}"
              f" (floor {100 * decisions * floor / (total * step_time):.2f}% of the steps' time{others})")
    if args.overlap:
        delay = DEFAULT_DECISION_DELAY
        alone, inline, overlapped = overlap_costs(step, args.repeats, delay)
        cost, inline_cost = max(overlapped - alone, 0.0), inline - alone
        print(f"{delay} training steps ({torch.get_num_threads()} threads): {alone:.3f} s alone, {inline:.3f} s after a "
              f"decision made inline (+{inline_cost:.3f} s), {overlapped:.3f} s while the agent decides in the "
              f"background (+{cost:.3f} s, {cost / inline_cost:.0%} of inline)")
        for total in run_lengths:
            print(f"run of {total:>7} steps, decisions overlapped: {shares(total, decisions_in(total) * cost + setup)}")
    for total in args.whole_runs:
        seconds, decisions = whole_run_seconds(total)
        print(f"whole run of {total:>7} steps, every update timed at its real history: {decisions} decisions in "
              f"{seconds:.1f} s (mean {seconds / max(decisions, 1):.3f} s): {shares(total, seconds + setup)}")


if __name__ == "__main__":
    main()
