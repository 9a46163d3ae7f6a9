"""AdamW with a weight-decay mask, and the warm-up + decay learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from birdie.train.config import OptimizerConfig, ScheduleConfig
from birdie.train.distributed import unwrap


def decay_mask(model: nn.Module) -> dict[str, bool]:
    """``{parameter name: decayed?}``: matrices of linear/conv layers decay; norms, embeddings, biases and the
    parameters the model lists in ``no_weight_decay()`` do not.

    A parameter is excluded when it is 1-D (biases, norm scales, per-channel gates), belongs to an
    ``nn.Embedding`` (including an output head tied to it, which shares the tensor), or is named by the model's
    ``no_weight_decay() -> set[str]`` (Birdie §5: Hawk's RG-LRU, the Gated SSM's forget gate). ``model`` may be
    wrapped (DDP, ``torch.compile``, FSDP2): exclusions are matched by tensor identity, not by name.
    """
    inner = unwrap(model)
    excluded = {id(p) for m in inner.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    listed = getattr(inner, "no_weight_decay", None)
    if listed is not None:
        params = dict(inner.named_parameters())
        unknown = sorted(set(listed()) - set(params))
        if unknown:
            raise ValueError(f"{type(inner).__name__}.no_weight_decay() names {unknown}, which are not parameters "
                             "of the model; list full parameter names as in named_parameters()")
        excluded |= {id(params[name]) for name in listed()}
    return {name: p.ndim >= 2 and id(p) not in excluded for name, p in model.named_parameters()}


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters in two groups (decayed, not decayed)."""
    mask = decay_mask(model)
    params = dict(model.named_parameters())
    decayed = [params[n] for n, d in mask.items() if d and params[n].requires_grad]
    plain = [params[n] for n, d in mask.items() if not d and params[n].requires_grad]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=tuple(config.betas),
                             eps=config.eps)


def lr_factor(step: int, total_steps: int, config: ScheduleConfig) -> float:
    """Learning rate at optimizer step ``step`` (0-based) as a fraction of the peak.

    Linear warm-up ``(step + 1) / warmup_steps`` (so the first update is not wasted at 0), then decay from 1 to
    ``final_lr_ratio`` at the last step ``total_steps - 1``: cosine, linear, or none (constant).
    """
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(total_steps - 1 - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    final = config.final_lr_ratio
    if config.decay == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.decay == "linear":
        return 1 - (1 - final) * progress
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    config: ScheduleConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, config))
