"""Precomputed DPO reference log-probs (EasyLM's ``precalculate_reference_logps``), cached on disk.

One pass of the initial policy (the base) over every pair gives ``(N, 2)`` summed log-probs of the chosen and
rejected responses; training then reads them by pair index, which equals a live frozen reference and halves the
forward passes. The cache file is ``OUT/reference_logps/<hash>.safetensors``, keyed by a hash of the tokenized
pairs, the base weights and the reference-relevant settings, so a changed dataset or base never reuses a stale one.
Rank 0 computes it on an unsharded copy; the other ranks wait and read it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from birdie.finetune.config import FinetuneConfig
from birdie.finetune.datasets import Pair
from birdie.finetune.evaluate import EVAL_BATCH, rows_logps
from birdie.train.distributed import Runtime


def reference_hash(model: nn.Module, pairs: Sequence[Pair]) -> str:
    """Hex digest of the pairs' tokens and masks and the model's weights."""
    digest = hashlib.sha256()
    for pair in pairs:
        for side in (pair.chosen, pair.rejected):
            digest.update(side.ids.tobytes())
            digest.update(side.mask.tobytes())
            digest.update(b"|")
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


@torch.no_grad()
def compute_reference_logps(model: nn.Module, pairs: Sequence[Pair], pad_id: int) -> torch.Tensor:
    """``(N, 2)`` float64: summed log-probs of each pair's chosen and rejected response under ``model``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(pairs), EVAL_BATCH):
        chunk = pairs[start:start + EVAL_BATCH]
        logps = rows_logps(model, [p.chosen for p in chunk] + [p.rejected for p in chunk], pad_id, device)
        out.append(torch.stack([logps[:len(chunk)], logps[len(chunk):]], dim=1).double().cpu())
    model.train(was_training)
    return torch.cat(out)


def cached_reference_logps(model: nn.Module, pairs: Sequence[Pair], base: Path, config: FinetuneConfig,
                           runtime: Runtime, pad_id: int) -> torch.Tensor:
    """The reference log-probs of ``pairs`` from the cache, computing and storing them when absent."""
    from safetensors.torch import load_file, save_file

    path = Path(config.train.out) / "reference_logps" / f"{reference_hash(model, pairs)}.safetensors"
    if runtime.is_main and not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        logps = compute_reference_logps(model.to(runtime.device), pairs, pad_id)
        tmp = path.with_suffix(".tmp")
        save_file({"logps": logps}, str(tmp), metadata={"base": str(base)})
        tmp.replace(path)
        print(f"reference log-probs of {len(pairs)} pairs cached in {path}")
    runtime.barrier()
    return load_file(str(path))["logps"]
