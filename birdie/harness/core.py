"""The scoring core: log-likelihoods, rolling perplexity, prompt log-probs and generation for any ScoringModel.

Both front-ends (the in-process lm-eval model and the HTTP server) call this module, so a model is scored the
same way whichever path a user takes. All inputs and outputs are token ids and Python floats; log-softmax runs in
float32 whatever the model's dtype.

How a request ``(context, continuation)`` is laid out
-----------------------------------------------------
Every request becomes a *shared* part (read once per distinct context) and a *tail* whose logits predict the
continuation token by token:

* prefix-LM scoring (Birdie-trained models, as training packs an example): shared = ``context`` (the bidirectional
  prefix), tail = ``[begin_generating] + continuation[:-1]``.
* causal scoring: shared = ``context[:-1]``, tail = ``context[-1:] + continuation[:-1]``.

The plain path runs ``shared + tail`` as one row per request (rows batched, right-padded). With state reuse a
model that offers ``scan`` reads each distinct shared part once (for requests whose tail is not longer than it:
tails run token by token, so longer ones take the plain path), keeps its state (optionally in an LRU across
calls), and runs the distinct tails of all its continuations as one batch from that state. A model that also
offers ``scan_contexts`` (birdie's recurrent families) reads a batch of contexts in one call and runs the tails of
all of them together.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from birdie.checks import check
from birdie.harness.adapters import ScoringModel
from birdie.harness.states import concat_states, state_row

TokenIds = Sequence[int]


@dataclass(frozen=True)
class ScorerConfig:
    """How the core batches and reuses work.

    Attributes:
        batch_size: rows per model call (>= 1).
        state_reuse: read a shared context once and continue every continuation from its state (models with
            ``scan`` only), for log-likelihood requests and generation.
        rolling_state_reuse: the same for rolling-perplexity windows; off by default, since windows share no
            context and every continuation would then run token by token (2-10x slower).
        prefix_cache_size: contexts whose state is kept across calls (LRU; each entry is a KV cache for attention
            models, so mind the memory); 0 (default) keeps a state only while its requests are scored.
    """

    batch_size: int = 16
    state_reuse: bool = True
    rolling_state_reuse: bool = False
    prefix_cache_size: int = 0

    def __post_init__(self) -> None:
        check(self, "batch_size", self.batch_size >= 1, "must be >= 1")
        check(self, "prefix_cache_size", self.prefix_cache_size >= 0, "must be >= 0")


@dataclass(frozen=True)
class ContinuationScore:
    """Score of one continuation.

    Attributes:
        token_logprobs: log p(continuation[i] | everything before), float32 values as Python floats.
        is_greedy: every continuation token is an argmax of its distribution.
    """

    token_logprobs: tuple[float, ...]
    is_greedy: bool

    @property
    def logprob(self) -> float:
        """Sum of ``token_logprobs``, added left to right (as lm-eval's API client adds them)."""
        return sum(self.token_logprobs)


@dataclass(frozen=True)
class PromptLogprobs:
    """Causal log-probs of a whole prompt plus one greedy next token (the OpenAI ``echo`` response).

    Attributes:
        token_logprobs: ``[None, log p(t1|t0), ..., log p(t_{n-1}|t_<n-1), log p(next|prompt)]``, length n + 1.
        top: ``[None] + [(ids, logprobs) of the top-k at each position]``, length n + 1.
        next_token: the greedy next token after the prompt.
    """

    token_logprobs: list[float | None]
    top: list[tuple[list[int], list[float]] | None]
    next_token: int


@dataclass(frozen=True)
class Generation:
    """A generated continuation: ``text`` is cut before the first stop string and never includes EOS."""

    text: str
    token_ids: list[int]
    finish_reason: str


def log_softmax32(logits: Any) -> torch.Tensor:
    """``log_softmax`` over the last axis in float32 of numpy/torch/JAX logits."""
    if not isinstance(logits, torch.Tensor):
        logits = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    return torch.log_softmax(logits.float(), dim=-1)


def _right_pad(rows: Sequence[TokenIds]) -> np.ndarray:
    """(B, max_len) int64 with rows left-aligned; padding id 0 (never read: every padded position is causal and
    comes after the row's real tokens)."""
    out = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _score_positions(log_probs: torch.Tensor, targets: TokenIds) -> ContinuationScore:
    """Score ``targets`` (L,) against ``log_probs`` (L, V)."""
    target = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    picked = log_probs.gather(1, target[:, None])[:, 0]
    greedy = bool((picked >= log_probs.max(dim=1).values).all())
    return ContinuationScore(tuple(picked.tolist()), greedy)


class Scorer:
    """Scores requests with a :class:`~birdie.harness.adapters.ScoringModel`.

    ``stats`` counts the tokens read as shared context (``context_tokens``), tail tokens (``tail_tokens``),
    model calls and prefix-cache hits, so the effect of state reuse can be measured.
    """

    def __init__(self, model: ScoringModel, config: ScorerConfig | None = None) -> None:
        self.model = model
        self.config = config or ScorerConfig()
        self.stats: Counter[str] = Counter()
        self._states: OrderedDict[tuple[int, tuple[int, ...]], Any] = OrderedDict()
        self.can_scan = callable(getattr(model, "scan", None))
        self.stateful = self.config.state_reuse and self.can_scan

    @property
    def tokenizer(self):
        return self.model.tokenizer

    # ------------------------------------------------------------------ loglikelihood
    def loglikelihood(
        self, requests: Sequence[tuple[TokenIds, TokenIds]], prefix: bool | None = None, reuse: bool | None = None
    ) -> list[ContinuationScore]:
        """Score each ``(context_ids, continuation_ids)``; the result keeps the order of ``requests``.

        Args:
            requests: token-id pairs; continuations must be non-empty, and causal scoring needs a non-empty
                context (lm-eval supplies its prefix token for an empty context).
            prefix: feed contexts as the bidirectional prefix; default: the model's ``prefix_lm``.
            reuse: read each distinct context once and continue from its state; default: ``config.state_reuse``
                (models without ``scan`` always run plain forward passes).
        """
        prefix = self.model.prefix_lm if prefix is None else prefix
        if prefix and not self.model.prefix_lm:
            raise ValueError("prefix scoring needs a prefix-LM model; this model is causal")
        laid_out = [self._layout(list(ctx), list(cont), prefix) for ctx, cont in requests]
        results: list[ContinuationScore | None] = [None] * len(laid_out)
        if self.stateful if reuse is None else reuse and self.can_scan:
            self._score_with_states(laid_out, prefix, results)
        else:
            self._score_plain(list(range(len(laid_out))), laid_out, prefix, results)
        return results  # type: ignore[return-value]

    def _layout(self, context: list[int], continuation: list[int], prefix: bool) -> tuple[tuple[int, ...], list[int], list[int]]:
        if not continuation:
            raise ValueError("cannot score an empty continuation")
        if prefix:
            begin = self.tokenizer.specials.begin_generating
            return tuple(context), [begin] + continuation[:-1], continuation
        if not context:
            raise ValueError("causal scoring needs at least one context token (e.g. the EOS/BOS prefix token)")
        return tuple(context[:-1]), context[-1:] + continuation[:-1], continuation

    def _score_plain(self, indices: list[int], laid_out: list, prefix: bool, results: list) -> None:
        order = sorted(indices, key=lambda i: -(len(laid_out[i][0]) + len(laid_out[i][1])))
        for batch in _chunks(order, self.config.batch_size):
            rows = [list(laid_out[i][0]) + laid_out[i][1] for i in batch]
            prefix_lengths = np.array([len(laid_out[i][0]) if prefix else 0 for i in batch], dtype=np.int64)
            logits = self.model.logits(_right_pad(rows), prefix_lengths)
            self.stats["model_calls"] += 1
            for b, i in enumerate(batch):
                shared, tail, targets = laid_out[i]
                self.stats["context_tokens"] += len(shared)
                self.stats["tail_tokens"] += len(tail)
                results[i] = _score_positions(log_softmax32(logits[b, len(shared) : len(shared) + len(tail)]), targets)

    def _score_with_states(self, laid_out: list, prefix: bool, results: list) -> None:
        groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}  # shared -> distinct tail -> requests
        plain = []
        for i, (shared, tail, _) in enumerate(laid_out):
            # Tails continue from the state token by token, so a request whose tail is longer than its shared
            # context (a rolling-perplexity window, a prompt after a one-token prefix) runs faster as one batched
            # forward pass; with nothing to share that is the whole work anyway.
            if len(tail) > len(shared):
                plain.append(i)
            else:
                groups.setdefault(shared, {}).setdefault(tuple(tail), []).append(i)
        if plain:
            self._score_plain(plain, laid_out, prefix, results)
        # Models that read many contexts at once get them in batches, and the tails of a whole batch of contexts
        # run together; otherwise one context at a time with the tails of its requests.
        batched = callable(getattr(self.model, "scan_contexts", None))
        contexts = sorted(groups, key=len, reverse=True)
        for chunk in _chunks(contexts, self.config.batch_size if batched else 1):
            states = self._context_states(chunk, prefix, batched)
            rows = sorted(((tail, c) for c, shared in enumerate(chunk) for tail in groups[shared]),
                          key=lambda row: -len(row[0]))
            for batch in _chunks(rows, self.config.batch_size):
                state = concat_states([states[c] for _, c in batch])
                logits, _ = self.model.scan(_right_pad([tail for tail, _ in batch]), state, 0)
                self.stats["model_calls"] += 1
                for b, (tail, c) in enumerate(batch):
                    self.stats["tail_tokens"] += len(tail)
                    log_probs = log_softmax32(logits[b, : len(tail)])
                    for i in groups[chunk[c]][tail]:
                        results[i] = _score_positions(log_probs, laid_out[i][2])

    def _context_states(self, contexts: list[tuple[int, ...]], prefix: bool, batched: bool) -> list[Any]:
        """Batch-1 state after each context: from the LRU, else read (all missing ones in one call if batched)."""
        keys = [(len(c) if prefix else 0, c) for c in contexts]
        states: list[Any] = [None] * len(contexts)
        missing = []
        for index, key in enumerate(keys):
            if key in self._states:
                self._states.move_to_end(key)
                self.stats["cache_hits"] += 1
                states[index] = self._states[key]
            else:
                missing.append(index)
        if missing and batched:
            read = self.model.scan_contexts([contexts[i] for i in missing], [keys[i][0] for i in missing])
            for row, index in enumerate(missing):
                states[index] = state_row(read, row)
            self.stats["model_calls"] += 1
        for index in missing:
            if not batched:
                _, states[index] = self.model.scan(np.asarray([contexts[index]], dtype=np.int64), None, keys[index][0])
                self.stats["model_calls"] += 1
            self.stats["context_tokens"] += len(contexts[index])
            if self.config.prefix_cache_size:
                self._states[keys[index]] = states[index]
                while len(self._states) > self.config.prefix_cache_size:
                    self._states.popitem(last=False)
        return states

    def clear_cache(self) -> None:
        """Forget every cached context state."""
        self._states.clear()

    # ------------------------------------------------------------------ rolling
    def loglikelihood_rolling(self, documents: Sequence[TokenIds], prefix_token: int, max_seq_len: int) -> list[float]:
        """Total causal log-likelihood of each document with lm-eval's disjoint rolling windows.

        The first window is conditioned on ``prefix_token``; every token is predicted exactly once, windows hold
        at most ``max_seq_len`` tokens. Perplexity is always causal, whatever the model's prefix mode.
        """
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        windows: list[tuple[list[int], list[int]]] = []
        owners: list[int] = []
        for doc_index, tokens in enumerate(documents):
            for window in get_rolling_token_windows(list(tokens), prefix_token, max_seq_len, context_len=1):
                windows.append(make_disjoint_window(window))
                owners.append(doc_index)
        totals = [0.0] * len(documents)
        scores = self.loglikelihood(windows, prefix=False, reuse=self.config.rolling_state_reuse)
        for owner, score in zip(owners, scores):
            totals[owner] += score.logprob
        return totals

    # ------------------------------------------------------------------ echo
    def prompt_logprobs(
        self, prompts: Sequence[TokenIds], top_k: int = 1, prefix_lengths: Sequence[int | None] | None = None
    ) -> list[PromptLogprobs]:
        """Log-probs of every prompt token, the top-``top_k`` alternatives, and one greedy next token.

        Causal by default (``prefix_lengths`` None, or None for a prompt). With ``prefix_lengths[i] = n``
        (prefix-LM models) the first ``n`` tokens of prompt ``i`` are the bidirectional prefix, followed by
        ``begin_generating`` and the rest; entries for the prefix tokens are None and entry ``j >= n`` is
        ``log p(t_j | prefix, t_n..t_{j-1})``, so a client that slices from its context length scores the
        continuation as :meth:`loglikelihood` does in prefix mode.
        """
        if top_k < 1:
            raise ValueError(f"top_k={top_k} must be >= 1")
        splits = list(prefix_lengths) if prefix_lengths is not None else [None] * len(prompts)
        if any(n is not None for n in splits) and not self.model.prefix_lm:
            raise ValueError("prefix scoring needs a prefix-LM model; this model is causal")
        if any(n is not None and not 0 <= n <= len(p) for n, p in zip(splits, prompts)):
            raise ValueError("a prefix length must lie in [0, the prompt's length]")
        begin = self.tokenizer.specials.begin_generating
        results: list[PromptLogprobs | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        for batch in _chunks(order, self.config.batch_size):
            rows = [list(prompts[i]) for i in batch]
            if any(not row for row in rows):
                raise ValueError("cannot score an empty prompt")
            laid = [row if splits[i] is None else row[: splits[i]] + [begin] + row[splits[i] :]
                    for row, i in zip(rows, batch)]
            logits = self.model.logits(_right_pad(laid), np.array([splits[i] or 0 for i in batch], dtype=np.int64))
            self.stats["model_calls"] += 1
            for b, i in enumerate(batch):
                row, split = rows[b], splits[i]
                # causal: position j predicts token j + 1; prefix: position n (begin_generating) predicts token n
                log_probs = log_softmax32(logits[b, split or 0 : len(laid[b])])
                next_token = int(log_probs[-1].argmax())
                targets = (row[1:] if split is None else row[split:]) + [next_token]
                picked = log_probs.gather(1, torch.as_tensor(targets)[:, None])[:, 0].tolist()
                values, ids = log_probs.topk(min(top_k, log_probs.shape[1]), dim=1)
                top = list(zip(ids.tolist(), values.tolist()))
                blank: list[None] = [None] * (1 if split is None else split)
                results[i] = PromptLogprobs(blank + picked, blank + top, next_token)  # type: ignore[operator]
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompt: TokenIds,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        seed: int | None = None,
        prefix: bool | None = None,
        prefix_length: int | None = None,
    ) -> Generation:
        """Decode after ``prompt`` until EOS, a stop string, or ``max_new_tokens`` tokens.

        Greedy at ``temperature == 0``, otherwise sampled (reproducible with ``seed``). In prefix mode (``prefix``,
        default: the model's ``prefix_lm``) the first ``prefix_length`` prompt tokens (default: all of them) are
        the bidirectional prefix, followed by ``begin_generating`` and the rest of the prompt. The text is cut
        before the earliest stop string.
        """
        prefix = self.model.prefix_lm if prefix is None else prefix
        if prefix and not self.model.prefix_lm:
            raise ValueError("prefix generation needs a prefix-LM model; this model is causal")
        split = (len(prompt) if prefix_length is None else prefix_length) if prefix else 0
        if not 0 <= split <= len(prompt):
            raise ValueError(f"prefix_length={prefix_length} must lie in [0, {len(prompt)}] (the prompt's length)")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 0")
        if temperature < 0:
            raise ValueError(f"temperature={temperature} must be >= 0")
        specials = self.tokenizer.specials
        ids = list(prompt[:split]) + [specials.begin_generating] + list(prompt[split:]) if prefix else list(prompt)
        if not ids:
            raise ValueError("cannot generate from an empty prompt with causal scoring")
        prefix_length = split
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        stops = [s for s in stop if s]
        generated: list[int] = []
        state = None
        while len(generated) < max_new_tokens:
            if self.stateful:
                step_input, step_prefix = (ids, prefix_length) if state is None else (generated[-1:], 0)
                logits, state = self.model.scan(np.asarray([step_input], dtype=np.int64), state, step_prefix)
                next_logits = logits[0, -1]
            else:
                row = ids + generated
                next_logits = self.model.logits(np.asarray([row], dtype=np.int64), np.array([prefix_length]))[0, len(row) - 1]
            self.stats["model_calls"] += 1
            token = self._choose(log_softmax32(next_logits), temperature, generator)
            if token == specials.eos:
                return Generation(self.tokenizer.decode(generated), generated, "stop")
            generated.append(token)
            text = self.tokenizer.decode(generated)
            cut = min((text.find(s) for s in stops if s in text), default=-1)
            if cut >= 0:
                return Generation(text[:cut], generated, "stop")
        return Generation(self.tokenizer.decode(generated), generated, "length")

    @staticmethod
    def _choose(log_probs: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
        if temperature == 0:
            return int(log_probs.argmax())
        probs = torch.softmax(log_probs / temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))
