"""A ``birdie ppo`` run: prompts, the reward, the step loop, metrics JSONL, checkpoints with exact resume, export.

The prompts of step ``s`` are positions ``s * prompts_per_step ...`` of a permutation of the prompt set seeded by
``(seed, pass)``, so the prompt position follows from the step. Checkpoints go through ``birdie train``'s owners
(:mod:`birdie.train.checkpoint`): ``OUT/checkpoints/step_NNNNNN/`` holds the policy (``model``), the critic and
both optimizers as DCP shards, the step (``shared.pt``) and each rank's sampling generator (``rank_R.pt``), with the
BLAKE2b ``manifest.json`` verified before anything is read back, so a resumed run samples and updates exactly as
the uninterrupted one and a damaged file is refused by name.

Under ``torchrun`` each rank takes its slice of the step's prompts (``prompts_per_step`` must divide by the number
of processes; gloo on CPU, NCCL on GPUs); with ``distributed.mesh`` fsdp > 1 the policy, reference and critic are
sharded with FSDP2 (replicated otherwise); rank 0 writes the metrics and the export.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from birdie.finetune.datasets import DataError, read_jsonl
from birdie.finetune.ppo import PPOTrainer
from birdie.finetune.ppo_config import PPORunConfig
from birdie.finetune.rewards import RewardFn, StoryAnswerReward, load_callable, reward_model_function
from birdie.finetune.rollout import ValueModel, check_prompts, prompt_ids
from birdie.train import checkpoint as ckpt
from birdie.train.config import ConfigError
from birdie.train.distributed import Runtime, apply_parallelism, joined_runtime
from birdie.train.stateful import ModelState, OptimizerState, TrainingState


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


def _policy(config: PPORunConfig) -> tuple[torch.nn.Module, Any]:
    from birdie.models import create
    from birdie.tokenizers import ByteTokenizer
    from birdie.train.export import load

    pretrained = config.model.pretrained
    for candidate in (pretrained, "runs/finetune/sft/export"):
        if candidate and Path(candidate).exists():
            return load(candidate)
    if pretrained:
        raise ValueError(f"model.pretrained={pretrained}: no such export")
    print("no --pretrained and no runs/finetune/sft/export (birdie demo finetune): starting from a tiny random "
          "Transformer with the byte tokenizer")
    tokenizer = ByteTokenizer()
    return create("transformer-tiny", vocab_size=tokenizer.vocab_size), tokenizer


def _reward_model(path: str) -> torch.nn.Module:
    """The ``birdie rm`` export at ``path`` (``birdie.load`` builds it as a RewardModel), frozen."""
    from birdie.finetune.reward_model import RewardModel
    from birdie.train.export import load

    if not Path(path).exists():
        raise ValueError(f"reward.model={path}: no such export; train one with birdie rm")
    model, _ = load(path)
    if not isinstance(model, RewardModel):
        raise ValueError(f"reward.model={path} is a language-model export, not a reward model; pass the export of "
                         "birdie rm (its training.json says head: reward)")
    return model.requires_grad_(False)


def build(config: PPORunConfig, runtime: Runtime) -> tuple[PPOTrainer, list[torch.Tensor], list[str]]:
    """The trainer, the prompt ids and the prompt texts the reward sees (the last user turn)."""
    from birdie.finetune.story_qa import story_questions

    torch.manual_seed(config.ppo.seed)  # the critic's fresh head: one run's initialisation, whatever ran before
    policy, tokenizer = _policy(config)
    reward_model = None
    if config.reward.model:
        reward_model = _reward_model(config.reward.model)
        reward: RewardFn = reward_model_function(reward_model)
    elif config.reward.callable:
        reward = load_callable(config.reward.callable)
    if config.data.paths:
        conversations = [messages for path in config.data.paths for messages in read_prompts(path)]
    else:
        questions = story_questions("train", config.data.embedded_prompts, config.ppo.seed)
        conversations = [[{"role": "user", "content": q.prompt}] for q in questions]
        if not (config.reward.model or config.reward.callable):
            reward = StoryAnswerReward({q.prompt: q.answer for q in questions})
    ids = [prompt_ids(messages, tokenizer, f"prompt {index}") for index, messages in enumerate(conversations)]
    check_prompts(ids, config.ppo.max_new_tokens, getattr(policy.config, "max_seq_len", None))
    critic = None
    if config.ppo.algorithm == "ppo":
        init = config.model.critic_init
        use_rm = init == "reward_model" or (init == "auto" and reward_model is not None)
        critic = ValueModel.from_reward_model(reward_model) if use_rm else ValueModel.from_policy(policy)
    if reward_model is not None:
        reward_model.to(runtime.device)
    trainer = PPOTrainer(policy.to(runtime.device).train(), tokenizer, reward, config.ppo, critic, _sharder(runtime))
    return trainer, [torch.from_numpy(i).to(runtime.device) for i in ids], [m[-1]["content"] for m in conversations]


def _sharder(runtime: Runtime) -> Callable[[torch.nn.Module], torch.nn.Module] | None:
    """FSDP2 per block and at the root when the mesh has fsdp > 1; None (replicated models, gradients all-reduced
    by the trainer) otherwise."""
    if runtime.tp > 1:
        raise ConfigError(f"distributed.mesh={runtime.dp},{runtime.fsdp},{runtime.tp}: birdie ppo has no tensor "
                          "parallelism; use tp=1 (dp for replicas, fsdp to shard the models)")
    if runtime.fsdp == 1:
        return None
    return lambda model: apply_parallelism(model, runtime)


def step_prompts(count: int, per_step: int, step: int, seed: int) -> list[int]:
    """Indices of the prompts of ``step``: consecutive slices of a permutation per pass (drop-last)."""
    per_pass = max(count // per_step, 1)
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + step // per_pass))
    start = (step % per_pass) * per_step
    return [int(i) for i in permutation[start:start + per_step]] if count >= per_step else \
        [int(permutation[i % count]) for i in range(per_step)]


class _Progress:
    """The step, as a shared checkpoint owner (the prompt position follows from it)."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


