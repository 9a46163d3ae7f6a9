"""A ``birdie ppo`` run: prompts, the reward, the step loop, metrics JSONL, checkpoints with exact resume, export.

The prompts of step ``s`` are positions ``s * prompts_per_step ...`` of a permutation of the prompt set seeded by
``(seed, pass)``, so the prompt position follows from the step. A checkpoint (``OUT/checkpoints/step_N.pt``, read
back with ``weights_only=True``) holds the policy, critic, both optimizers, the sampling generator and the step, so
a resumed run samples and updates exactly as the uninterrupted one.

Under ``torchrun`` each rank takes its slice of the step's prompts (``prompts_per_step`` must divide by the number
of processes; gloo on CPU, NCCL on GPUs); rank 0 writes the metrics, checkpoints (with every rank's generator) and
the export.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from birdie.finetune.datasets import DataError, read_jsonl
from birdie.finetune.ppo import PPOConfig, PPOTrainer
from birdie.finetune.rewards import RewardFn, StoryAnswerReward, load_callable, reward_model_function
from birdie.finetune.rollout import ValueModel, check_prompts, prompt_ids


@dataclass
class RunConfig:
    """What surrounds the PPO step: where the models and prompts come from and how long to run."""

    pretrained: str | None = None
    reward_model: str | None = None
    reward_callable: str | None = None
    data: str | None = None
    steps: int = 40
    prompts_per_step: int = 4
    embedded_prompts: int = 64
    out: str = "runs/ppo"
    save_every: int = 0
    resume: bool = False
    progress: bool = True
    critic_init: str = "auto"
    device: str = "auto"
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.prompts_per_step < 1 or self.embedded_prompts < 1:
            raise ValueError("steps, prompts_per_step and embedded_prompts must be >= 1")
        if self.reward_model and self.reward_callable:
            raise ValueError("give one reward: --reward-model or --reward.callable, not both")
        if self.data and not (self.reward_model or self.reward_callable):
            raise ValueError(f"--data {self.data}: custom prompts need a reward: --reward-model RM_EXPORT or "
                             "--reward.callable module:function")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={self.device!r} must be 'auto', 'cpu' or 'cuda'")
        if self.critic_init not in ("auto", "reward_model", "policy"):
            raise ValueError("critic_init must be 'auto', 'reward_model' or 'policy'")


def read_prompts(path: str) -> list[list[dict[str, str]]]:
    """Conversations ending in a user turn from JSONL rows: ``messages`` (a final assistant turn is dropped, as
    EasyLM's ``tulu_prompt`` does) or ``prompt`` (a string)."""
    conversations = []
    for where, row in read_jsonl(path):
        if "messages" in row and isinstance(row["messages"], list) and row["messages"]:
            messages = row["messages"]
            if isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
                messages = messages[:-1]
        elif isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        else:
            raise DataError(f"{where}: a prompt row needs 'messages' (a non-empty list) or 'prompt' (a string); "
                            f"found keys {sorted(row)}")
        if not messages or not str(messages[-1].get("content", "")).strip():
            raise DataError(f"{where}: the prompt is empty; remove the row")
        conversations.append(messages)
    return conversations


def _policy(config: RunConfig) -> tuple[torch.nn.Module, Any]:
    from birdie.models import create
    from birdie.tokenizers import ByteTokenizer
    from birdie.train.export import load

    for candidate in (config.pretrained, "runs/finetune/sft/export"):
        if candidate and Path(candidate).exists():
            return load(candidate)
    if config.pretrained:
        raise ValueError(f"--pretrained {config.pretrained}: no such export")
    print("no --pretrained and no runs/finetune/sft/export (birdie demo finetune): starting from a tiny random "
          "Transformer with the byte tokenizer")
    tokenizer = ByteTokenizer()
    return create("transformer-tiny", vocab_size=tokenizer.vocab_size), tokenizer


def build(config: RunConfig) -> tuple[PPOTrainer, list[torch.Tensor], list[str]]:
    """The trainer, the prompt ids and the prompt texts the reward sees (the last user turn)."""
    from birdie.finetune.story_qa import story_questions

    torch.manual_seed(config.ppo.seed)  # the critic's fresh head: one run's initialisation, whatever ran before
    policy, tokenizer = _policy(config)
    reward_model = None
    if config.reward_model:
        from birdie.finetune.reward_model import load_reward_model

        reward_model, _ = load_reward_model(config.reward_model)
        reward: RewardFn = reward_model_function(reward_model)
    elif config.reward_callable:
        reward = load_callable(config.reward_callable)
    if config.data:
        conversations = read_prompts(config.data)
    else:
        questions = story_questions("train", config.embedded_prompts, config.ppo.seed)
        conversations = [[{"role": "user", "content": q.prompt}] for q in questions]
        if not (config.reward_model or config.reward_callable):
            reward = StoryAnswerReward({q.prompt: q.answer for q in questions})
    ids = [prompt_ids(messages, tokenizer, f"prompt {index}") for index, messages in enumerate(conversations)]
    check_prompts(ids, config.ppo.max_new_tokens, getattr(policy.config, "max_seq_len", None))
    critic = None
    if config.ppo.algorithm == "ppo":
        use_rm = config.critic_init == "reward_model" or (config.critic_init == "auto" and reward_model is not None)
        if use_rm and reward_model is None:
            raise ValueError("critic_init=reward_model needs --reward-model")
        critic = ValueModel.from_reward_model(reward_model) if use_rm else ValueModel.from_policy(policy)
    device = _device(config)
    if reward_model is not None:
        reward_model.to(device)
    trainer = PPOTrainer(policy.to(device).train(), tokenizer, reward, config.ppo, critic)
    return trainer, [torch.from_numpy(i).to(device) for i in ids], [m[-1]["content"] for m in conversations]


def _device(config: RunConfig) -> torch.device:
    if config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def _init_distributed(config: RunConfig) -> tuple[int, int]:
    """``(rank, world size)``; starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1
    if config.prompts_per_step % world:
        raise ValueError(f"--prompts-per-step {config.prompts_per_step} must be divisible by the {world} processes")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if _device(config).type == "cuda" else "gloo")
    return dist.get_rank(), world


def step_prompts(count: int, per_step: int, step: int, seed: int) -> list[int]:
    """Indices of the prompts of ``step``: consecutive slices of a permutation per pass (drop-last)."""
    per_pass = max(count // per_step, 1)
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + step // per_pass))
    start = (step % per_pass) * per_step
    return [int(i) for i in permutation[start:start + per_step]] if count >= per_step else \
        [int(permutation[i % count]) for i in range(per_step)]


def _state(trainer: PPOTrainer, step: int) -> dict[str, Any]:
    generators = [trainer.generator.get_state()]
    if trainer.world > 1:
        generators = [torch.empty(0)] * trainer.world
        dist.all_gather_object(generators, trainer.generator.get_state())
    state = {"step": step, "policy": trainer.policy.state_dict(), "policy_opt": trainer.policy_optimizer.state_dict(),
             "generators": generators}
    if trainer.critic is not None:
        state |= {"critic": trainer.critic.state_dict(), "critic_opt": trainer.critic_optimizer.state_dict()}
    return state


def _restore(trainer: PPOTrainer, path: Path) -> int:
    state = torch.load(path, weights_only=True, map_location=trainer.device)
    trainer.policy.load_state_dict(state["policy"])
    trainer.policy_optimizer.load_state_dict(state["policy_opt"])
    if len(state["generators"]) != trainer.world:
        raise ValueError(f"{path} was written by {len(state['generators'])} processes; resume it with as many "
                         f"(this run has {trainer.world})")
    trainer.generator.set_state(state["generators"][trainer.rank])
    if trainer.critic is not None:
        trainer.critic.load_state_dict(state["critic"])
        trainer.critic_optimizer.load_state_dict(state["critic_opt"])
    return int(state["step"])


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    return found[-1] if found else None


def run_ppo(config: RunConfig) -> list[dict[str, float]]:
    """Run ``config`` to ``config.steps``; returns the metrics of the steps run in this call."""
    out = Path(config.out)
    rank, world = _init_distributed(config)
    main = rank == 0
    if main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    trainer, prompts, texts = build(config)
    step = 0
    if config.resume:
        path = latest_checkpoint(out)
        if path is None:
            raise ValueError(f"--resume: no checkpoint under {out / 'checkpoints'}")
        step = _restore(trainer, path)
    metrics_path = out / "metrics.jsonl"
    if main:
        kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["step"] <= step] \
            if step and metrics_path.exists() else []
        metrics_path.write_text("".join(line + "\n" for line in kept))
    progress = None
    if config.progress and main:
        from tqdm.auto import tqdm

        progress = tqdm(total=config.steps, initial=step, desc="ppo", unit="step", dynamic_ncols=True)
    history = []
    per_rank = config.prompts_per_step // world
    with open(metrics_path if main else os.devnull, "a") as handle:
        while step < config.steps:
            started = time.perf_counter()
            chosen = step_prompts(len(prompts), config.prompts_per_step, step, config.ppo.seed)
            chosen = chosen[rank * per_rank:(rank + 1) * per_rank]
            metrics = trainer.step([prompts[i] for i in chosen], [texts[i] for i in chosen])
            step += 1
            metrics |= {"step": step, "time/step_s": time.perf_counter() - started}
            handle.write(json.dumps(metrics) + "\n")
            handle.flush()
            history.append(metrics)
            if progress is not None:
                progress.set_postfix(reward=f"{metrics['objective/scores']:.3f}", kl=f"{metrics['objective/kl']:.3f}",
                                     refresh=False)
                progress.update(1)
            if (config.save_every and step % config.save_every == 0) or step == config.steps:
                state = _state(trainer, step)
                if main:
                    torch.save(state, out / "checkpoints" / f"step_{step}.pt")
    if progress is not None:
        progress.close()
    from birdie.train.export import export_model

    export_model(out / "export", trainer.policy, trainer.policy.config.to_dict(), trainer.tokenizer, is_main=main)
    if world > 1:
        dist.barrier()
    return history
