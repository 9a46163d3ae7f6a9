"""Model-side scoring: batched per-option losses and greedy generation with a birdie model.

A prompt is laid out as training packs an example (``docs/architecture.md``), in one of two formats
(:class:`PromptFormat`):

* ``"prefix"`` (default, Birdie's format): the prompt is the bidirectional prefix (``attention_mask = 1``), then
  ``begin_generating``, then the answer.
* ``"causal"`` (what next-token prediction trains): the prefix is only the NTP paradigm token, then
  ``begin_generating``, the prompt and a newline, all causal, then the answer. This matches a model trained with
  NTP on documents ``"prompt\\nanswer"``; the phone-book recipe (``configs/phonebook_finetune.yaml``) trains the
  ``"prefix"`` layout with supervised pairs instead.

Both go through the harness's scoring core (:class:`birdie.harness.core.Scorer`, the scorer behind
``birdie-lm-eval`` and ``birdie serve``) in prefix mode: the request's context is the bidirectional prefix (the
prompt, or the paradigm token), and its continuation is the causal lead plus the answer; only the answer's tokens
are scored. Generation continues after the lead until EOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from birdie.checks import check
from birdie.harness.adapters import BirdieScoringModel
from birdie.harness.core import Scorer, ScorerConfig
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


def _encode(tokenizer: Tokenizer, text: str) -> np.ndarray:
    return np.asarray(tokenizer.encode(text), dtype=np.int64)


def _scorer(model: nn.Module, tokenizer: Tokenizer, batch_size: int) -> Scorer:
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    return Scorer(BirdieScoringModel(model, tokenizer, prefix_lm=True), ScorerConfig(batch_size=batch_size))


def target_losses(
    model: nn.Module,
    tokenizer: Tokenizer,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 16,
    progress: bool = False,
    prompt_format: PromptFormat = PromptFormat(),
) -> list[float]:
    """Mean per-token cross-entropy of each ``target`` after its ``prompt``.

    Pairs are scored by the harness core in batches (a shared prompt is read once); only the target's tokens
    count.

    Returns:
        One loss (nats per target token, i.e. length-normalised) per pair, in input order.
    """
    requests, leads = [], []
    for number, (prompt, target) in enumerate(pairs):
        target_ids = _encode(tokenizer, target)
        if len(target_ids) == 0:
            raise ValueError(f"target_losses: pair {number} has an empty target (it encodes to no tokens)")
        prefix, lead = prompt_format.layout(tokenizer, prompt)
        requests.append((prefix.tolist(), lead.tolist() + target_ids.tolist()))
        leads.append(len(lead))
    scorer = _scorer(model, tokenizer, batch_size)
    losses: list[float] = []
    step = batch_size * 8  # requests per core call: large enough to share contexts, small enough for a progress bar
    for start in tqdm(range(0, len(requests), step), desc="scoring", disable=not progress, leave=False):
        for score, lead in zip(scorer.loglikelihood(requests[start : start + step], prefix=True),
                               leads[start : start + step]):
            answer = score.token_logprobs[lead:]
            losses.append(-sum(answer) / len(answer))
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

    The harness core's batched greedy decoding (:func:`birdie.harness.decoding.greedy_batch`) decodes up to
    ``batch_size`` prompts per model call until ``eos`` or ``max_new_tokens`` (one value, or one per prompt); the
    outputs equal decoding each prompt alone. Returns the decoded new text per prompt, in input order, without the
    ``eos``.
    """
    from birdie.harness.decoding import greedy_batch

    limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != len(prompts):
        raise ValueError(f"greedy_generate: {len(prompts)} prompts but {len(limits)} max_new_tokens values")
    scorer = _scorer(model, tokenizer, batch_size)
    laid_out = [prompt_format.layout(tokenizer, prompt) for prompt in prompts]
    requests = [(prefix.tolist() + lead.tolist(), len(prefix)) for prefix, lead in laid_out]
    # Longest first, so rows of similar (for attention caches: equal) length share a chunk and its model calls.
    order = sorted(range(len(prompts)), key=lambda i: -len(requests[i][0]))
    outputs = [""] * len(prompts)
    step = batch_size * 8  # prompts per core call: whole batches, small enough for a progress bar
    for start in tqdm(range(0, len(order), step), desc="generating", disable=not progress, leave=False):
        chunk = order[start : start + step]
        generations = greedy_batch(scorer, [requests[i][0] for i in chunk], [limits[i] for i in chunk],
                                   prefix=True, prefix_lengths=[requests[i][1] for i in chunk])
        for i, generation in zip(chunk, generations):
            outputs[i] = generation.text
    return outputs
