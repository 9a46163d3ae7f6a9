"""Cached sampling: prefill the prompt in the parallel form, then one ``step`` per new token.

The cache is whatever each layer's mixer returns as its state: keys and values for attention (growing with the
context), a constant-size float32 state for the recurrent families. ``prefix_len`` marks the first prompt tokens
as the bidirectional prefix (Birdie's prefix-LM format: ``prefix + [begin_generating]`` then the answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from birdie.models.mixer import SequenceInfo


class CachedDecoder(Protocol):
    """What :func:`generate` needs of a model (:class:`birdie.models.lm.LanguageModel` is one); a protocol, so
    this module does not import the shell that binds ``generate`` as its method."""

    def hidden_states(self, input_ids: Tensor, info: SequenceInfo) -> tuple[Tensor, list[Any]]:
        """Final-normed hidden states (B, T, D) and each layer's state after the last position of every row."""

    #: the output head: hidden states (..., D) -> logits (..., vocab_size).
    output: Callable[[Tensor], Tensor]

    def step(self, token_ids: Tensor, position: Tensor, states: list[Any]) -> tuple[Tensor, list[Any]]:
        """Decode one token per row: token_ids (B,), position (B,) -> logits (B, vocab_size), new states."""


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to -inf every logit outside the ``top_k`` largest and outside the smallest set whose probability
    reaches ``top_p`` (nucleus). logits (B, V) -> (B, V); the most likely token always survives."""
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens before it already reach top_p.
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _check_arguments(prompt: Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
                     top_p: float | None, prefix_len: int) -> None:
    if prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt_ids must be (length,) or (batch, length) with length >= 1; got {tuple(prompt.shape)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a non-negative integer")
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k} must be >= 1 or None")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1] or None")
    if not 0 <= prefix_len <= prompt.shape[1]:
        raise ValueError(f"prefix_len={prefix_len} must be in [0, prompt length {prompt.shape[1]}]")


@torch.no_grad()
def generate(
    model: CachedDecoder,
    prompt_ids: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos: int | None = None,
    prefix_len: int = 0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample up to ``max_new_tokens`` tokens after ``prompt_ids``.

    Args:
        model: a :class:`~birdie.models.lm.LanguageModel`.
        prompt_ids: (T,) or (B, T) token ids; every row has the same length (no padding).
        max_new_tokens: how many tokens to produce at most.
        temperature: softmax temperature; 0 picks the most likely token (greedy).
        top_k, top_p: optional top-k and nucleus filtering before sampling.
        eos: stop a row once it produced this id; generation ends when every row has.
        prefix_len: the first ``prefix_len`` prompt tokens are the bidirectional prefix (``attention_mask == 1``).
        generator: random generator for reproducible sampling.

    Returns:
        The new tokens only: (B, N) (or (N,) for a 1-D prompt) with N <= max_new_tokens; a row that finished
        early is filled with ``eos`` after its first ``eos``.
    """
    squeeze = prompt_ids.dim() == 1
    prompt = prompt_ids[None] if squeeze else prompt_ids
    _check_arguments(prompt, max_new_tokens, temperature, top_k, top_p, prefix_len)
    batch, length = prompt.shape
    info = SequenceInfo.single(batch, length, prompt.device, prefix_len=prefix_len)
    hidden, states = model.hidden_states(prompt.long(), info)
    logits = model.output(hidden[:, -1])
    finished = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    produced: list[Tensor] = []
    for index in range(max_new_tokens):
        token = _pick(logits.float(), temperature, top_k, top_p, generator)
        if eos is not None:
            token = torch.where(finished, torch.full_like(token, eos), token)
            finished |= token == eos
        produced.append(token)
        if bool(finished.all()) or index == max_new_tokens - 1:
            break
        position = torch.full((batch,), length + index, dtype=torch.long, device=prompt.device)
        logits, states = model.step(token, position, states)
    out = torch.stack(produced, dim=1) if produced else prompt.new_zeros(batch, 0)
    return out[0] if squeeze else out


def _pick(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None,
          generator: torch.Generator | None) -> Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits / temperature, top_k, top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
