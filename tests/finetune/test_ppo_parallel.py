"""2 gloo processes, each with half of the same rollouts, make the same PPO update as one process with all."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from birdie.finetune.ppo import PPOConfig, PPOTrainer, Rollouts
from birdie.finetune.rollout import prompt_ids, response_mask
from birdie.models import create
from birdie.tokenizers import ByteTokenizer

TEXTS = ["Say a", "Say b", "Who is it?", "Where?"]
R = 2


def trainer_and_rollouts(algorithm: str, groups: list[int]) -> tuple[PPOTrainer, Rollouts]:
    """A seeded trainer and fixed rollouts (responses with early EOS, random scores) of the prompts ``groups``."""
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    policy = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    config = PPOConfig(algorithm=algorithm, rollouts_per_prompt=R, max_new_tokens=5, lr=1e-3, critic_lr=1e-3,
                       ppo_epochs=2, whiten_rewards=True)
    trainer = PPOTrainer(policy, tokenizer, lambda p, c: [0.0] * len(c), config)
    generator = torch.Generator().manual_seed(1)
    responses = torch.randint(0, 256, (len(TEXTS) * R, 5), generator=generator)
    responses[::3, 3] = trainer.eos  # some rollouts end early: padded positions after their EOS
    scores = torch.randn(len(TEXTS) * R, generator=generator)
    rows = torch.cat([torch.arange(g * R, (g + 1) * R) for g in groups])
    prompts = [torch.tensor(prompt_ids([{"role": "user", "content": TEXTS[g]}], tokenizer)) for g in groups]
    part = responses[rows]
    return trainer, Rollouts(prompts, part, response_mask(part, trainer.eos), scores[rows], scores[rows], [])


def worker(rank: int, store: str, algorithm: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    trainer, rollouts = trainer_and_rollouts(algorithm, [2 * rank, 2 * rank + 1])
    trainer.train_on(rollouts)
    if rank == 0:
        torch.save({k: v.clone() for k, v in trainer.policy.state_dict().items()}, out)
    dist.destroy_process_group()


@pytest.mark.multiprocess
@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_two_processes_match_one(tmp_path, algorithm):
    single, rollouts = trainer_and_rollouts(algorithm, [0, 1, 2, 3])
    start = {k: v.clone() for k, v in single.policy.state_dict().items()}
    single.train_on(rollouts)
    mp.spawn(worker, args=(str(tmp_path / "store"), algorithm, str(tmp_path / "two.pt")), nprocs=2, join=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    moved = max(float((single.policy.state_dict()[k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-4  # the update did something
    assert max(float((single.policy.state_dict()[k] - two[k]).abs().max()) for k in two) < 1e-5
