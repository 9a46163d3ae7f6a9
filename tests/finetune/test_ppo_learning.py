"""PPO and GRPO raise a checkable reward on a tiny random policy while the KL to the reference stays bounded."""

import re

import pytest
import torch

from birdie.finetune.ppo import PPOConfig, PPOTrainer
from birdie.finetune.rollout import prompt_ids
from birdie.models import create
from birdie.tokenizers import ByteTokenizer

TEXTS = ["Say a", "Say b"]
STEPS = 12
#: Summed per-sequence KL (nats over at most 4 tokens) the runs must stay under: with kl_coef 0.05 a run that
#: collapsed onto one token would pass ~20 (4 tokens x log 260 sampled at temperature 1).
KL_BOUND = 8.0


def lowercase_letters(prompts, completions):
    """The share of the 4 response positions that are ASCII lower-case letters (about 1 in 10 at random; special
    tokens, rendered as names like <|mask_3|>, are removed first so they cannot earn it)."""
    plain = (re.sub(r"<\|[^|]*\|>", "", completion) for completion in completions)
    return [sum("a" <= ch <= "z" for ch in text) / 4 for text in plain]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_reward_rises_with_bounded_kl(algorithm):
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    policy = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    config = PPOConfig(algorithm=algorithm, max_new_tokens=4, rollouts_per_prompt=8, temperature=1.0, lr=1e-2,
                       critic_lr=1e-2, ppo_epochs=2, kl_coef=0.05)
    trainer = PPOTrainer(policy, tokenizer, lowercase_letters, config)
    prompts = [torch.tensor(prompt_ids([{"role": "user", "content": t}], tokenizer)) for t in TEXTS]
    history = [trainer.step(prompts, TEXTS) for _ in range(STEPS)]
    scores = [m["objective/scores"] for m in history]
    start, end = sum(scores[:3]) / 3, sum(scores[-3:]) / 3
    assert end > start + 0.15, scores
    assert max(m["objective/kl"] for m in history) < KL_BOUND
