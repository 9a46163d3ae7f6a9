"""Naive reference scoring for the harness tests: one unbatched forward per request, float64 softmax."""

from __future__ import annotations

import numpy as np
import torch


def naive_continuation(model, context: list[int], continuation: list[int], prefix: bool) -> tuple[list[float], bool]:
    """Reference: one unbatched full forward per request, float64 log-softmax, greedy = argmax at every position."""
    if prefix:
        row = context + [model.tokenizer.specials.begin_generating] + continuation[:-1]
        start, prefix_length = len(context), len(context)
    else:
        row = context + continuation[:-1]
        start, prefix_length = len(context) - 1, 0
    logits = model.logits(np.asarray([row], dtype=np.int64), np.array([prefix_length]))
    logits = logits.detach().double().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits, np.float64)
    window = logits[0, start : start + len(continuation)]
    shifted = window - window.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = [float(log_probs[i, t]) for i, t in enumerate(continuation)]
    greedy = all(int(log_probs[i].argmax()) == t for i, t in enumerate(continuation))
    return picked, greedy
