"""Batched greedy decoding over the scoring core: many prompts decoded together, each as :meth:`Scorer.generate`
decodes it alone.

Prompts are laid out as :meth:`birdie.harness.core.Scorer.generate` lays them out (prefix mode: ``prompt[:split]``
as the bidirectional prefix, ``begin_generating``, then ``prompt[split:]``). How rows share a model call depends on
what the model offers:

* ``scan_contexts`` (fixed-size recurrent states: Hawk, Gated SSM, SUPRA): up to ``batch_size`` prompts of any
  lengths are read in one left-padded call (all but their last token), then every row steps together.
* ``scan`` only (an attention KV cache, which cannot hold rows of different lengths): prompts of equal laid-out
  length and prefix split are prefilled and decoded together.
* neither (or ``state_reuse`` off): right-padded rows, one forward pass over every row per new token.

Finished rows leave the batch (their state rows are dropped), so a long answer does not make short ones pay. The
next token of a row is the argmax of its float32 log-softmax, as in the unbatched path, so outputs agree token for
token with :meth:`Scorer.generate` at ``temperature=0`` (up to float ties, which random or trained models do not
produce in practice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from birdie.harness.core import Generation, Scorer, TokenIds, log_softmax32
from birdie.harness.states import select_rows


@dataclass
class _Row:
    """One prompt being decoded: its laid-out ids, prefix split, token budget and what it produced so far."""

    index: int
    ids: list[int]
    split: int
    limit: int
    generated: list[int] = field(default_factory=list)
    result: Generation | None = None


def greedy_batch(
    scorer: Scorer,
    prompts: Sequence[TokenIds],
    max_new_tokens: Sequence[int],
    stop: Sequence[str] = (),
    prefix: bool | None = None,
    prefix_lengths: Sequence[int | None] | None = None,
) -> list[Generation]:
    """Greedy continuations of ``prompts``, ``scorer.config.batch_size`` rows per model call.

    Args:
        scorer: the core (its model, tokenizer, batch size and ``state_reuse`` setting).
        prompts: token ids per prompt (non-empty in causal mode).
        max_new_tokens: budget per prompt (>= 0).
        stop: strings that end a generation (the text is cut before the earliest).
        prefix: prefix-LM layout; default: the model's ``prefix_lm``.
        prefix_lengths: per prompt, how many leading tokens form the bidirectional prefix (None: all).

    Returns:
        One :class:`~birdie.harness.core.Generation` per prompt, in input order, equal to
        ``scorer.generate(prompt, limit, stop, prefix=prefix, prefix_length=split)``.
    """
    if len(max_new_tokens) != len(prompts):
        raise ValueError(f"greedy_batch: {len(prompts)} prompts but {len(max_new_tokens)} max_new_tokens values")
    prefix = scorer.model.prefix_lm if prefix is None else prefix
    if prefix and not scorer.model.prefix_lm:
        raise ValueError("prefix generation needs a prefix-LM model; this model is causal")
    splits = list(prefix_lengths) if prefix_lengths is not None else [None] * len(prompts)
    begin = scorer.tokenizer.specials.begin_generating
    rows = []
    for index, (prompt, limit, split) in enumerate(zip(prompts, max_new_tokens, splits)):
        if limit < 0:
            raise ValueError(f"max_new_tokens={limit} (prompt {index}) must be >= 0")
        prompt = list(prompt)
        split = (len(prompt) if split is None else split) if prefix else 0
        if not 0 <= split <= len(prompt):
            raise ValueError(f"prefix_length={split} (prompt {index}) must lie in [0, {len(prompt)}]")
        ids = prompt[:split] + [begin] + prompt[split:] if prefix else prompt
        if not ids:
            raise ValueError(f"prompt {index}: cannot generate from an empty prompt with causal scoring")
        rows.append(_Row(index, ids, split, int(limit)))
    stops = [s for s in stop if s]
    results: list[Generation | None] = [None] * len(rows)
    for row in rows:
        if row.limit == 0:
            results[row.index] = Generation("", [], "length")
    for batch in _batches(scorer, [row for row in rows if row.limit > 0]):
        for row in _decode(scorer, batch, stops):
            results[row.index] = row.result
    return results  # type: ignore[return-value]


def _batches(scorer: Scorer, rows: list[_Row]) -> Iterator[list[_Row]]:
    """Rows that can share model calls, at most ``batch_size`` each; longest prompts first.

    A state that cannot hold rows of different lengths (a KV cache; a one-token prompt, which has no context to
    read before its last token) groups rows by laid-out length and prefix split.
    """
    batched_reads = callable(getattr(scorer.model, "scan_contexts", None))
    groups: dict[tuple[int, int], list[_Row]] = {}
    for row in sorted(rows, key=lambda row: -len(row.ids)):
        equal_lengths = scorer.stateful and not (batched_reads and len(row.ids) > 1)
        groups.setdefault((len(row.ids), row.split) if equal_lengths else (-1, -1), []).append(row)
    size = scorer.config.batch_size
    for group in groups.values():
        for start in range(0, len(group), size):
            yield group[start : start + size]


def _prefill(scorer: Scorer, batch: list[_Row]) -> tuple[Any, Any]:
    """``(logits (B, V) after each prompt, state)``; state None on the plain path."""
    model = scorer.model
    scorer.stats["model_calls"] += 1
    scorer.stats["context_tokens"] += sum(len(row.ids) for row in batch)
    if not scorer.stateful:
        return None, None
    if callable(getattr(model, "scan_contexts", None)) and all(len(row.ids) > 1 for row in batch):
        # Read all but the last token of every prompt in one left-padded call, then step the last tokens together:
        # the last token is causal in both layouts (begin_generating or later), so this is the same computation.
        state = model.scan_contexts([row.ids[:-1] for row in batch], [row.split for row in batch])
        logits, state = model.scan(np.asarray([[row.ids[-1]] for row in batch], dtype=np.int64), state, 0)
        scorer.stats["model_calls"] += 1
        return logits[:, -1], state
    logits, state = model.scan(np.asarray([row.ids for row in batch], dtype=np.int64), None, batch[0].split)
    return logits[:, -1], state


def _decode(scorer: Scorer, batch: list[_Row], stops: list[str]) -> list[_Row]:
    """Decode ``batch`` to the end, setting every row's ``result``."""
    eos = scorer.tokenizer.specials.eos
    logits, state = _prefill(scorer, batch)
    active = list(batch)
    while active:
        if state is None:  # plain path: one forward pass over every active row
            rows = [row.ids + row.generated for row in active]
            width = max(len(r) for r in rows)
            padded = np.zeros((len(rows), width), dtype=np.int64)
            for b, ids in enumerate(rows):
                padded[b, : len(ids)] = ids
            full = scorer.model.logits(padded, np.array([row.split for row in active], dtype=np.int64))
            logits = [full[b, len(ids) - 1] for b, ids in enumerate(rows)]
            scorer.stats["model_calls"] += 1
        tokens = [int(log_softmax32(logits[b]).argmax()) for b in range(len(active))]
        keep = []
        for b, (row, token) in enumerate(zip(active, tokens)):
            if _advance(scorer, row, token, eos, stops):
                keep.append(b)
        if state is not None and keep:
            state = select_rows(state, keep) if len(keep) < len(active) else state
            step = np.asarray([[tokens[b]] for b in keep], dtype=np.int64)
            logits, state = scorer.model.scan(step, state, 0)
            logits = logits[:, -1]
            scorer.stats["model_calls"] += 1
        active = [active[b] for b in keep]
    return batch


def _advance(scorer: Scorer, row: _Row, token: int, eos: int, stops: list[str]) -> bool:
    """Add ``token`` to ``row``; False (with ``row.result`` set) when the row is finished."""
    decode = scorer.tokenizer.decode
    if token == eos:
        row.result = Generation(decode(row.generated), row.generated, "stop")
        return False
    row.generated.append(token)
    scorer.stats["tail_tokens"] += 1
    if stops:
        text = decode(row.generated)
        cut = min((text.find(s) for s in stops if s in text), default=-1)
        if cut >= 0:
            row.result = Generation(text[:cut], row.generated, "stop")
            return False
    if len(row.generated) == row.limit:
        row.result = Generation(decode(row.generated), row.generated, "length")
        return False
    return True
