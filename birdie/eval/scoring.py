"""Model-side scoring: batched per-option losses and greedy generation with a birdie model.

A prompt is laid out as training packs an example (``docs/architecture.md``), in one of two formats
(:class:`PromptFormat`):

* ``"prefix"`` (default, Birdie's format): the prompt is the bidirectional prefix (``attention_mask = 1``), then
  ``begin_generating``, then the answer.
* ``"causal"`` (what next-token prediction trains): the prefix is only the NTP paradigm token, then
  ``begin_generating``, the prompt and a newline, all causal, then the answer. This matches a model trained with
  NTP on documents ``"prompt\\nanswer"``; the phone-book recipe (``configs/phonebook_finetune.yaml``) trains the
  ``"prefix"`` layout with supervised pairs instead.

Option losses use the pipeline's own packer (:class:`birdie.data.packing.BatchBuilder`), one example per row, and
score only the answer's tokens; generation uses ``model.generate`` with ``prefix_len`` set to the prefix.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from birdie.checks import check
from birdie.data.packing import BatchBuilder, batch_to_torch
from birdie.tokenizers import Tokenizer

PROMPT_MODES = ("prefix", "causal")


@dataclass(frozen=True)
class PromptFormat:
    """How a prompt is shown to the model.

    Attributes:
        mode: ``"prefix"`` (prompt bidirectional) or ``"causal"`` (prompt in the causal region after the NTP
            paradigm token, followed by ``separator``).
        separator: text between prompt and answer in causal mode (the fine-tuning documents use a newline).
    """

    mode: str = "prefix"
    separator: str = "\n"

    def __post_init__(self) -> None:
        check(self, "mode", self.mode in PROMPT_MODES, f"must be one of {PROMPT_MODES}")

    def layout(self, tokenizer: Tokenizer, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        """``(prefix, lead)``: the bidirectional prefix, and the causal tokens between ``begin_generating`` and
        the answer (empty in prefix mode)."""
        ids = _encode(tokenizer, prompt)
        if self.mode == "prefix":
            return ids, ids[:0]
        paradigm = np.array([tokenizer.specials.paradigm("next_token_prediction")], dtype=np.int64)
        return paradigm, np.concatenate([ids, _encode(tokenizer, self.separator)])


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
    prompt_format: PromptFormat = PromptFormat(),
) -> list[float]:
    """Mean per-token cross-entropy of each ``target`` after its ``prompt``.

    Pairs are scored in batches of similar length (one example per row, right-padded); only the target's tokens
    count.

    Returns:
        One loss (nats per target token, i.e. length-normalised) per pair, in input order.
    """
    encoded = []
    for number, (prompt, target) in enumerate(pairs):
        target_ids = _encode(tokenizer, target)
        if len(target_ids) == 0:
            raise ValueError(f"target_losses: pair {number} has an empty target (it encodes to no tokens)")
        encoded.append((*prompt_format.layout(tokenizer, prompt), target_ids))
    losses = [0.0] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: sum(len(part) for part in encoded[i]))
    device = _device(model)
    specials = tokenizer.specials
    for chunk in tqdm(list(_batches(order, batch_size)), desc="scoring", disable=not progress, leave=False):
        length = max(sum(len(part) for part in encoded[i]) for i in chunk)
        builder = BatchBuilder(len(chunk), max(length, 2), specials.pad, specials.begin_generating)
        for row, index in enumerate(chunk):
            prefix, lead, target = encoded[index]
            builder.add(prefix, np.concatenate([lead, target]), row=row)
            builder.buffer[1, row, len(prefix):len(prefix) + len(lead)] = -100  # the prompt is not scored
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
    batch_size: int = 16, progress: bool = False, prompt_format: PromptFormat = PromptFormat(),
) -> list[list[float]]:
    """Length-normalised loss of every option of every prompt: ``result[i][j]`` for ``options[i][j]``."""
    if len(prompts) != len(options):
        raise ValueError(f"option_losses: {len(prompts)} prompts but {len(options)} option lists")
    pairs = [(prompt, option) for prompt, item_options in zip(prompts, options) for option in item_options]
    flat = iter(target_losses(model, tokenizer, pairs, batch_size, progress, prompt_format))
    return [[next(flat) for _ in item_options] for item_options in options]


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int | Sequence[int],
    batch_size: int = 8,
    progress: bool = False,
    prompt_format: PromptFormat = PromptFormat(),
) -> list[str]:
    """Greedy continuation of each prompt, laid out by ``prompt_format``.

    ``model.generate`` decodes rows of equal length together, so prompts are grouped by token length and each
    group is decoded in batches; decoding stops at ``eos`` or after ``max_new_tokens`` (one value, or one per
    prompt). Returns the decoded new text per prompt, in input order, without the ``eos``.
    """
    limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != len(prompts):
        raise ValueError(f"greedy_generate: {len(prompts)} prompts but {len(limits)} max_new_tokens values")
    specials = tokenizer.specials
    laid_out = []
    for prompt in prompts:
        prefix, lead = prompt_format.layout(tokenizer, prompt)
        laid_out.append((np.concatenate([prefix, [specials.begin_generating], lead]).astype(np.int64), len(prefix)))
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (ids, prefix_len) in enumerate(laid_out):
        groups.setdefault((len(ids), prefix_len), []).append(index)
    chunks = [chunk for group in groups.values() for chunk in _batches(group, batch_size)]
    outputs = [""] * len(prompts)
    device = _device(model)
    for chunk in tqdm(chunks, desc="generating", disable=not progress, leave=False):
        prompt_ids = torch.from_numpy(np.stack([laid_out[i][0] for i in chunk])).to(device)
        new_ids = model.generate(prompt_ids, max(limits[i] for i in chunk), temperature=0.0,
                                 eos=specials.eos, prefix_len=laid_out[chunk[0]][1])
        for row, index in enumerate(chunk):
            ids = new_ids[row, :limits[index]].tolist()
            if specials.eos in ids:
                ids = ids[:ids.index(specials.eos)]
            outputs[index] = tokenizer.decode(np.asarray(ids, dtype=np.int64))
    return outputs
