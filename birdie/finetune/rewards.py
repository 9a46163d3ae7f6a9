"""Rewards for PPO: a Python callable (``--reward.callable module:function``) or a ``birdie rm`` export, each
checked (a raise, a NaN or the wrong number of scores is an error naming the function), and the embedded
story-question reward.

A reward function takes ``(prompts, completions)`` -- two equal-length lists of strings -- and returns one float
per completion.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Sequence

import torch
from torch import Tensor

RewardFn = Callable[[list[str], list[str]], Sequence[float]]
#: a special token as the tokenizer decodes it (``<|eos|>``, ``<|mask_3|>``)
_SPECIAL = re.compile(r"<\|[^|]*\|>")


class RewardError(ValueError):
    """A reward function that failed or returned unusable scores."""


def load_callable(spec: str) -> RewardFn:
    """The function named ``module:function`` (``--reward.callable``)."""
    from birdie.callables import import_callable
    from birdie.checks import ConfigError

    try:
        return import_callable(spec, "reward.callable")
    except ConfigError as error:
        raise RewardError(str(error)) from None


def checked_scores(function: RewardFn, prompts: list[str], completions: list[str]) -> Tensor:
    """``function(prompts, completions)`` as a float32 (B,) tensor, or a :class:`RewardError` saying what
    was wrong (the exception it raised, a wrong count, a non-number, NaN or infinity)."""
    name = getattr(function, "__qualname__", repr(function))
    try:
        scores = function(prompts, completions)
    except Exception as error:  # noqa: BLE001 - any failure of user code becomes one clear error
        raise RewardError(f"the reward function {name} raised {type(error).__name__}: {error}") from error
    try:
        values = [float(score) for score in scores]
    except (TypeError, ValueError):
        raise RewardError(f"the reward function {name} must return a list of floats, got {scores!r:.200}") from None
    if len(values) != len(completions):
        raise RewardError(f"the reward function {name} returned {len(values)} scores for {len(completions)} "
                          "completions; return one float per completion")
    bad = [index for index, value in enumerate(values) if not math.isfinite(value)]
    if bad:
        raise RewardError(f"the reward function {name} returned {values[bad[0]]} for completion {bad[0]} "
                          f"({completions[bad[0]]!r:.80}); scores must be finite")
    return torch.tensor(values, dtype=torch.float32)


def reward_model_function(reward_model: torch.nn.Module) -> RewardFn:
    """Score each (prompt, completion) as the conversation ``[user: prompt, assistant: completion]`` with a
    ``birdie rm`` export (loaded with ``birdie.load``, which builds it as a ``RewardModel``)."""

    def score(prompts: list[str], completions: list[str]) -> list[float]:
        chats = [[{"role": "user", "content": p}, {"role": "assistant", "content": c if c.strip() else " "}]
                 for p, c in zip(prompts, completions)]
        return reward_model.score(chats).tolist()

    return score


class StoryAnswerReward:
    """The embedded checkable reward for a story question's prompt, graded so that a tiny random policy can climb
    it: each character of the completion earns 1 where it is the answer's character at that position, 0.75 where
    it occurs elsewhere in the answer (any case), 0.5 where it is another ASCII letter or a space, 0 otherwise (a
    special token counts as one character earning 0); the sum is divided by ``max(len(answer), len(completion))``.
    The answer exactly (then EOS) earns 1.0; longer completions are diluted, shorter ones lose the missing
    characters. A random byte-level policy earns about 0.05, a policy that writes letters about 0.5."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        return [self.one(self.answers[prompt], completion) for prompt, completion in zip(prompts, completions)]

    @staticmethod
    def one(answer: str, completion: str) -> float:
        text = _SPECIAL.sub("\0", completion).strip()
        folded = answer.lower()
        total = 0.0
        for position, ch in enumerate(text):
            if position < len(answer) and ch == answer[position]:
                total += 1.0
            elif ch.lower() in folded:
                total += 0.75
            elif ch == " " or (ch.isascii() and ch.isalpha()):
                total += 0.5
        return total / max(len(answer), len(text), 1)
