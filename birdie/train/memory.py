"""A fail-fast bound on a training step's memory, checked before anything large is allocated.

``train.batch_size`` x ``train.sequence_length`` set too high would otherwise grow the process for minutes before
the allocator fails. :func:`step_memory` estimates, from the model config and the micro-batch, a *lower bound* of
what one step keeps alive, and :func:`check_step_memory` refuses a run whose bound exceeds the memory there is
(``train.check_memory=false`` skips the check for a user who knows better, e.g. with activation offloading).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from birdie.train.config import ConfigError

#: pipeline buffers alive at once: the prefetched batches plus the one being consumed (PipelineConfig.prefetch + 1)
BATCHES_IN_FLIGHT = 9
#: int64 planes of a packed batch (input ids, labels, segment ids, loss mask, prefix mask)
BATCH_PLANES = 5


def step_memory(model_config: dict[str, Any], num_params: int, micro_batch: int, sequence_length: int,
                bf16: bool, fsdp: int = 1, tp: int = 1) -> dict[str, int]:
    """Lower bounds in bytes of one rank's memory in a training step, by part.

    ``weights``: parameters, gradients and AdamW's two moments (fp32), sharded over ``fsdp * tp`` ranks;
    ``activations``: what autograd keeps per layer (at least the residual stream, the block's inputs and the MLP's
    hidden values per token) and ``logits`` (fp32, and their gradient), both taken as split over ``tp`` ranks so
    that the bound stays below the truth; ``batches``: the pipeline's int64 buffers.
    """
    tokens = micro_batch * sequence_length
    d_model, vocab = model_config["d_model"], model_config["vocab_size"]
    hidden = model_config.get("mlp_hidden") or 8 * d_model // 3
    element = 2 if bf16 else 4
    return {
        "weights": 16 * num_params // (fsdp * tp),
        "activations": tokens * model_config["n_layers"] * (4 * d_model + 2 * hidden) * element // tp,
        "logits": tokens * vocab * 4 * 2 // tp,
        "batches": tokens * BATCH_PLANES * 8 * BATCHES_IN_FLIGHT,
    }


def available_memory(device: torch.device) -> int | None:
    """Bytes of the device's memory (a GPU's total, else the machine's physical RAM); None when unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_step_memory(model_config: dict[str, Any], num_params: int, micro_batch: int, sequence_length: int,
                      bf16: bool, device: torch.device, fsdp: int = 1, tp: int = 1) -> None:
    """Raise :class:`ConfigError` when :func:`step_memory`'s bound exceeds :func:`available_memory`, with the
    numbers and the fix. On a GPU the pipeline's batches live in host memory and are not counted against it."""
    parts = step_memory(model_config, num_params, micro_batch, sequence_length, bf16, fsdp, tp)
    if device.type == "cuda":
        parts.pop("batches")
    have = available_memory(device)
    need = sum(parts.values())
    if have is None or need <= have:
        return
    detail = ", ".join(f"{name} {size / 2**30:.1f}" for name, size in parts.items())
    raise ConfigError(
        f"train.batch_size x train.sequence_length: a micro-batch of {micro_batch} x {sequence_length} = "
        f"{micro_batch * sequence_length:,} tokens needs at least {need / 2**30:.1f} GiB per step ({detail} GiB), "
        f"but the {device.type} has {have / 2**30:.1f} GiB; lower train.batch_size (or raise train.grad_accum) or "
        "train.sequence_length, or set train.check_memory=false if you know it fits"
    )
