"""Model-side scoring: batched per-option losses and greedy generation with a birdie model.

A prompt is fed exactly as training packs an example (``docs/architecture.md``): the prompt tokens are the
bidirectional prefix (``attention_mask = 1``), then ``begin_generating``, then the target. Option losses use the
pipeline's own packer (:class:`birdie.data.packing.BatchBuilder`), one example per row; generation uses
``model.generate`` with ``prefix_len = len(prompt)`` and the prompt followed by ``begin_generating``.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from birdie.data.packing import BatchBuilder, batch_to_torch
from birdie.tokenizers import Tokenizer


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batches(order: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    iterator = iter(order)
    while chunk := list(itertools.islice(iterator, batch_size)):
        yield chunk


def _encode(tokenizer: Tokenizer, text: str) -> np.ndarray:
    return np.asarray(tokenizer.encode(text), dtype=np.int64)


@torch.no_grad()
def target_losses(
    model: nn.Module,
    tokenizer: Tokenizer,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 16,
    progress: bool = False,
) -> list[float]:
    """Mean per-token cross-entropy of each ``target`` after its ``prompt`` (prompt as bidirectional prefix).

    Pairs are scored in batches of similar length (one example per row, right-padded).

    Returns:
        One loss (nats per target token, i.e. length-normalised) per pair, in input order.
    """
    encoded = [(_encode(tokenizer, prompt), _encode(tokenizer, target)) for prompt, target in pairs]
    for number, (_, target) in enumerate(encoded):
        if len(target) == 0:
            raise ValueError(f"target_losses: pair {number} has an empty target (it encodes to no tokens)")
    losses = [0.0] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    device = _device(model)
    specials = tokenizer.specials
    for chunk in tqdm(list(_batches(order, batch_size)), desc="scoring", disable=not progress, leave=False):
        length = max(len(encoded[i][0]) + len(encoded[i][1]) for i in chunk)
        builder = BatchBuilder(len(chunk), max(length, 2), specials.pad, specials.begin_generating)
        for row, index in enumerate(chunk):
            builder.add(*encoded[index], row=row)
        batch = {key: value.to(device) for key, value in batch_to_torch(builder.buffer).items()}
        labels = batch.pop("label_ids")
        logits, _ = model(**batch)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        scored = labels != -100
        picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * scored
        per_row = -picked.sum(dim=1) / scored.sum(dim=1)
        for row, index in enumerate(chunk):
            losses[index] = float(per_row[row])
    return losses


def option_losses(
    model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str], options: Sequence[Sequence[str]],
    batch_size: int = 16, progress: bool = False,
) -> list[list[float]]:
    """Length-normalised loss of every option of every prompt: ``result[i][j]`` for ``options[i][j]``."""
    if len(prompts) != len(options):
        raise ValueError(f"option_losses: {len(prompts)} prompts but {len(options)} option lists")
    pairs = [(prompt, option) for prompt, item_options in zip(prompts, options) for option in item_options]
    flat = iter(target_losses(model, tokenizer, pairs, batch_size, progress))
    return [[next(flat) for _ in item_options] for item_options in options]


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int | Sequence[int],
    batch_size: int = 8,
    progress: bool = False,
) -> list[str]:
    """Greedy continuation of each prompt (prompt = bidirectional prefix, then ``begin_generating``).

    ``model.generate`` decodes rows of equal length together, so prompts are grouped by token length and each
    group is decoded in batches; decoding stops at ``eos`` or after ``max_new_tokens`` (one value, or one per
    prompt). Returns the decoded new text per prompt, in input order, without the ``eos``.
    """
    limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != len(prompts):
        raise ValueError(f"greedy_generate: {len(prompts)} prompts but {len(limits)} max_new_tokens values")
    specials = tokenizer.specials
    encoded = [np.append(_encode(tokenizer, prompt), specials.begin_generating) for prompt in prompts]
    groups: dict[int, list[int]] = {}
    for index, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(index)
    chunks = [chunk for group in groups.values() for chunk in _batches(group, batch_size)]
    outputs = [""] * len(prompts)
    device = _device(model)
    for chunk in tqdm(chunks, desc="generating", disable=not progress, leave=False):
        prompt_ids = torch.from_numpy(np.stack([encoded[i] for i in chunk])).to(device)
        new_ids = model.generate(prompt_ids, max(limits[i] for i in chunk), temperature=0.0,
                                 eos=specials.eos, prefix_len=prompt_ids.shape[1] - 1)
        for row, index in enumerate(chunk):
            ids = new_ids[row, :limits[index]].tolist()
            if specials.eos in ids:
                ids = ids[:ids.index(specials.eos)]
            outputs[index] = tokenizer.decode(np.asarray(ids, dtype=np.int64))
    return outputs


def describe_model(model: nn.Module) -> dict[str, Any]:
    """Parameter count and family, for result files."""
    config = getattr(model, "config", None)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "family": getattr(config, "family", type(model).__name__),
    }
