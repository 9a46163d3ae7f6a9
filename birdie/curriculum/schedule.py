"""When the curriculum evaluates, when the agent takes control, and how much it explores.

Paper schedule (appendix A.1.4), the default: the mixture stays at its initial value (uniform over classes) for
the first ``warmup_steps`` = 250 steps; validation losses are measured at steps 10, 50, 250, 500, 1000, 1500,
2000 and then every 1000 steps; the agent decides a new mixture at every evaluation from step 250 on. The seeds'
fixed interval is available as ``steps_between_evaluations`` (evaluate at every multiple of it, step 0 included).

Exploration (replacing upstream's 20%-forever): at a decision at step ``s`` the agent explores with probability

    eps(s) = explore_end + (explore_start - explore_end) * (1 + cos(pi * p)) / 2,
    p = clip((s - warmup_steps) / (explore_fraction * (total_steps - warmup_steps)), 0, 1)

so it starts at ``explore_start`` (0.5) when the agent takes control, decays along a half cosine, and reaches
``explore_end`` (0) after ``explore_fraction`` (half) of the remaining run: explore early, exploit late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from birdie.checks import check, is_int, option

PAPER_EVAL_STEPS = (10, 50, 250, 500, 1000, 1500, 2000)


@dataclass(frozen=True)
class Schedule:
    """Evaluation steps, warm-up and exploration for a run of ``total_steps`` training steps.

    Attributes:
        total_steps: training steps in the run (the exploration horizon is tied to it); None in a configuration
            means the run's own length (:meth:`for_run` fills it in).
        warmup_steps: the agent keeps the initial mixture before this step.
        eval_steps: explicit early evaluation steps (paper: 10, 50, 250, 500, 1000, 1500, 2000).
        eval_every: after the last of ``eval_steps``, evaluate every this many steps.
        steps_between_evaluations: if set, evaluate at every multiple of it instead (the seeds' behaviour).
        explore_start, explore_end: exploration probability when the agent takes control / at the end of decay.
        explore_fraction: fraction of the post-warm-up run over which exploration decays.
    """

    total_steps: int | None = option(None, "exploration horizon in steps (default: the run's steps)")
    warmup_steps: int = option(250, "the mixture stays uniform over classes before this step (the agent's "
                                    "warm-up, not the learning rate's)")
    eval_steps: tuple[int, ...] = option(PAPER_EVAL_STEPS, "early evaluation steps (the paper's: 10, 50, 250, "
                                                           "500, 1000, 1500, 2000)")
    eval_every: int = option(1000, "after the last of eval_steps, evaluate every this many steps")
    steps_between_evaluations: int | None = option(
        None, "evaluate at every multiple of this instead of eval_steps/eval_every (the seeds' schedule)")
    explore_start: float = option(0.5, "exploration probability when the agent takes control")
    explore_end: float = option(0.0, "exploration probability at the end of its cosine decay")
    explore_fraction: float = option(0.5, "fraction of the post-warm-up run over which exploration decays")

    def __post_init__(self) -> None:
        object.__setattr__(self, "eval_steps", tuple(self.eval_steps))
        check(self, "total_steps", self.total_steps is None or (is_int(self.total_steps) and self.total_steps >= 1),
              "must be >= 1 (or None for the run's steps)")
        check(self, "warmup_steps", is_int(self.warmup_steps) and self.warmup_steps >= 0, "must be >= 0")
        check(self, "eval_every", is_int(self.eval_every) and self.eval_every >= 1, "must be >= 1")
        check(self, "eval_steps", all(is_int(s) and s >= 0 for s in self.eval_steps)
              and list(self.eval_steps) == sorted(set(self.eval_steps)), "must be distinct, increasing and >= 0")
        check(self, "steps_between_evaluations",
              self.steps_between_evaluations is None
              or (is_int(self.steps_between_evaluations) and self.steps_between_evaluations >= 1),
              "must be >= 1 (or None for the paper schedule)")
        check(self, "explore_start", 0.0 <= self.explore_start <= 1.0, "must be in [0, 1]")
        check(self, "explore_end", 0.0 <= self.explore_end <= 1.0, "must be in [0, 1]")
        check(self, "explore_fraction", 0.0 < self.explore_fraction <= 1.0, "must be in (0, 1]")

    def for_run(self, total_steps: int) -> "Schedule":
        """This schedule for a run of ``total_steps`` steps (an explicit ``total_steps`` is kept)."""
        return self if self.total_steps is not None else replace(self, total_steps=total_steps)

    @property
    def horizon(self) -> int:
        """``total_steps``; raises when the schedule was not given a run length."""
        if self.total_steps is None:
            raise ValueError("Schedule.total_steps is None: call schedule.for_run(num_steps) first")
        return self.total_steps

    def is_eval_step(self, step: int) -> bool:
        """True when validation losses are measured before training step ``step``."""
        if self.steps_between_evaluations is not None:
            return step % self.steps_between_evaluations == 0
        if step in self.eval_steps:
            return True
        last = self.eval_steps[-1] if self.eval_steps else 0
        return step > last and (step - last) % self.eval_every == 0

    def evaluation_steps(self) -> list[int]:
        """Every evaluation step in ``[0, total_steps)``."""
        return [step for step in range(self.horizon) if self.is_eval_step(step)]

    def agent_in_control(self, step: int) -> bool:
        """True when an evaluation at ``step`` lets the agent choose a new mixture."""
        return step >= self.warmup_steps

    def shortest_decision_gap(self) -> int:
        """The fewest training steps between an evaluation where the agent decides and the next evaluation (a
        decision must take effect within that gap)."""
        if self.steps_between_evaluations is not None:
            return self.steps_between_evaluations
        deciding = [step for step in self.eval_steps if self.agent_in_control(step)]
        gaps = [later - step for step, later in zip(self.eval_steps, self.eval_steps[1:]) if step in deciding]
        return min([*gaps, self.eval_every])

    def explore_probability(self, step: int) -> float:
        """The exploration probability ``eps(step)`` of the module docstring."""
        span = self.explore_fraction * max(self.horizon - self.warmup_steps, 1)
        progress = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        cosine = (1.0 + math.cos(math.pi * progress)) / 2.0
        return self.explore_end + (self.explore_start - self.explore_end) * cosine
