"""2 gloo processes, each with half of the same rollouts, make the same PPO update as one process with all: with
replicated models (gradients all-reduced) and with FSDP2-sharded policy, reference and critic (whose rollouts also
sample the same tokens as one process)."""

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


def trainer_and_rollouts(algorithm: str, groups: list[int], shard=None) -> tuple[PPOTrainer, Rollouts]:
    """A seeded trainer and fixed rollouts (responses with early EOS, random scores) of the prompts ``groups``."""
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    policy = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    config = PPOConfig(algorithm=algorithm, rollouts_per_prompt=R, max_new_tokens=5, lr=1e-3, critic_lr=1e-3,
                       ppo_epochs=2, whiten_rewards=True)
    trainer = PPOTrainer(policy, tokenizer, lambda p, c: [0.0] * len(c), config, shard=shard)
    generator = torch.Generator().manual_seed(1)
    responses = torch.randint(0, 256, (len(TEXTS) * R, 5), generator=generator)
    responses[::3, 3] = trainer.eos  # some rollouts end early: padded positions after their EOS
    scores = torch.randn(len(TEXTS) * R, generator=generator)
    rows = torch.cat([torch.arange(g * R, (g + 1) * R) for g in groups])
    prompts = [torch.tensor(prompt_ids([{"role": "user", "content": TEXTS[g]}], tokenizer)) for g in groups]
    part = responses[rows]
    return trainer, Rollouts(prompts, part, response_mask(part, trainer.eos), scores[rows], scores[rows], [])


def fsdp_sharder(rank: int):
    """FSDP2 over a 2-process ``fsdp`` mesh, as ``birdie ppo --distributed.mesh 1,-1,1`` builds it."""
    from torch.distributed.device_mesh import init_device_mesh

    from birdie.train.distributed import MESH_DIMS, Runtime, apply_parallelism

    mesh = init_device_mesh("cpu", (1, 2, 1), mesh_dim_names=MESH_DIMS)
    runtime = Runtime(rank, 2, rank, torch.device("cpu"), 1, 2, 1, mesh)
    return lambda model: apply_parallelism(model, runtime)


def full_policy(trainer: PPOTrainer) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(trainer.policy, options=StateDictOptions(full_state_dict=True))
    return {k: v.clone() for k, v in state.items()}


def first_rollout(trainer: PPOTrainer) -> torch.Tensor:
    prompt = torch.tensor(prompt_ids([{"role": "user", "content": TEXTS[0]}], trainer.tokenizer))
    return trainer.rollout([prompt], [TEXTS[0]]).responses


def worker(rank: int, store: str, algorithm: str, fsdp: bool, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    shard = fsdp_sharder(rank) if fsdp else None
    trainer, rollouts = trainer_and_rollouts(algorithm, [2 * rank, 2 * rank + 1], shard)
    sampled = first_rollout(trainer) if fsdp else None  # every rank gathers the sharded policy to sample
    trainer.train_on(rollouts)
    policy = full_policy(trainer)  # a collective under FSDP: every rank calls it
    if rank == 0:
        torch.save({"policy": policy, "sampled": sampled}, out)
    dist.destroy_process_group()


@pytest.mark.multiprocess
@pytest.mark.parametrize("algorithm, fsdp", [
    ("ppo", True),
    pytest.param("ppo", False, marks=pytest.mark.slow),
    pytest.param("grpo", False, marks=pytest.mark.slow),
    pytest.param("grpo", True, marks=pytest.mark.slow),
])
def test_two_processes_match_one(tmp_path, algorithm, fsdp):
    single, rollouts = trainer_and_rollouts(algorithm, [0, 1, 2, 3])
    start = {k: v.clone() for k, v in single.policy.state_dict().items()}
    sampled = first_rollout(single) if fsdp else None
    single.train_on(rollouts)
    mp.spawn(worker, args=(str(tmp_path / "store"), algorithm, fsdp, str(tmp_path / "two.pt")), nprocs=2, join=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    moved = max(float((single.policy.state_dict()[k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-4  # the update did something
    assert two["policy"].keys() == start.keys()
    assert max(float((single.policy.state_dict()[k] - v).abs().max()) for k, v in two["policy"].items()) < 1e-5
    if fsdp:
        assert torch.equal(two["sampled"], sampled)  # rank 0 samples with the single process's generator stream
