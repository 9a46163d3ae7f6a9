"""One optimizer step over accumulated micro-batches, with the loss normalised by the global token count.

Every micro-batch contributes ``sum of per-token losses / (target tokens over all micro-batches and all data
ranks)``, so ``k`` micro-batches of ``b`` rows give exactly the gradient of one batch of ``k * b`` rows, and a
data-parallel run gives the gradient of one process holding the whole global batch -- however unevenly the target
tokens fall between micro-batches and ranks. (The mean of per-micro-batch means, what most trainers compute,
over-weights micro-batches with few targets.)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from birdie.models.lm import IGNORE_INDEX, language_model_loss, token_loss_sum
from birdie.train.distributed import Runtime, gradient_sync

MODEL_INPUTS = ("input_ids", "attention_mask", "segment_ids", "position_ids")


@dataclass(frozen=True)
class StepResult:
    """loss: mean per-token loss of the global batch (cross-entropy + z-loss); grad_norm: before clipping;
    target_tokens: tokens with a label in the global batch."""

    loss: float
    grad_norm: float
    target_tokens: int


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when asked, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _grad_norm(model: nn.Module, max_norm: float) -> Tensor:
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm > 0 else float("inf"))
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: list[dict[str, Tensor]],
               runtime: Runtime, *, z_loss: float = 0.0, grad_clip: float = 0.0, bf16: bool = False) -> StepResult:
    """Forward/backward every micro-batch (gradient sync only on the last), clip, and step the optimizer.

    ``micro_batches`` are this rank's share of the global batch, already on the model's device. The scheduler
    is not stepped here.
    """
    local_tokens = sum((mb["label_ids"] != IGNORE_INDEX).sum() for mb in micro_batches).double()
    global_tokens = runtime.sum(local_tokens)
    # Gradients are averaged over the data ranks by DDP/FSDP, hence the data_world factor.
    scale = runtime.data_world / global_tokens.clamp(min=1).item()
    total = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for index, batch in enumerate(micro_batches):
        with gradient_sync(model, index == len(micro_batches) - 1):
            with autocast(runtime.device, bf16):
                logits, _ = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch})
            loss_sum = token_loss_sum(logits, batch["label_ids"], z_loss)
            (loss_sum * scale).backward()
        total += loss_sum.detach().double()
    grad_norm = _grad_norm(model, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss = runtime.sum(total) / global_tokens.clamp(min=1)
    return StepResult(float(loss), float(grad_norm), int(global_tokens.item()))


@torch.no_grad()
def validation_loss(model: nn.Module, batch: dict[str, Tensor], bf16: bool, device: torch.device) -> float:
    """Mean per-token cross-entropy of one batch (no z-loss)."""
    with autocast(device, bf16):
        logits, _ = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch})
    return float(language_model_loss(logits, batch["label_ids"]))
