"""Held-out evaluation: does the model prefer the right answer? (the same test for a policy and a reward model)

For a language model, a pair counts as right when the summed log-probability of the chosen side's last assistant
turn beats the rejected side's; for a reward model, when its score does. On the embedded story questions this is
the held-out answer accuracy ``birdie demo finetune`` prints before and after each stage.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from birdie.finetune.batches import pad
from birdie.finetune.datasets import Example, Pair
from birdie.finetune.losses import sequence_logps
from birdie.finetune.reward_model import score_inputs

EVAL_BATCH = 32


def rows_logps(model: nn.Module, examples: Sequence[Example], pad_id: int, device: torch.device) -> torch.Tensor:
    """Summed log-probs (N,) of each example's loss tokens under ``model`` (one padded row per example)."""
    batch = {k: v.to(device) for k, v in pad(examples, None, pad_id).items()}
    logits, _ = model(input_ids=batch["input_ids"], segment_ids=batch["segment_ids"],
                      position_ids=batch["position_ids"])
    return sequence_logps(logits, batch["label_ids"])


@torch.no_grad()
def pair_accuracy(model: nn.Module, pairs: Sequence[Pair], pad_id: int, reward_model: bool = False) -> float:
    """Fraction of ``pairs`` whose chosen side the model prefers (strictly); NaN without pairs."""
    if not pairs:
        return float("nan")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    wins = 0
    for start in range(0, len(pairs), EVAL_BATCH):
        chunk = pairs[start:start + EVAL_BATCH]
        examples = [p.chosen for p in chunk] + [p.rejected for p in chunk]
        if reward_model:
            batch = score_inputs([e.ids for e in examples], pad_id)
            values = model(**{k: v.to(device) for k, v in batch.items()})
        else:
            values = rows_logps(model, examples, pad_id, device)
        wins += int((values[:len(chunk)] > values[len(chunk):]).sum())
    model.train(was_training)
    return wins / len(pairs)
