"""A ``birdie ppo`` run: prompts, the reward, the step loop, metrics JSONL, checkpoints with exact resume, export.

The prompts of step ``s`` are positions ``s * prompts_per_step ...`` of a permutation of the prompt set seeded by
``(seed, pass)``, so the prompt position follows from the step. A checkpoint (``OUT/checkpoints/step_N.pt``, read
back with ``weights_only=True``) holds the policy, critic, both optimizers, the sampling generator and the step, so
a resumed run samples and updates exactly as the uninterrupted one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

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
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.prompts_per_step < 1 or self.embedded_prompts < 1:
            raise ValueError("steps, prompts_per_step and embedded_prompts must be >= 1")
        if self.reward_model and self.reward_callable:
            raise ValueError("give one reward: --reward-model or --reward.callable, not both")
        if self.data and not (self.reward_model or self.reward_callable):
            raise ValueError(f"--data {self.data}: custom prompts need a reward: --reward-model RM_EXPORT or "
                             "--reward.callable module:function")
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
    trainer = PPOTrainer(policy.train(), tokenizer, reward, config.ppo, critic)
    return trainer, [torch.from_numpy(i) for i in ids], [m[-1]["content"] for m in conversations]


def step_prompts(count: int, per_step: int, step: int, seed: int) -> list[int]:
    """Indices of the prompts of ``step``: consecutive slices of a permutation per pass (drop-last)."""
    per_pass = max(count // per_step, 1)
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + step // per_pass))
    start = (step % per_pass) * per_step
    return [int(i) for i in permutation[start:start + per_step]] if count >= per_step else \
        [int(permutation[i % count]) for i in range(per_step)]


def _state(trainer: PPOTrainer, step: int) -> dict[str, Any]:
    state = {"step": step, "policy": trainer.policy.state_dict(), "policy_opt": trainer.policy_optimizer.state_dict(),
             "generator": trainer.generator.get_state()}
    if trainer.critic is not None:
        state |= {"critic": trainer.critic.state_dict(), "critic_opt": trainer.critic_optimizer.state_dict()}
    return state


def _restore(trainer: PPOTrainer, path: Path) -> int:
    state = torch.load(path, weights_only=True)
    trainer.policy.load_state_dict(state["policy"])
    trainer.policy_optimizer.load_state_dict(state["policy_opt"])
    trainer.generator.set_state(state["generator"])
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
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    trainer, prompts, texts = build(config)
    step = 0
    if config.resume:
        path = latest_checkpoint(out)
        if path is None:
            raise ValueError(f"--resume: no checkpoint under {out / 'checkpoints'}")
        step = _restore(trainer, path)
    metrics_path = out / "metrics.jsonl"
    kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["step"] <= step] \
        if step and metrics_path.exists() else []
    metrics_path.write_text("".join(line + "\n" for line in kept))
    progress = None
    if config.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=config.steps, initial=step, desc="ppo", unit="step", dynamic_ncols=True)
    history = []
    with metrics_path.open("a") as handle:
        while step < config.steps:
            started = time.perf_counter()
            chosen = step_prompts(len(prompts), config.prompts_per_step, step, config.ppo.seed)
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
                torch.save(_state(trainer, step), out / "checkpoints" / f"step_{step}.pt")
    if progress is not None:
        progress.close()
    from birdie.train.export import export_model

    export_model(out / "export", trainer.policy, trainer.policy.config.to_dict(), trainer.tokenizer)
    return history
