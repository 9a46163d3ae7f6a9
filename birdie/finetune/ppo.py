"""The PPO loop (and GRPO/RLOO as options of it) over birdie models (EasyLM §3.3, TRL's PPO; see
``docs/finetuning.md``).

One :meth:`PPOTrainer.step` takes a list of prompts and:

1. samples ``rollouts_per_prompt`` responses per prompt with cached generation (:mod:`birdie.finetune.rollout`);
2. scores them (reward function or reward model), subtracts ``missing_eos_penalty`` from responses without EOS,
   then applies ``reward_gain`` / ``reward_bias``;
3. computes, once per rollout batch (standard PPO), the old log-probs, the frozen reference's log-probs, the
   critic's values and the per-token KL (k1 or k3); PPO shapes rewards ``-kl_coef * kl_t`` plus the score at the
   last token and runs GAE, GRPO/RLOO give every token of a response its sequence advantage from the score minus
   ``kl_coef * sum_t kl_t`` (no critic); advantages are whitened over the whole batch;
4. runs ``ppo_epochs`` passes over shuffled mini-batches of ``mini_batch_prompts`` prompts with the clipped
   policy loss and (PPO) the clipped value loss, each model with its own AdamW (EasyLM: two optimizers).

Under ``torchrun`` (a process group initialised) every rank rolls out its own prompts; advantages and rewards are
whitened with the statistics of all ranks, losses are normalised by the global token count and gradients are
averaged (by FSDP2 when the models are sharded, else here), so the update equals one process holding every
rank's rollouts.

``easylm_compat=True`` reproduces EasyLM's quirk (§3.4): old log-probs, values and advantages are recomputed with
the current parameters at every mini-batch (so the ratio is 1 and the clip never acts) and whitened per
mini-batch.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from birdie.checks import check, option
from birdie.finetune import rl_math
from birdie.finetune.rewards import RewardFn, checked_scores
from birdie.finetune.rollout import (ValueModel, entropy, gathered, has_eos, response_logits, response_mask, sample,
                                     token_logps)

ALGORITHMS = ("ppo", "grpo", "rloo")


@dataclass
class PPOConfig:
    """Knobs of :class:`PPOTrainer` (the library defaults follow EasyLM/TRL for real models; ``birdie ppo`` sizes
    its own for the tiny CPU default run, see :mod:`birdie.finetune.ppo_config`); the docs give each one's EasyLM
    and TRL name."""

    algorithm: Literal["ppo", "grpo", "rloo"] = option("ppo", "ppo (critic + GAE), grpo or rloo (group baselines, no "
                                                             "critic)")
    rollouts_per_prompt: int = option(4, "responses sampled per prompt (TRL num_generations)")
    max_new_tokens: int = option(16, "response length cap (EasyLM max_continuation_len)")
    temperature: float = option(0.7, "sampling temperature")
    top_p: float | None = option(None, "nucleus sampling (none = off)")
    kl_coef: float = option(0.05, "per-token KL penalty against the reference (TRL kl_coef / beta)")
    kl_estimator: Literal["k1", "k3"] = option("k1", "k1 = logp - ref_logp, k3 = r - 1 - log r")
    gamma: float = option(1.0, "GAE discount")
    lam: float = option(0.95, "GAE lambda")
    clip_range: float = option(0.2, "policy ratio clip (TRL cliprange)")
    clip_range_value: float = option(0.2, "value clip (TRL cliprange_value)")
    vf_coef: float = option(0.1, "value-loss weight")
    ppo_epochs: int = option(1, "passes over each rollout batch (TRL num_ppo_epochs)")
    mini_batch_prompts: int = option(0, "prompts per mini-batch (0 = the whole step)")
    reward_gain: float = option(1.0, "score * reward_gain + reward_bias")
    reward_bias: float = option(0.0, "score * reward_gain + reward_bias")
    whiten_rewards: bool = option(False, "whiten the shaped per-token rewards (mean kept)")
    missing_eos_penalty: float = option(0.0, "subtracted from the score of a response without EOS")
    easylm_compat: bool = option(False, "recompute old log-probs, values and advantages per mini-batch, as EasyLM")
    lr: float = option(1e-5, "policy AdamW learning rate")
    critic_lr: float = option(1e-5, "critic AdamW learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay (both models)")
    grad_clip: float = option(1.0, "clip each model's gradient norm (0 = off)")
    seed: int = option(0, "seed of the sampling, the prompt order and the critic head")

    def __post_init__(self) -> None:
        check(self, "algorithm", self.algorithm in ALGORITHMS, f"must be one of {ALGORITHMS}")
        check(self, "rollouts_per_prompt", self.rollouts_per_prompt >= 1, "must be >= 1")
        check(self, "rollouts_per_prompt", self.algorithm == "ppo" or self.rollouts_per_prompt >= 2,
              f"is too few: algorithm={self.algorithm} compares rollouts of a prompt, set rollouts_per_prompt >= 2")
        check(self, "max_new_tokens", self.max_new_tokens >= 1, "must be >= 1")
        check(self, "temperature", self.temperature > 0, "must be > 0 (PPO needs sampled rollouts)")
        check(self, "top_p", self.top_p is None or 0 < self.top_p <= 1, "must be in (0, 1]")
        check(self, "kl_estimator", self.kl_estimator in ("k1", "k3"), "must be 'k1' or 'k3'")
        check(self, "kl_coef", self.kl_coef >= 0, "must be >= 0")
        check(self, "gamma", 0 <= self.gamma <= 1, "must be in [0, 1]")
        check(self, "lam", 0 <= self.lam <= 1, "must be in [0, 1]")
        check(self, "clip_range", self.clip_range > 0, "must be > 0")
        check(self, "clip_range_value", self.clip_range_value > 0, "must be > 0")
        check(self, "ppo_epochs", self.ppo_epochs >= 1, "must be >= 1")
        check(self, "mini_batch_prompts", self.mini_batch_prompts >= 0, "must be >= 0 (0 = the whole batch)")
        check(self, "lr", self.lr > 0, "must be > 0")
        check(self, "critic_lr", self.critic_lr > 0, "must be > 0")


@dataclass
class Rollouts:
    """Fixed tensors of one rollout batch: prompts (list of (P,)), and (B, N) per-token tensors with the
    ``rollouts_per_prompt`` rows of a prompt adjacent; ``scores`` is (B,)."""

    prompts: list[Tensor]
    responses: Tensor
    mask: Tensor
    scores: Tensor
    raw_scores: Tensor
    completions: list[str]


class PPOTrainer:
    """Policy, frozen reference, optional critic, reward; :meth:`step` runs one PPO iteration."""

    def __init__(self, policy: nn.Module, tokenizer: Any, reward: RewardFn, config: PPOConfig,
                 critic: ValueModel | None = None, shard: Callable[[nn.Module], nn.Module] | None = None) -> None:
        """``shard`` (under torchrun) wraps each model for FSDP2 (:func:`birdie.train.distributed.
        apply_parallelism`); the frozen reference and the critic are built from the unwrapped policy first.
        Without it the models are replicated and gradients are all-reduced here."""
        self.tokenizer, self.reward, self.config = tokenizer, reward, config
        self.reference = copy.deepcopy(policy).eval().requires_grad_(False)
        self.critic = None
        self.device = next(policy.parameters()).device
        if config.algorithm == "ppo":
            self.critic = (critic if critic is not None else ValueModel.from_policy(policy)).to(self.device)
        self.sharded = shard is not None
        if shard is not None:
            policy, self.reference = shard(policy), shard(self.reference)
            self.critic = shard(self.critic) if self.critic is not None else None
        self.policy = policy
        self.eos = tokenizer.specials.id("eos")
        self.policy_optimizer = self._adamw(policy, config.lr)
        self.critic_optimizer = self._adamw(self.critic, config.critic_lr) if self.critic is not None else None
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world > 1 else 0
        # each rank samples its own rollouts; the mini-batch order is drawn from the same stream on every rank
        self.generator = torch.Generator(self.device).manual_seed(config.seed * 1_000_003 + self.rank)

    def _all_sum(self, value: Tensor) -> Tensor:
        """``value`` summed over the data-parallel ranks (itself in one process)."""
        if self.world == 1:
            return value
        value = value.clone()
        dist.all_reduce(value)
        return value

    def _adamw(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        # EasyLM: AdamW with b2 = 0.95 and no weight-decay mask; clip-by-global-norm per model.
        return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=self.config.weight_decay)

    # -- rollout ------------------------------------------------------------------------------------------------
    def rollout(self, prompts: list[Tensor], prompt_texts: list[str]) -> Rollouts:
        """Sample and score ``rollouts_per_prompt`` responses per prompt."""
        cfg = self.config
        self.policy.eval()
        with gathered(self.policy):
            responses = torch.cat([sample(self.policy, prompt, cfg.rollouts_per_prompt, cfg.max_new_tokens,
                                          cfg.temperature, cfg.top_p, self.eos, self.generator) for prompt in prompts])
        mask = response_mask(responses, self.eos)
        completions = [self._decode(row) for row in responses]
        texts = [text for text in prompt_texts for _ in range(cfg.rollouts_per_prompt)]
        raw = checked_scores(self.reward, texts, completions).to(self.device)
        scores = raw - cfg.missing_eos_penalty * (~has_eos(responses, self.eos)).float()
        scores = scores * cfg.reward_gain + cfg.reward_bias
        return Rollouts(prompts, responses, mask, scores, raw, completions)

    def _decode(self, row: Tensor) -> str:
        ids = row.tolist()
        return self.tokenizer.decode(ids[:ids.index(self.eos)] if self.eos in ids else ids)

    # -- advantages ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _statistics(self, rollouts: Rollouts, groups: list[int]) -> dict[str, Tensor]:
        """Old and reference log-probs, values, KL, advantages and returns of the prompts ``groups``."""
        cfg, r = self.config, self.config.rollouts_per_prompt
        rows = torch.cat([torch.arange(g * r, (g + 1) * r) for g in groups])
        responses, mask, scores = rollouts.responses[rows], rollouts.mask[rows], rollouts.scores[rows]
        old_logp, ref_logp, values = [], [], []
        for g in groups:
            part = rollouts.responses[g * r:(g + 1) * r]
            old_logp.append(token_logps(response_logits(self.policy, rollouts.prompts[g], part), part))
            ref_logp.append(token_logps(response_logits(self.reference, rollouts.prompts[g], part), part))
            if self.critic is not None:
                values.append(self.critic.response_values(rollouts.prompts[g], part))
        old, ref = torch.cat(old_logp), torch.cat(ref_logp)
        kl = rl_math.kl_penalty(old, ref, cfg.kl_estimator) * mask
        if cfg.algorithm == "ppo":
            value = torch.cat(values) * mask
            rewards = rl_math.shaped_rewards(scores, kl, mask, cfg.kl_coef)
            if cfg.whiten_rewards:
                rewards = rl_math.whiten(rewards, mask, shift_mean=False, all_sum=self._all_sum)
            advantages, returns = rl_math.gae(rewards, value, mask, cfg.gamma, cfg.lam)
            advantages = rl_math.whiten(advantages, mask, all_sum=self._all_sum)
        else:
            sequence = scores - cfg.kl_coef * kl.sum(1)
            per_sequence = (rl_math.grpo_advantages(sequence, r) if cfg.algorithm == "grpo"
                            else rl_math.rloo_advantages(sequence, r))
            advantages, value, returns = per_sequence[:, None] * mask, torch.zeros_like(mask), torch.zeros_like(mask)
        return {"rows": rows, "responses": responses, "mask": mask, "old_logp": old, "ref_logp": ref, "kl": kl,
                "values": value, "advantages": advantages, "returns": returns}

    # -- optimisation -------------------------------------------------------------------------------------------
    def _losses(self, rollouts: Rollouts, groups: list[int], stats: dict[str, Tensor]) -> dict[str, Tensor]:
        r = self.config.rollouts_per_prompt
        logits = [response_logits(self.policy, rollouts.prompts[g], rollouts.responses[g * r:(g + 1) * r])
                  for g in groups]
        logits_all = torch.cat(logits)
        logp = token_logps(logits_all, stats["responses"])
        mask = stats["mask"]
        # local mean x local tokens / global tokens x ranks: averaging the ranks' gradients gives the global mean
        local = mask.sum()
        share = local * self.world / self._all_sum(local).clamp(min=1)
        pg, clipfrac, approx_kl = rl_math.policy_loss(logp, stats["old_logp"], stats["advantages"], mask,
                                                      self.config.clip_range)
        out = {"pg": pg * share, "clipfrac": clipfrac, "approx_kl": approx_kl,
               "entropy": rl_math.masked_mean(entropy(logits_all.detach()), mask)}
        if self.critic is not None:
            values = torch.cat([self.critic.response_values(rollouts.prompts[g], rollouts.responses[g * r:(g + 1) * r])
                                for g in groups])
            vf, vf_clipfrac = rl_math.value_loss(values, stats["values"], stats["returns"], mask,
                                                 self.config.clip_range_value)
            out |= {"vf": vf * share, "vf_clipfrac": vf_clipfrac}
        return out

    def _update(self, losses: dict[str, Tensor]) -> None:
        cfg = self.config
        loss = losses["pg"] + (cfg.vf_coef * losses["vf"] if "vf" in losses else 0.0)
        loss.backward()
        for model, optimizer in ((self.policy, self.policy_optimizer), (self.critic, self.critic_optimizer)):
            if model is None:
                continue
            if self.world > 1 and not self.sharded:  # FSDP2 averages the gradients itself
                for parameter in model.parameters():
                    if parameter.grad is not None:
                        dist.all_reduce(parameter.grad)
                        parameter.grad /= self.world
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def train_on(self, rollouts: Rollouts) -> dict[str, float]:
        """``ppo_epochs`` passes over shuffled mini-batches of the rollouts; returns the mean losses."""
        cfg = self.config
        count = len(rollouts.prompts)
        size = cfg.mini_batch_prompts or count
        if count % size:
            raise ValueError(f"ppo.mini_batch_prompts={size} must divide the {count} prompts of a step")
        everything = list(range(count))
        initial = self._statistics(rollouts, everything)  # the KL metric is the rollouts' before any update
        fixed = None if cfg.easylm_compat else initial
        sums: dict[str, float] = {}
        updates = 0
        self.policy.train()
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(count, generator=self.generator, device=self.device).tolist()
            for start in range(0, count, size):
                groups = order[start:start + size]
                stats = self._statistics(rollouts, groups) if fixed is None else _select(fixed, groups, cfg)
                losses = self._losses(rollouts, groups, stats)
                self._update(losses)
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(self._all_sum(value.detach())) / self.world
                updates += 1
        means = {key: value / updates for key, value in sums.items()}
        kl = initial["kl"]
        means["kl"] = float(self._all_sum(kl.sum()) / self._all_sum(kl.new_tensor(float(len(kl)))))
        return means

    def step(self, prompts: list[Tensor], prompt_texts: list[str]) -> dict[str, float]:
        """One PPO iteration on ``prompts`` (ids (P_i,), with their user texts for the reward); returns metrics
        with TRL's names and EasyLM's aliases."""
        started = time.perf_counter()
        rollouts = self.rollout(prompts, prompt_texts)
        generated = time.perf_counter()
        means = self.train_on(rollouts)
        finished = time.perf_counter()
        lengths = rollouts.mask.sum(1)
        raw = rollouts.raw_scores.double()
        total, squares, count = self._all_sum(torch.stack([raw.sum(), (raw ** 2).sum(),
                                                           raw.new_tensor(float(len(raw)))])).tolist()
        mean = total / count
        metrics = {
            "objective/scores": mean,
            "objective/scores_std": max((squares - count * mean ** 2) / max(count - 1, 1), 0.0) ** 0.5,
            "objective/kl": means["kl"],
            "objective/entropy": means["entropy"],
            "objective/rlhf_reward": float(self._all_sum(rollouts.scores.sum()) / count) - self.config.kl_coef * means["kl"],
            "loss/policy_avg": means["pg"],
            "policy/clipfrac_avg": means["clipfrac"],
            "policy/approxkl_avg": means["approx_kl"],
            "tokens/responses_len_mean": float(lengths.mean()),
            "tokens/rollout_per_s": float(lengths.sum()) / max(generated - started, 1e-9),
            "tokens/train_per_s": float(lengths.sum()) * self.config.ppo_epochs / max(finished - generated, 1e-9),
            "time/rollout_s": generated - started,
            "time/train_s": finished - generated,
        }
        if "vf" in means:
            metrics |= {"loss/value_avg": means["vf"], "val/clipfrac_avg": means["vf_clipfrac"]}
        aliases = {"env/reward_mean": "objective/scores", "ppo/std_scores": "objective/scores_std",
                   "ppo/loss/policy": "loss/policy_avg", "ppo/loss/value": "loss/value_avg"}
        metrics |= {alias: metrics[name] for alias, name in aliases.items() if name in metrics}
        return metrics


def _select(stats: dict[str, Tensor], groups: list[int], config: PPOConfig) -> dict[str, Tensor]:
    """The rows of ``stats`` (computed over every prompt, in prompt order) belonging to the prompts ``groups``."""
    r = config.rollouts_per_prompt
    rows = torch.cat([torch.arange(g * r, (g + 1) * r) for g in groups])
    return {key: value[rows] for key, value in stats.items() if key != "rows"} | {"rows": stats["rows"][rows]}