class _GeneratorState:
    """This rank's sampling generator, as a per-rank checkpoint owner."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["state"])


def training_state(trainer: PPOTrainer, progress: _Progress) -> TrainingState:
    """The run's owners: policy (as ``model``, so the checkpoint loads as the policy), critic and both optimizers
    (DCP), the step (shared) and the sampling generator (per rank)."""
    sharded: dict[str, Any] = {"model": ModelState(trainer.policy),
                               "optim": OptimizerState(trainer.policy, trainer.policy_optimizer)}
    if trainer.critic is not None:
        sharded |= {"critic": ModelState(trainer.critic),
                    "critic_optim": OptimizerState(trainer.critic, trainer.critic_optimizer)}
    return TrainingState(sharded=sharded, shared={"progress": progress},
                         per_rank={"sampler": _GeneratorState(trainer.generator)})


def _resume(config: PPORunConfig, states: TrainingState, runtime: Runtime) -> None:
    out = Path(config.train.out)
    try:
        path = ckpt.resolve_checkpoint(config.checkpoint.resume, out)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from None
    # DCP's .metadata is a pickle: a checkpoint of this run directory is the run's own, any other needs trust
    own = path.resolve().is_relative_to((out / "checkpoints").resolve())
    restored = ckpt.load_checkpoint(path, states, runtime, trusted=own or config.checkpoint.trust_checkpoint)
    if not restored.per_rank:
        raise ConfigError(f"{path} was written by {restored.world_size} processes; resume it with as many (this run "
                          f"has {runtime.world_size}): each rank's sampling generator continues")


def _keep_metrics(path: Path, step: int) -> None:
    """Cut ``metrics.jsonl`` back to the lines of steps up to ``step`` (0: empty), so a resumed run appends."""
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step] \
        if step and path.exists() else []
    path.write_text("".join(line + "\n" for line in kept))


def run_ppo(config: PPORunConfig) -> list[dict[str, float]]:
    """Run ``config`` to ``train.steps`` (under torchrun or in one process); returns the metrics of the steps run
    in this call."""
    with joined_runtime(config.distributed, config.train.device) as runtime:
        return _run(config, runtime)


def _run(config: PPORunConfig, runtime: Runtime) -> list[dict[str, float]]:
    out, loop = Path(config.train.out), config.train
    if loop.prompts_per_step % runtime.world_size:
        raise ConfigError(f"train.prompts_per_step={loop.prompts_per_step} must be divisible by the "
                          f"{runtime.world_size} processes")
    if runtime.is_main:
        out.mkdir(parents=True, exist_ok=True)
    trainer, prompts, texts = build(config, runtime)
    progress_state = _Progress()
    states = training_state(trainer, progress_state)
    if config.checkpoint.resume:
        _resume(config, states, runtime)
    step = progress_state.step
    metrics_path = out / "metrics.jsonl"
    if runtime.is_main:
        _keep_metrics(metrics_path, step)
    progress = None
    if config.logging.progress and runtime.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(total=loop.steps, initial=step, desc="ppo", unit="step", dynamic_ncols=True)
    history = []
    per_rank = loop.prompts_per_step // runtime.world_size
    while step < loop.steps:
        started = time.perf_counter()
        chosen = step_prompts(len(prompts), loop.prompts_per_step, step, config.ppo.seed)
        chosen = chosen[runtime.rank * per_rank:(runtime.rank + 1) * per_rank]
        metrics = trainer.step([prompts[i] for i in chosen], [texts[i] for i in chosen])
        step += 1
        metrics |= {"step": step, "time/step_s": time.perf_counter() - started}
        if runtime.is_main:
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(metrics) + "\n")
        history.append(metrics)
        if progress is not None:
            progress.set_postfix(reward=f"{metrics['objective/scores']:.3f}", kl=f"{metrics['objective/kl']:.3f}",
                                 refresh=False)
            progress.update(1)
        every = config.checkpoint.save_every
        if (every and step % every == 0) or step == loop.steps:
            progress_state.step = step
            ckpt.save_checkpoint(out / "checkpoints", step, states, runtime, config.checkpoint.milestone_every)
    if progress is not None:
        progress.close()
    if config.logging.plots and runtime.is_main:
        from birdie.finetune.plots import plot_ppo

        plot_ppo(out)
    if config.checkpoint.export:
        from birdie.train.export import export_model

        export_model(out / "export", trainer.policy, trainer.policy.config.to_dict(), trainer.tokenizer,
                     is_main=runtime.is_main)
    runtime.barrier()
    return history
